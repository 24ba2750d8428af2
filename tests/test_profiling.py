"""Kernel profiles grouped by the op each kernel serves: the classifier, the grouping, the totals."""
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from pi05perf import config, prefill_bench, profiling

TINY = config.tiny_config(config.GEMMA_2B, depth=2)


def test_gemma_classifier_names_gemms_by_weight_shape():
    c = profiling.default_classifier(TINY)
    W, F, T = TINY.width, TINY.mlp_dim, 16
    assert c("nvjet_tst_128x256", [("aten::mm", [[T, W], [W, F]])]) == "gate_up_proj"
    assert c("nvjet_tst_128x256", [("aten::mm", [[T, W], [W, 2 * F]])]) == "gate_up_proj"
    assert c("aten::mm", [("aten::linear", [[1, T, F], [W, F], []])]) == "down_proj"
    assert c("sm90_xmma_gemm", [("aten::addmm", [[W], [T, TINY.q_dim], [TINY.q_dim, W]])]) == "qkvo_proj"
    assert c("sm90_xmma_gemm", [("aten::mm", [[T, 7], [7, 5]])]) == "matmul (other)"
    # the launching op decides before the kernel's name; the innermost op first
    assert c("flash_fwd_kernel", [("aten::_flash_attention_forward", []),
                                  ("aten::scaled_dot_product_attention", [])]) == "attention"
    assert c("triton_per_fused_add_mean_mul_pow_rsqrt_0", [("Torch-Compiled Region", [])]) == "elementwise"
    assert c("flash_fwd_kernel", []) == "attention" and c("Memcpy DtoD (Device -> Device)", []) == "memcpy / memset"


def test_profile_of_a_tiny_model_groups_every_component_and_adds_up():
    model = prefill_bench.build_llm(TINY, torch.device("cpu"), torch.float32)
    x = torch.randn(1, 16, TINY.width)
    kernels = profiling.kernel_profile(lambda: model.prefill(x), "cpu", runs=2,
                                       classify=profiling.default_classifier(TINY))
    assert {"qkvo_proj", "gate_up_proj", "down_proj", "attention", "elementwise"} <= set(kernels.group)
    mm = kernels[kernels.kernel == "aten::mm"].set_index("group")
    assert mm.weight_shape["down_proj"] == f"{TINY.mlp_dim}x{TINY.width}"
    # two layers, one down_proj each, per run
    assert mm.calls_per_run["down_proj"] == pytest.approx(TINY.depth)
    groups = profiling.by_group(kernels, {"down_proj": 1e-3})
    assert groups.total_ms.sum() == pytest.approx(kernels.total_ms.sum())
    assert groups.share_pct.sum() == pytest.approx(100.0)
    down = groups.set_index("group").loc["down_proj"]
    assert down.x_floor_ratio == pytest.approx(down.total_ms / 1e-3)
    assert groups.set_index("group").floor_ms.drop("down_proj").isna().all()
    shapes = profiling.gemm_kernels(kernels)
    assert set(shapes.kernel) <= {"aten::mm", "aten::addmm", "aten::bmm"} and len(shapes) >= 3


def test_a_caller_classifier_sees_its_own_labels():
    def by_stage(kernel, ops):
        return next((op for op, _ in ops if op in ("vision", "llm")), "unlabelled")

    def call():
        with torch.profiler.record_function("vision"):
            torch.randn(32, 32) @ torch.randn(32, 32)
        with torch.profiler.record_function("llm"):
            torch.randn(32, 32).exp()

    groups = set(profiling.kernel_profile(call, "cpu", runs=1, classify=by_stage).group)
    assert {"vision", "llm"} <= groups


def _event(name, device, us=0.0, kernels=(), parent=None, shapes=None):
    return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(elapsed_us=lambda: us),
                           kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels], cpu_parent=parent,
                           input_shapes=shapes or [], is_async=False, is_legacy=False, self_cpu_time_total=0.0)


def test_cuda_kernels_are_tied_to_their_launching_op_and_leftovers_grouped_by_name(monkeypatch):
    """The CUDA path on fake profiler events: a GEMM kernel listed under aten::mm takes its
    group from the weight shape; a kernel no op launched (graph replay) is grouped by name."""
    cpu, gpu = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    W, F = TINY.width, TINY.mlp_dim
    region = _event("Torch-Compiled Region", cpu)
    mm = _event("aten::mm", cpu, kernels=[("nvjet_tst_128x64", 30.0)], parent=region, shapes=[[8, F], [F, W]])
    tri = _event("triton_poi_fused_mul_0", cpu, kernels=[("triton_poi_fused_mul_0", 5.0)], parent=region)
    events = [region, mm, tri, _event("nvjet_tst_128x64", gpu, 30.0), _event("triton_poi_fused_mul_0", gpu, 5.0),
              _event("flash_fwd_kernel", gpu, 7.0)]

    class FakeProfile:
        def __init__(self, *a, **k): pass
        def __enter__(self): return self
        def __exit__(self, *a): return False
        def events(self): return events

    monkeypatch.setattr(torch.profiler, "profile", FakeProfile)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    df = profiling.kernel_profile(lambda: None, torch.device("cuda"), runs=1,
                                  classify=profiling.default_classifier(TINY)).set_index("kernel")
    assert df.group["nvjet_tst_128x64"] == "down_proj" and df.weight_shape["nvjet_tst_128x64"] == f"{F}x{W}"
    assert df.group["triton_poi_fused_mul_0"] == "elementwise"
    assert df.group["flash_fwd_kernel"] == "attention" and df.op["flash_fwd_kernel"] == ""
    assert df.total_ms.sum() == pytest.approx(0.042)


def test_short_kernel_names_keep_the_tile():
    name = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_segment_k_off_kernel__5x_cublas"
    assert "128x256x64" in profiling.short_kernel_name(name, width=200)
    assert len(profiling.short_kernel_name(name + "<" + "x" * 300 + ">")) <= 70
    assert isinstance(profiling.by_group(pd.DataFrame(columns=["group", "total_ms", "calls_per_run"])), pd.DataFrame)


def test_user_annotations_on_the_gpu_timeline_are_not_kernels():
    cuda = torch.autograd.DeviceType.CUDA
    kernel = SimpleNamespace(name="nvjet_sm90_tst_128x184", device_type=cuda, is_user_annotation=False)
    flagged = SimpleNamespace(name="my_range", device_type=cuda, is_user_annotation=True)
    inductor = SimpleNamespace(name="## Call CompiledFxGraph abc ##", device_type=cuda)  # older torch: no flag
    cpu_op = SimpleNamespace(name="aten::mm", device_type=torch.autograd.DeviceType.CPU, is_user_annotation=False)
    assert [profiling.is_kernel(e) for e in (kernel, flagged, inductor, cpu_op)] == [True, False, False, False]
