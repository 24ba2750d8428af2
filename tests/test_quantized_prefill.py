"""pi05perf.quantized_prefill on CPU: variant specs, quantized model building, the accuracy
helpers, and the checked and timed prefill variants (eager and compiled with Dynamo's eager
backend)."""
from __future__ import annotations

import math

import pytest
import torch

from pi05perf import precision as Q
from pi05perf import quantized_prefill as QP

from conftest import TINY_GEMMA as CFG

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec,scope,expected", [
    ("base", "layer", QP.Variant("base", "none", "layer", False)),
    ("fp8_tensor/mlp", "layer", QP.Variant("fp8_tensor", "mlp", "layer", False)),
    ("fp8_channel", "model", QP.Variant("fp8_channel", "full", "model", False)),
    ("fp8_channel/full/fast_accum/eager", "layer", QP.Variant("fp8_channel", "full", "eager", True)),
    ("int4wo_noscale/attn", "eager", QP.Variant("int4wo_noscale", "attn", "eager", False)),
])
def test_parse_variant(spec, scope, expected):
    v = QP.parse_variant(spec, scope)
    assert v == expected
    assert QP.parse_variant(v.name, "eager") == v  # the name is a spec that round-trips


@pytest.mark.parametrize("spec", ["", "fp9/full", "base/mlp", "base/fast_accum", "int8/fast_accum", "fp8_tensor/everything"])
def test_parse_variant_rejects(spec):
    with pytest.raises(ValueError):
        QP.parse_variant(spec)


def test_variant_family_and_scale_flag():
    assert [QP.parse_variant(s).family for s in ("base", "fp8_tensor", "int8_noscale", "int4wo", "nvfp4_sim")] == \
        ["base", "fp8", "int8", "int4", "nvfp4"]
    assert QP.parse_variant("int4wo_noscale").scale_ignored and not QP.parse_variant("int4wo").scale_ignored


# --------------------------------------------------------------------------- building
@pytest.mark.parametrize("coverage,leaves", [("mlp", {"gate_up_proj", "down_proj"}),
                                             ("attn", {"qkv_proj", "o_proj"}),
                                             ("full", {"gate_up_proj", "down_proj", "qkv_proj", "o_proj"})])
def test_build_variant_quantizes_exactly_the_coverage(coverage, leaves):
    m = QP.build_variant(CFG, QP.parse_variant(f"int8/{coverage}"), CPU, torch.float32)
    names = Q.quantized_names(m)
    assert {n.rsplit(".", 1)[-1] for n in names} == leaves
    assert len(names) == CFG.depth * len(leaves)
    assert not Q.quantized_names(QP.build_variant(CFG, QP.parse_variant("base"), CPU, torch.float32))


def test_build_variant_starts_from_the_same_weights():
    base = QP.build_variant(CFG, QP.parse_variant("base"), CPU, torch.float32)
    q = QP.build_variant(CFG, QP.parse_variant("fp8_channel/mlp"), CPU, torch.float32)
    assert torch.equal(base.layers[1].attn.qkv_proj.weight, q.layers[1].attn.qkv_proj.weight)
    w = base.layers[1].mlp.down_proj.weight
    assert Q.accuracy(q.layers[1].mlp.down_proj.dequantized_weight(), w)["cos"] > 0.999


def test_nvfp4_is_always_simulated_and_fast_accum_reaches_the_layers():
    m = QP.build_variant(CFG, QP.parse_variant("nvfp4_sim/mlp"), CPU, torch.float32, backend="native")
    assert {l.backend for l in m.modules() if isinstance(l, Q.QuantLinear)} == {"simulate"}
    m = QP.build_variant(CFG, QP.parse_variant("fp8_tensor/full/fast_accum"), CPU, torch.float32)
    assert all(l.fast_accum for l in m.modules() if isinstance(l, Q.FP8Linear))


# --------------------------------------------------------------------------- accuracy helpers
def test_output_accuracy(refs):
    same = QP.output_accuracy(refs.fp32_out, refs.fp32_out)
    assert same["hidden_cos"] == pytest.approx(1.0) and same["kv_rel_err"] == 0.0
    h, kv = refs.fp32_out
    bad_kv = [(k, v) for k, v in kv]
    bad_kv[1] = (torch.randn_like(kv[1][0]), kv[1][1])  # one layer's K replaced by noise
    acc = QP.output_accuracy((h, bad_kv), refs.fp32_out, "x_")
    assert acc["x_hidden_cos"] == pytest.approx(1.0)
    assert acc["x_kv_cos_first_layer"] == pytest.approx(1.0)
    assert acc["x_kv_cos_worst_layer"] < 0.9 and acc["x_kv_cos"] < 0.999
    assert len(QP.layer_kv_cosines((h, bad_kv), refs.fp32_out)) == CFG.depth


def test_references_are_fresh_and_consistent(refs):
    a, b = refs.make_input(), refs.make_input()
    assert not torch.equal(a, b) and a.abs().sum() > 0
    assert QP.output_accuracy(refs.base_out, refs.fp32_out)["hidden_cos"] == pytest.approx(1.0)  # fp32 on CPU
    assert torch.equal(QP.flat(refs.fp32_model.prefill(refs.x)), refs.fp32_fn(refs.x))


# --------------------------------------------------------------------------- the prefill variants
def test_quantized_prefill_variants_eager(refs):
    df = QP.quantized_prefill_variants(refs, 2, ["base", "fp8_channel/full", "int8/full", "int4wo/mlp"],
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
        QP.quantized_prefill_variants(refs, 1, ["int8_noscale/full"], scope="eager", log=lambda *_: None)


def test_compiled_layers_reuse_one_graph(refs):
    df = QP.quantized_prefill_variants(refs, 1, ["int8/full/layer", "base/model"], compile_backend="eager",
                                       log=lambda *_: None)
    assert list(df.scope) == ["layer", "model"]
    assert (df.compile_s > 0).all()
    eager = QP.quantized_prefill_variants(refs, 1, ["int8/full/eager"], log=lambda *_: None)
    assert df.vs_base_hidden_cos[0] == pytest.approx(eager.vs_base_hidden_cos[0], abs=1e-6)


def test_a_layer_that_recompiles_stops_the_variant(refs, monkeypatch):
    real = QP.build_variant

    def odd_layer(*a, **k):
        m = real(*a, **k)
        m.layers[1].attn.o_proj.act = "tensor"  # layer 1 differs from layer 0: its code path recompiles
        return m

    monkeypatch.setattr(QP, "build_variant", odd_layer)
    with pytest.raises(RuntimeError, match="recompiled"):
        QP.quantized_prefill_variants(refs, 1, ["int8/full/layer"], compile_backend="eager", log=lambda *_: None)


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
