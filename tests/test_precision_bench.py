"""pi05perf.precision_bench on CPU: variant specs, quantized model building, the checked and
timed prefill variants (eager and compiled with Dynamo's eager backend), fault injection,
the low-bit sweep and its ratios, roofline floors per precision, and the Triton guard."""
from __future__ import annotations

import math

import pytest
import torch

from pi05perf import config, flops
from pi05perf import lowbit_bench as LB
from pi05perf import precision_bench as PB
from pi05perf import precision as Q

CPU = torch.device("cpu")
CFG = config.tiny_config(config.GEMMA_2B, width=128, depth=3, num_heads=2, head_dim=64, mlp_dim=512)
TOKENS = 24


@pytest.fixture(scope="module")
def refs():
    return PB.references(CFG, TOKENS, CPU, torch.float32)


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec,scope,expected", [
    ("base", "layer", PB.Variant("base", "none", "layer", False)),
    ("fp8_tensor/mlp", "layer", PB.Variant("fp8_tensor", "mlp", "layer", False)),
    ("fp8_channel", "model", PB.Variant("fp8_channel", "full", "model", False)),
    ("fp8_channel/full/fast_accum/eager", "layer", PB.Variant("fp8_channel", "full", "eager", True)),
    ("int4wo_noscale/attn", "eager", PB.Variant("int4wo_noscale", "attn", "eager", False)),
])
def test_parse_variant(spec, scope, expected):
    v = PB.parse_variant(spec, scope)
    assert v == expected
    assert PB.parse_variant(v.name, "eager") == v  # the name is a spec that round-trips


@pytest.mark.parametrize("spec", ["", "fp9/full", "base/mlp", "base/fast_accum", "int8/fast_accum", "fp8_tensor/everything"])
def test_parse_variant_rejects(spec):
    with pytest.raises(ValueError):
        PB.parse_variant(spec)


def test_variant_family_and_scale_flag():
    assert [PB.parse_variant(s).family for s in ("base", "fp8_tensor", "int8_noscale", "int4wo", "nvfp4_sim")] == \
        ["base", "fp8", "int8", "int4", "nvfp4"]
    assert PB.parse_variant("int4wo_noscale").scale_ignored and not PB.parse_variant("int4wo").scale_ignored


# --------------------------------------------------------------------------- building
@pytest.mark.parametrize("coverage,leaves", [("mlp", {"gate_up_proj", "down_proj"}),
                                             ("attn", {"qkv_proj", "o_proj"}),
                                             ("full", {"gate_up_proj", "down_proj", "qkv_proj", "o_proj"})])
def test_build_variant_quantizes_exactly_the_coverage(coverage, leaves):
    m = PB.build_variant(CFG, PB.parse_variant(f"int8/{coverage}"), CPU, torch.float32)
    names = Q.quantized_names(m)
    assert {n.rsplit(".", 1)[-1] for n in names} == leaves
    assert len(names) == CFG.depth * len(leaves)
    assert not Q.quantized_names(PB.build_variant(CFG, PB.parse_variant("base"), CPU, torch.float32))


def test_build_variant_starts_from_the_same_weights():
    base = PB.build_variant(CFG, PB.parse_variant("base"), CPU, torch.float32)
    q = PB.build_variant(CFG, PB.parse_variant("fp8_channel/mlp"), CPU, torch.float32)
    assert torch.equal(base.layers[1].attn.qkv_proj.weight, q.layers[1].attn.qkv_proj.weight)
    w = base.layers[1].mlp.down_proj.weight
    assert Q.accuracy(q.layers[1].mlp.down_proj.dequantized_weight(), w)["cos"] > 0.999


def test_nvfp4_is_always_simulated_and_fast_accum_reaches_the_layers():
    m = PB.build_variant(CFG, PB.parse_variant("nvfp4_sim/mlp"), CPU, torch.float32, backend="native")
    assert {l.backend for l in m.modules() if isinstance(l, Q.QuantLinear)} == {"simulate"}
    m = PB.build_variant(CFG, PB.parse_variant("fp8_tensor/full/fast_accum"), CPU, torch.float32)
    assert all(l.fast_accum for l in m.modules() if isinstance(l, Q.FP8Linear))


