"""Chapter parameters: a bad value stops at once, names the parameter and the allowed values."""
import pytest
import torch

from pi05perf.params import ParameterError, resolve


@pytest.mark.parametrize("kwargs, name", [
    ({"profile": "fast"}, "profile"),
    ({"dtype": "int3"}, "dtype"),
    ({"device": "tpu"}, "device"),
    ({"prefix_tokens": 0}, "prefix_tokens"),
    ({"prefix_tokens": -5}, "prefix_tokens"),
    ({"denoise_steps": [10, 0]}, "denoise_steps"),
    ({"repeats": -1}, "repeats"),
])
def test_bad_parameter_names_itself(kwargs, name):
    with pytest.raises(ParameterError, match=rf"parameter {name}=.*allowed values: "):
        resolve("ch01_flops", **kwargs)


def test_unknown_chapter_lists_chapters():
    with pytest.raises(ParameterError, match="chapter.*ch01_flops"):
        resolve("ch99_nothing")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(ParameterError, match="device='cuda'"):
        resolve("ch01_flops", device="cuda")


def test_auto_resolves_per_device():
    run = resolve("ch01_flops")
    if torch.cuda.is_available():
        assert (run.profile, run.dtype, run.device.type) == ("full", torch.bfloat16, "cuda")
    else:
        assert (run.profile, run.dtype, run.device.type) == ("smoke", torch.float32, "cpu")
    assert run.repeats > 0
    assert resolve("ch01_flops", profile="smoke", device="cpu", repeats=7).repeats == 7


def test_full_on_cpu_is_refused_naming_the_parameter(monkeypatch):
    monkeypatch.delenv("PI05PERF_ALLOW_FULL_ON_CPU", raising=False)
    with pytest.raises(ParameterError, match=r"parameter profile='full'.*PI05PERF_ALLOW_FULL_ON_CPU"):
        resolve("ch01_flops", profile="full", device="cpu")
    monkeypatch.setenv("PI05PERF_ALLOW_FULL_ON_CPU", "1")
    assert resolve("ch01_flops", profile="full", device="cpu").full
