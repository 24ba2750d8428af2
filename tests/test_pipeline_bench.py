"""The whole-inference bench on a tiny CPU model: the stages reproduce `Pi05.sample_actions`,
precomputed time conditioning is exact, every path is checked before it is timed, and a wrong
path is refused."""

import pandas as pd
import pytest
import torch

from pi05perf import pipeline
from pi05perf import kernel_kinds as kk
from pi05perf import pipeline_bench as pb
from pi05perf.model import AdaRMSNorm

ARCH = pipeline.arch(False)
SHAPE = pipeline.Shape(views=2, text_tokens=5, steps=4, horizon=6)


@pytest.fixture(scope="module")
def model32():
    return pipeline.build_pi05(ARCH, "cpu", torch.float32)


@pytest.fixture(scope="module")
def bench():
    return pb.PipelineBench(ARCH, torch.device("cpu"), torch.float32, 2, [4, 2, 1],
                            compile_backend="aot_eager", fp8_backend="simulate", log=lambda *a: None)


def whole_inputs(model, shape=SHAPE, seed=0):
    from pi05perf.check import random_pi05_inputs

    x = random_pi05_inputs(model, 1, shape.views, shape.text_tokens, shape.horizon, seed)
    return x["images"], x["text_ids"], x["noise"]


def test_build_is_deterministic_and_initialises_everything():
    a = pipeline.build_pi05(ARCH, "cpu", torch.float32, seed=3)
    b = pipeline.build_pi05(ARCH, "cpu", torch.float32, seed=3)
    c = pipeline.build_pi05(ARCH, "cpu", torch.float32, seed=4)
    pa, pb_, pc = list(a.parameters()), list(b.parameters()), list(c.parameters())
    assert all(torch.equal(x, y) for x, y in zip(pa, pb_))
    assert all(torch.isfinite(x).all() for x in pa)
    assert not all(torch.equal(x, y) for x, y in zip(pa, pc))


def test_pipeline_is_sample_actions_exactly(model32):
    images, text, noise = whole_inputs(model32)
    with torch.no_grad():
        actions, prefix, k_last = pipeline.Pipeline(model32, SHAPE.steps)(images, text, noise)
        ref = model32.sample_actions(images, text, SHAPE.steps, noise=noise)
        kv = model32.prefill(model32.embed_prefix(images, text))
    assert torch.equal(actions, ref)
    assert prefix.shape == (1, SHAPE.prefix_tokens(ARCH), ARCH.llm.width)
    assert torch.equal(k_last, kv[-1][0])