# --------------------------------------------------------------------------- accuracy helpers
def test_output_accuracy(refs):
    same = PB.output_accuracy(refs.fp32_out, refs.fp32_out)
    assert same["hidden_cos"] == pytest.approx(1.0) and same["kv_rel_err"] == 0.0
    h, kv = refs.fp32_out
    bad_kv = [(k, v) for k, v in kv]
    bad_kv[1] = (torch.randn_like(kv[1][0]), kv[1][1])  # one layer's K replaced by noise
    acc = PB.output_accuracy((h, bad_kv), refs.fp32_out, "x_")
    assert acc["x_hidden_cos"] == pytest.approx(1.0)
    assert acc["x_kv_cos_first_layer"] == pytest.approx(1.0)
    assert acc["x_kv_cos_worst_layer"] < 0.9 and acc["x_kv_cos"] < 0.999
    assert len(PB.layer_kv_cosines((h, bad_kv), refs.fp32_out)) == CFG.depth


def test_references_are_fresh_and_consistent(refs):
    a, b = refs.make_input(), refs.make_input()
    assert not torch.equal(a, b) and a.abs().sum() > 0
    assert PB.output_accuracy(refs.base_out, refs.fp32_out)["hidden_cos"] == pytest.approx(1.0)  # fp32 on CPU
    assert torch.equal(PB.flat(refs.fp32_model.prefill(refs.x)), refs.fp32_fn(refs.x))


# --------------------------------------------------------------------------- the prefill variants
def test_quantized_prefill_variants_eager(refs):
    df = PB.quantized_prefill_variants(refs, 2, ["base", "fp8_channel/full", "int8/full", "int4wo/mlp"],
                                       scope="eager", log=lambda *_: None).set_index("scheme")
    assert df.loc["base", "kernels"] == "torch" and df.loc["base", "median_ms"] > 0
    # no FP8 kernel on CPU: checked and measured, never timed
    assert df.loc["fp8_channel", "kernels"] == "simulated" and math.isnan(df.loc["fp8_channel", "median_ms"])
    assert df.loc["int8", "kernels"] == "native" and df.loc["int8", "median_ms"] > 0
    for scheme, min_cos in (("fp8_channel", 0.998), ("int8", 0.9995), ("int4wo", 0.99)):
        assert df.loc[scheme, "vs_base_hidden_cos"] > min_cos
        assert df.loc[scheme, "vs_base_kv_cos"] > min_cos
        assert df.loc[scheme, "rel_err_vs_fp32"] <= df.loc[scheme, "tolerance"]
    assert df.loc["base", "weight_bytes"] > df.loc["int8", "weight_bytes"] > df.loc["int4wo", "weight_bytes"] * 0


def test_quantized_prefill_variants_gate_stops_a_broken_variant(refs):
    with pytest.raises(AssertionError, match="relative error"):
        PB.quantized_prefill_variants(refs, 1, ["int8_noscale/full"], scope="eager", log=lambda *_: None)


def test_compiled_layers_reuse_one_graph(refs):
    df = PB.quantized_prefill_variants(refs, 1, ["int8/full/layer", "base/model"], compile_backend="eager",
                                       log=lambda *_: None)
    assert list(df.scope) == ["layer", "model"]
    assert (df.compile_s > 0).all()
    eager = PB.quantized_prefill_variants(refs, 1, ["int8/full/eager"], log=lambda *_: None)
    assert df.vs_base_hidden_cos[0] == pytest.approx(eager.vs_base_hidden_cos[0], abs=1e-6)


def test_a_layer_that_recompiles_stops_the_variant(refs, monkeypatch):
    real = PB.build_variant

    def odd_layer(*a, **k):
        m = real(*a, **k)
        m.layers[1].attn.o_proj.act = "tensor"  # layer 1 differs from layer 0: its code path recompiles
        return m

    monkeypatch.setattr(PB, "build_variant", odd_layer)
    with pytest.raises(RuntimeError, match="recompiled"):
        PB.quantized_prefill_variants(refs, 1, ["int8/full/layer"], compile_backend="eager", log=lambda *_: None)


def test_traced_path_runs_the_native_kernel_under_compile():
    lin = torch.nn.Linear(64, 32, bias=False)
    ql = Q.quantize_linear(lin, "int8")  # backend auto
    x = torch.randn(20, 64)
    y = ql(x)
    assert ql.backend_used == "native"
    calls = []
    real = torch._int_mm
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "_int_mm", lambda *a: calls.append(1) or real(*a))
        torch._dynamo.reset()
        yc = torch.compile(ql, backend="eager", fullgraph=True)(x)
    assert calls and torch.allclose(yc, y)
    sim = Q.quantize_linear(lin, "int8", backend="simulate")
    torch._dynamo.reset()
    assert torch.allclose(torch.compile(sim, backend="eager", fullgraph=True)(x), sim(x))


