"""The results store: provenance, unit-suffixed keys, atomic writes, smoke runs kept out of data/."""
import json

import pytest

from pi05perf import results
from pi05perf.params import resolve


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "DATA_RESULTS", tmp_path / "data")
    monkeypatch.setattr(results, "BUILD_RESULTS", tmp_path / "build")
    return tmp_path


def test_slug():
    assert results.device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert results.device_slug("cpu") == "cpu"


def test_full_run_writes_data_with_provenance(store):
    run = resolve("ch01_flops", profile="full", device="cpu", prefix_tokens=712)
    path = results.save(run, {"prefill712_flops": 2.9e12, "copy_gbps": 10.0}, [{"op": "q", "flops": 1}])
    assert path == store / "data" / "cpu" / "ch01_flops.json"
    doc = json.loads(path.read_text())
    prov = doc["provenance"]
    for key in ("device", "torch", "git_commit", "date", "profile", "parameters"):
        assert key in prov
    assert prov["parameters"]["prefix_tokens"] == 712 and prov["profile"] == "full"
    assert doc["headline"]["copy_gbps"] == 10.0 and doc["rows"] == [{"op": "q", "flops": 1}]
    assert not list(path.parent.glob("*.tmp"))


def test_smoke_run_never_touches_data(store):
    run = resolve("ch01_flops", profile="smoke", device="cpu")
    path = results.save(run, {"x_ms": 1.0})
    assert path.is_relative_to(store / "build") and not (store / "data").exists()


def test_key_without_unit_refused(store):
    run = resolve("ch01_flops", profile="full", device="cpu")
    with pytest.raises(ValueError, match="unit"):
        results.save(run, {"prefill": 1.0})
    assert not (store / "data").exists()


def test_headlines_merge_committed_and_this_build(store):
    results.save(resolve("ch01_flops", profile="full", device="cpu"), {"a_ms": 1.0})
    results.save(resolve("ch01_flops", profile="smoke", device="cpu"), {"a_ms": 2.0})
    df = results.headlines()
    assert sorted(df.source) == ["committed", "this build"]
    assert results.measured("ch01_flops", "a_ms") == 1.0