def test_stages_compose_to_the_whole_call(model32):
    p = pipeline.Pipeline(model32, SHAPE.steps)
    images, text, noise = whole_inputs(model32, seed=1)
    with torch.no_grad():
        kv = p.prefill(p.vision(images, text))
        assert len(kv) == 2 * ARCH.layers and all(t.is_contiguous() for t in kv)
        assert torch.equal(p.denoise(noise, *kv), p(images, text, noise)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_precomputed_time_conditioning_is_exact(dtype):
    m = pipeline.build_pi05(ARCH, "cpu", dtype, fused=True)
    fast = pipeline.shared_copy(m)
    table = pipeline.TimeTable(fast, [4, 2, 1])
    assert table.norms == 2 * ARCH.expert.depth + 1
    assert len(table.rows) == len(set(pipeline.schedule(4) + pipeline.schedule(2) + pipeline.schedule(1)))
    for norm in (x for x in fast.expert.modules() if isinstance(x, AdaRMSNorm)):
        assert not isinstance(norm.modulation, torch.nn.Linear)  # no modulation weight is read any more
    assert table.table.shape == (len(table.rows), table.norms * 3 * ARCH.expert.width)
    images, text, noise = whole_inputs(m, seed=2)
    with torch.no_grad():
        for n in (4, 2, 1):
            ref = pipeline.Pipeline(m, n)(images, text, noise)[0]
            out = pipeline.Pipeline(fast, n, table)(images, text, noise)[0]
            assert torch.equal(out, ref), n
    with pytest.raises(KeyError):
        table.conds(3)


def test_shared_copy_shares_weights_and_leaves_the_original_alone(model32):
    c = pipeline.shared_copy(model32)
    assert all(a is b for a, b in zip(model32.parameters(), c.parameters()))
    pipeline.TimeTable(c, [2])
    assert all(n.modulation.in_features == ARCH.expert.width
               for n in model32.expert.modules() if isinstance(n, AdaRMSNorm))


def test_standard_strides():
    t = torch.randn(1, 1, 5, 4).transpose(1, 2).transpose(1, 2)
    v = torch.randn(1, 5, 1, 4).transpose(1, 2)  # size-1 dim with a non-default stride
    s = pb.standard_strides(v)
    assert s.stride() == torch.empty(1, 1, 5, 4).stride() and torch.equal(s, v)
    assert s.data_ptr() == v.data_ptr()  # a view, no copy
    assert pb.standard_strides(t.transpose(2, 3)).is_contiguous()


def test_measure_checks_then_times_every_stage(bench):
    rows = pd.DataFrame(bench.measure_many("eager_fused", pipeline.STAGES, SHAPE))
    assert list(rows.stage) == list(pipeline.STAGES)
    assert (rows.median_ms > 0).all() and (rows.p25_ms <= rows.p75_ms).all()
    assert (rows.max_rel_err < 1e-4).all()
    w = rows.set_index("stage").loc["whole"]
    for k in ("rel_err_actions", "rel_err_displacement", "rel_err_prefix", "rel_err_k_last"):
        assert k in w and w[k] < 1e-4
    assert w.prefix_tokens == SHAPE.prefix_tokens(ARCH) and w.layers == ARCH.layers


def test_a_wrong_path_is_refused_before_it_is_timed(bench):
    fast = bench.model("fast")
    w = fast.expert.layers[0].mlp.down_proj.weight
    saved = w.clone()
    try:
        with torch.no_grad():
            w.mul_(3.0)  # a wrong weight in the fast model only
        with pytest.raises(AssertionError, match="relative error"):
            bench.measure("eager_fused", "denoise", SHAPE)
    finally:
        with torch.no_grad():
            w.copy_(saved)
    bench.measure("eager_fused", "denoise", SHAPE)


def test_bf16_paths_pass_and_report_their_error():
    b = pb.PipelineBench(ARCH, torch.device("cpu"), torch.bfloat16, 1, [4], log=lambda *a: None)
    row = b.measure("eager", "whole", SHAPE)
    assert 0 < row["max_rel_err"] <= b.tolerance
    assert row["cos_displacement"] > 0.999


def test_regional_compile_compiles_once_per_block_kind(bench):
    before = pipeline.compiled_graph_count()
    rows = bench.measure_many("compile", pipeline.STAGES, SHAPE)
    assert pipeline.compiled_graph_count() - before == 3  # SigLIP block, LLM block, expert block
    assert all(r["max_rel_err"] < 1e-4 for r in rows)
    bench.measure("compile", "whole", pipeline.Shape(2, 5, 2, 6))  # other step count: no new graph
    assert pipeline.compiled_graph_count() - before == 3


def test_graph_variants_need_cuda(bench):
    with pytest.raises(RuntimeError, match="CUDA"):
        bench.measure("graph", "whole", SHAPE)
    assert "graph" not in pb.available_variants(torch.device("cpu"))


def test_fp8_model_is_close_but_not_exact(bench):
    x = bench.ref.inputs("whole", SHAPE, 7)
    ref = bench.ref.outputs("whole", SHAPE, x)
    with torch.no_grad():
        out = bench.pipeline("fp8_graph", SHAPE.steps)(*x)
    errs = pb.compare("whole", out, ref, x)
    assert 0 < errs["rel_err_k_last"] < pb.FP8_TOLERANCE
    assert errs["rel_err_prefix"] < 1e-6  # vision is untouched: only the LLM is in FP8


def test_shapes_and_inputs_are_validated(bench):
    with pytest.raises(ValueError):
        pipeline.Shape(views=-1)
    with pytest.raises(ValueError):
        pipeline.Shape(steps=0)
    with pytest.raises(ValueError, match="camera view"):
        bench.ref.inputs("whole", pipeline.Shape(0, 9), 0)
    x = bench.ref.inputs("prefill", pipeline.Shape(0, 9), 0)
    assert x[0].shape == (1, 9, ARCH.llm.width) and x[0].abs().sum() > 0


def test_modulation_bytes_of_the_full_model():
    mb = pb.modulation_bytes(pipeline.arch(True))
    share = mb["precomputable_bytes"] / mb["expert_step_weight_bytes"]
    assert 0.2 < share < 0.35
    W = 1024
    assert mb["precomputable_bytes"] == 2 * ((2 * 18 + 1) * (3 * W * W + 3 * W) + 2 * (W * W + W))


def test_fp8_through_all_stacks_moves_every_stage_and_reports_the_actions_cosine(bench):
    from pi05perf.precision import QuantLinear

    m = bench.model("fp8_all")
    for stack in (m.vision, m.llm, m.expert):
        assert any(isinstance(mod, QuantLinear) for mod in stack.modules())
    assert not any(isinstance(mod, QuantLinear) for mod in bench.model("fast").modules())  # a copy, not in place
    x = bench.ref.inputs("whole", SHAPE, 7)
    ref = bench.ref.outputs("whole", SHAPE, x)
    with torch.no_grad():
        out = bench.pipeline("fp8_all_graph", SHAPE.steps)(*x)
    errs = pb.compare("whole", out, ref, x)
    assert 0 < errs["rel_err_prefix"] < pb.FP8_TOLERANCE  # vision is in FP8 too
    assert 0.9 < errs["cos_actions"] < 1.0


def test_attempt_records_a_failure_and_skips_the_variant_afterwards(bench):
    calls = []
    bench.log = calls.append
    try:
        assert bench.attempt("graph", ("whole",), SHAPE) == []  # CUDA graphs on a CPU: RuntimeError
        assert "CUDA" in bench.failed["graph"] and calls
        n = len(calls)
        assert bench.attempt("graph", ("whole",), SHAPE) == [] and len(calls) == n  # not retried
        assert len(bench.attempt("eager_fused", ("denoise",), SHAPE)) == 1
    finally:
        bench.failed.clear()
        bench.log = lambda *a: None


def test_attempt_strict_lets_a_wrong_result_stop_the_run(bench):
    w = bench.model("fast").expert.layers[0].mlp.down_proj.weight
    saved = w.clone()
    try:
        with torch.no_grad():
            w.mul_(3.0)
        with pytest.raises(AssertionError):
            bench.attempt("eager_fused", ("denoise",), SHAPE, strict=True)
        assert bench.attempt("eager_fused", ("denoise",), SHAPE) == []  # not strict: recorded
        assert "check against fp32" in bench.failed["eager_fused"]
    finally:
        with torch.no_grad():
            w.copy_(saved)
        bench.failed.clear()


@pytest.mark.parametrize("name,kind", [
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "GEMM"),
    ("nvjet_tst_128x64_64x8_1x2_h_bz_splitK_TNT", "GEMM"),
    ("triton_tem_fused_mm_0", "GEMM"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<256, 64>>", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"),
    ("triton_poi_fused_add_mul_rsqrt_0", "elementwise/fused"),
    ("triton_red_fused_mean_pow_1", "elementwise/fused"),
    ("triton_poi_fused_addmm_gelu_mul_2", "elementwise/fused"),  # an epilogue named after its matmul
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>", "elementwise/fused"),
    ("void at::native::(anonymous namespace)::something_odd<float>", "other"),
])
def test_kernels_are_classified_by_name(name, kind):
    assert kk.classify_kernel(name) == kind
    assert kind in kk.KERNEL_CLASSES