# --------------------------------------------------------------------------- chapter 5
def test_fault_injection(refs):
    faults, per_layer = LB.fault_injection(refs, ["int4wo", "int4wo_noscale", "nvfp4_sim_noscale"])
    f = faults.set_index("scheme")
    assert f.loc["int4wo", "scales"] == "kept" and f.loc["int4wo_noscale", "scales"] == "dropped"
    assert f.loc["int4wo", "vs_base_hidden_cos"] > 0.99
    for s in ("int4wo_noscale", "nvfp4_sim_noscale"):
        assert abs(f.loc[s, "vs_base_hidden_cos"]) < 0.1  # the seed's cos ~ 0 at the output
        assert f.loc[s, "vs_base_kv_cos_first_layer"] > 0.8  # while the first layer still points the right way
    assert f.loc["nvfp4_sim_noscale", "kernels"] == "simulate"
    assert len(per_layer) == 3 * CFG.depth and set(per_layer.layer) == set(range(CFG.depth))


def test_first_layer_q_input():
    w, x = LB.first_layer_q_input(CFG, 16, CPU)
    assert w.shape == (CFG.q_dim, CFG.width) and x.shape == (16, CFG.width)
    assert x.pow(2).mean(-1).sqrt().sub(1).abs().max() < 0.2  # RMS-normed rows (times 1 + small scale)
    sig = Q.fault_signatures(w, x).set_index("fault")
    assert sig.loc["int4, correct", "out_cos"] > 0.99


def test_lowbit_sweep_and_ratios():
    shapes = {"a": (256, 128), "b": (128, 256)}
    sw = LB.lowbit_sweep(shapes, [1, 24], CPU, 2, log=lambda *_: None)
    impls = set(sw.impl)
    assert {"bf16", "int8 _int_mm kernel", "int8 layer (eager)"} <= impls
    assert ("int4wo" in impls) == Q.int4_supported(CPU)
    assert "fp8 _scaled_mm kernel" not in impls  # no FP8 matmul on CPU
    assert len(sw) == len(shapes) * 2 * len(impls)
    assert (sw[sw.impl == "int8 _int_mm kernel"].rel_err == 0).all()  # integer kernel: exact
    assert (sw.median_ms > 0).all() and (sw.cos > 0.99).all()
    r = LB.sweep_ratios(sw)
    assert (r[r.impl == "bf16"].vs_bf16_ratio == 1.0).all() and not r[r.impl == "bf16"].noise.any()
    one = r[(r.impl == "int8 layer (eager)") & (r.tokens == 24)].iloc[0]
    manual = sw[(sw.impl == "int8 layer (eager)") & (sw.tokens == 24)].median_ms.sum() / \
        sw[(sw.impl == "bf16") & (sw.tokens == 24)].median_ms.sum()
    assert one.vs_bf16_ratio == pytest.approx(manual)


def test_precision_floors_bounds():
    fast_mem = {"name": "compute-bound", "bandwidth_gbps": 1e9, "tflops": {"bf16": 100.0, "fp8": 200.0, "fp4": 400.0}}
    slow_mem = {"name": "memory-bound", "bandwidth_gbps": 1.0, "tflops": {"bf16": 100.0, "fp8": 200.0, "fp4": None}}
    df = PB.precision_floors(config.GEMMA_2B, 712, [fast_mem, slow_mem]).set_index(["device", "compute", "weight_bits"])
    # compute-bound: weight-only INT4 gains nothing, FP8 / FP4 compute gain their peak ratio
    assert df.speedup_vs_bf16_floor[("compute-bound", "bf16", 4.25)] == pytest.approx(1.0)
    assert df.speedup_vs_bf16_floor[("compute-bound", "fp8", 8.0)] == pytest.approx(2.0)
    assert df.speedup_vs_bf16_floor[("compute-bound", "fp4", 4.5)] == pytest.approx(4.0)
    # memory-bound: INT4 gains less than 16/4.25 (the KV cache and activations do not shrink), more than 3
    s = df.speedup_vs_bf16_floor[("memory-bound", "bf16", 4.25)]
    assert 3.0 < s < 16 / 4.25
    assert math.isnan(df.floor_ms[("memory-bound", "fp4", 4.5)])
    cost = flops.stack_cost(config.GEMMA_2B, 712)
    assert df.compute_ms[("compute-bound", "bf16", 16.0)] == pytest.approx(cost["flops"] / 100e12 * 1e3)


