"""pi05perf.precision_bench and lowbit_bench on CPU: fault injection, the low-bit sweep and its
ratios, roofline floors per precision, the ridge and the memory-bound FP8 test."""
from __future__ import annotations

import math

import pytest
import torch

from pi05perf import config, flops
from pi05perf import lowbit_bench as LB
from pi05perf import precision_bench as PB
from pi05perf import precision as Q

from conftest import TINY_GEMMA as CFG

CPU = torch.device("cpu")


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


def test_ratio_text_writes_huge_norm_ratios_in_words():
    assert LB.ratio_text(8.240921e11) == "824 billion" and LB.ratio_text(4.335417e7) == "43.4 million"
    assert LB.ratio_text(3841.43) == "3,841" and LB.ratio_text(0.99997) == "1.000"
    assert LB.ratio_text(float("nan")) == LB.ratio_text(None) == "–"