def test_speedup_spread_and_path_kind():
    slow = pd.Series({"median_ms": 100.0, "p25_ms": 90.0, "p75_ms": 120.0})
    fast = pd.Series({"median_ms": 10.0, "p25_ms": 9.5, "p75_ms": 10.5})
    mid, lo, hi = pb.speedup(slow, fast)
    assert (mid, lo, hi) == pytest.approx((10.0, 90 / 10.5, 120 / 9.5))
    assert lo < mid < hi
    assert pb.path_kind("eager").startswith("host") and pb.path_kind("compile").startswith("host")
    assert pb.path_kind("compile_graph").startswith("GPU") and pb.path_kind("graph").startswith("GPU")


def test_kernel_table_of_a_cpu_call_groups_every_op(bench):
    # on a CPU the profiler's rows are CPU ops: the same plumbing the GPU timeline uses
    x = bench.ref.inputs("denoise", SHAPE, 3)
    pipe = bench.pipeline("eager_fused", SHAPE.steps)
    with torch.no_grad():
        t = kk.kernel_table(lambda: pipe.denoise(*x), "cpu", runs=1)
    assert {"kernel", "kind", "count", "total_ms"} <= set(t.columns)
    assert set(t.kind) <= set(kk.KERNEL_CLASSES) and (t.total_ms > 0).all()
    assert t.total_ms.is_monotonic_decreasing