def test_gate_stops_a_wrong_kernel():
    ref = torch.randn(64, 32, dtype=torch.float64)
    assert LB.accuracy_gate(ref.float(), ref, 1e-6)["cos"] == pytest.approx(1.0)
    with pytest.raises(AssertionError):
        LB.accuracy_gate(ref.flip(0), ref, 0.5)  # rows in the wrong order: a layout fault
    with pytest.raises(AssertionError):
        LB.accuracy_gate(ref * float("nan"), ref, 0.5)
    with pytest.raises(AssertionError):
        LB.accuracy_gate(ref[:10], ref, 0.5)


def test_fault_levels(refs):
    faults = ["int4, correct", "int4, scales dropped", "int4, nibble order swapped"]
    df = LB.fault_levels(refs, group_size=64, faults=faults).set_index("fault")
    assert list(df.index) == faults
    assert df.loc["int4, correct", ["layer_cos", "mlp_cos", "model_cos"]].min() > 0.98
    assert abs(df.loc["int4, nibble order swapped", "layer_cos"]) < 0.2  # a layout fault: unrelated output
    assert df.loc["int4, scales dropped", "layer_norm_ratio"] > 10  # magnitude, not direction
    assert df.loc["int4, scales dropped", "layer_cos"] > 0.8


def test_ridge_tokens_moves_with_the_ceilings():
    cfg = config.GEMMA_2B
    low, high = PB.ridge_tokens(cfg, 1000.0, 100.0), PB.ridge_tokens(cfg, 1000.0, 1000.0)
    assert low is not None and high is not None and low < high
    c = flops.stack_cost(cfg, high)
    assert c["flops"] / c["min_bytes"] >= 1000.0  # at the ridge token count the intensity reaches 1e15/1e12
    assert PB.ridge_tokens(cfg, 1.0, 1e6, max_tokens=64) is None


def test_memory_bound_fp8_records_failures_instead_of_raising(monkeypatch):
    here = {"name": "x", "bandwidth_gbps": 1000.0, "tflops": {"bf16": 100.0, "fp8": 200.0, "fp4": None}}

    def boom(*a, **k):
        raise RuntimeError("no kernel")
    monkeypatch.setattr(PB, "references", boom)
    df = PB.memory_bound_fp8({"p": (CFG, 8)}, CPU, torch.float32, 1, here)
    assert df.error.iloc[0].startswith("RuntimeError") and math.isnan(df.measured_speedup_ratio.iloc[0])
    assert df.bound.iloc[0] == "memory" and df.predicted_speedup_ratio.iloc[0] > 1


def test_memory_bound_fp8_runs_on_cpu(refs):
    here = {"name": "x", "bandwidth_gbps": 1000.0, "tflops": {"bf16": 100.0, "fp8": 200.0, "fp4": None}}
    df = PB.memory_bound_fp8({"p": (CFG, 8)}, CPU, torch.float32, 1, here, scope="eager")
    assert df.error.isna().all() and df.bf16_ms.iloc[0] > 0
    assert math.isnan(df.fp8_ms.iloc[0])  # FP8 is simulated on a CPU: checked, never timed


def test_committed_fp8_pipeline_reads_chapter8_rows():
    c8 = PB.committed_fp8_pipeline()
    if c8 is not None:
        assert c8["fp8_graph_prefill_ms"] > 0 and c8["graph_prefill_ms"] > 0
        from pi05perf import results

        head = results.measured("ch08_roads_to_20hz", "fp8_whole_speedup_ratio", c8["slug"])
        if head is not None:  # the rows it reads give the chapter's own headline
            assert abs(c8["fp8_whole_speedup_ratio"] - head) < 1e-6


def test_ratio_text_writes_huge_norm_ratios_in_words():
    assert LB.ratio_text(8.240921e11) == "824 billion" and LB.ratio_text(4.335417e7) == "43.4 million"
    assert LB.ratio_text(3841.43) == "3,841" and LB.ratio_text(0.99997) == "1.000"
    assert LB.ratio_text(float("nan")) == LB.ratio_text(None) == "–"