def test_compile_blocks_gives_the_expert_its_own_mode(monkeypatch):
    """compile_autotune_graph: the expert's blocks in max-autotune, SigLIP and the LLM in the run's mode."""
    import torch.nn as nn

    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: seen.append((type(self).__name__, kw.get("mode"))))
    model = pipeline.build_pi05(pipeline.arch(False), "cpu", torch.float32)
    pipeline.compile_blocks(model, "default", "inductor", expert_mode="max-autotune-no-cudagraphs")
    modes = {id(layer): mode for layer, (_, mode) in zip(
        [*model.vision.layers, *model.llm.layers, *model.expert.layers], seen)}
    assert len(seen) == len(model.vision.layers) + len(model.llm.layers) + len(model.expert.layers)
    assert {modes[id(l)] for l in model.expert.layers} == {"max-autotune-no-cudagraphs"}
    assert {modes[id(l)] for l in [*model.vision.layers, *model.llm.layers]} == {"default"}
    assert "compile_autotune_graph" in pb.VARIANTS and pb.path_kind("compile_autotune_graph") == "GPU (CUDA graph)"


def test_split_kv_kind_swaps_only_the_experts_attention(monkeypatch):
    """compile_graph_splitkv: the expert's layers attend through the split-KV kernel; the LLM's and
    the shared "fast" model's layers keep model.attend_joint."""
    import torch.nn as nn

    from pi05perf import model as M
    from pi05perf.kernels.decode_attention import attend_split_kv

    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: None)
    bench = pb.PipelineBench(pipeline.arch(False), torch.device("cpu"), torch.float32, 1, [SHAPE.steps])
    swapped, fast = bench.model("compiled_splitkv"), bench.model("fast")
    assert {l.attn.attend for l in swapped.expert.layers} == {attend_split_kv}
    assert {l.attn.attend for l in [*swapped.llm.layers, *fast.expert.layers]} == {M.attend_joint}
    assert pb.path_kind("compile_graph_splitkv") == "GPU (CUDA graph)"
    assert "compile_graph_splitkv" not in pb.available_variants(torch.device("cpu"))


def test_kernels_by_kind_sets_two_calls_side_by_side():
    a = pd.DataFrame({"kernel": ["gemm_a", "tri_poi"], "kind": ["GEMM", "elementwise/fused"], "count": [3.0, 2.0],
                      "total_ms": [1.0, 0.5]})
    b = pd.DataFrame({"kernel": ["scaled_mm", "amax", "cast"], "kind": ["GEMM", "elementwise/fused", "elementwise/fused"],
                      "count": [3.0, 4.0, 4.0], "total_ms": [0.6, 0.3, 0.2]})
    t = kk.kernels_by_kind({"bf16": a, "fp8": b}).set_index("kind")
    assert list(t.index) == list(kk.KERNEL_CLASSES)
    assert t.loc["elementwise/fused", "fp8 kernels_count"] == 8 and t.loc["elementwise/fused", "bf16 time_ms"] == 0.5
    assert t.loc["attention"].sum() == 0  # a kind neither call ran: zeros, not NaN


def test_graphed_kernel_latency_needs_a_gpu():
    from pi05perf.timing import graphed_kernel_latency

    with pytest.raises(RuntimeError, match="CUDA"):
        graphed_kernel_latency("cpu")


def test_static_fp8_kind_is_calibrated_once_on_its_own_input_before_it_is_compiled(monkeypatch):
    import torch.nn as nn

    from pi05perf.kernels.decode_attention import attend_split_kv
    from pi05perf.precision import FP8Linear

    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: None)
    bench = pb.PipelineBench(ARCH, torch.device("cpu"), torch.float32, 1, [SHAPE.steps], fp8_backend="simulate",
                             log=lambda *a: None)
    seeds = []
    real_inputs = bench.ref.inputs
    monkeypatch.setattr(bench.ref, "inputs", lambda stage, shape, seed: seeds.append(seed) or real_inputs(stage, shape, seed))
    bench.calibrate(SHAPE)
    bench.calibrate(SHAPE)  # once
    assert seeds == [pb.CALIBRATION_SEED]
    static = bench.model("fp8_static")
    layers = [m for m in static.modules() if isinstance(m, FP8Linear)]
    assert layers and all(m.act == "static" and m.calibrated and float(m.act_scale) > 0 for m in layers)
    compiled = bench.model("fp8_static_compiled")
    copies = [m for m in compiled.modules() if isinstance(m, FP8Linear)]
    assert all(m.calibrated for m in copies) and copies[0].act_scale is layers[0].act_scale  # shared, not refitted
    assert {l.attn.attend for l in compiled.expert.layers} == {attend_split_kv}
    assert "fp8_static_compile_graph" in pb.SPLIT_KV_VARIANTS and pb.BF16_TWIN["fp8_static_compile_graph"] == "compile_graph_splitkv"


def test_shift_text_names_each_kinds_change():
    t = pd.DataFrame({"kind": ["GEMM", "attention", "elementwise/fused", "other"],
                      "bf16 a kernels_count": [10.0, 2.0, 5.0, 0.0], "bf16 a time_ms": [1.0, 0.5, 0.4, 0.0],
                      "FP8 b kernels_count": [10.0, 2.0, 12.0, 0.0], "FP8 b time_ms": [0.6, 0.5, 0.9, 0.0]})
    text = kk.shift_text(t, "bf16 a", "FP8 b")
    assert "GEMM -0.40 ms (1.00 → 0.60 ms, 10 → 10 kernels)" in text
    assert "elementwise/fused +0.50 ms (0.40 → 0.90 ms, 5 → 12 kernels)" in text
    assert "other" not in text and "In all, +0.10 ms" in text and "`b` against `a`" in text


def test_twin_shifts_compare_each_path_with_its_own_twin_only():
    t = lambda ms: pd.DataFrame({"kernel": ["k"], "kind": ["GEMM"], "count": [1.0], "total_ms": [ms]})  # noqa: E731
    by_kind, texts = kk.twin_shifts({"bf16 a": t(1.0), "FP8 b": t(0.6), "FP8 c": t(1.5)},
                                    {"FP8 b": "bf16 a", "FP8 c": "bf16 missing"})
    assert len(texts) == 1 and "GEMM -0.40 ms" in texts[0] and "`b` against `a`" in texts[0]
    assert {"FP8 c time_ms", "bf16 a time_ms"} <= set(by_kind.columns)
