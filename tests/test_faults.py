"""pi05perf.precision.faults: the signatures of misread quantized weights (direction, magnitude)."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from pi05perf import precision as Q
from _precision_helpers import _linear, _fresh_input, _ref


# --------------------------------------------------------------------------- the fault
# measured on these inputs (3 seeds): fp8_tensor 0.9993, fp8_channel / int8 0.93-0.95 (the
# per-token scales carry the tokens' loudness), int4wo 0.93-0.95, nvfp4 0.97
NOSCALE = [("fp8_tensor_noscale", 0.99), ("fp8_channel_noscale", 0.85), ("int8_noscale", 0.85),
           ("int4wo_noscale", 0.85), ("nvfp4_sim_noscale", 0.9)]


@pytest.mark.parametrize("scheme,min_cos", NOSCALE)
def test_scale_dropped_layer_signature(scheme, min_cos):
    """Measured: one layer with its scales dropped keeps its direction (cos 0.93-0.9993) and
    loses its magnitude (rel_err ~ 1/scale: 10^2 for 4-bit, 10^4-10^5 for 8-bit) -- not cos ~ 0."""
    lin, x = _linear(), _fresh_input()
    acc = Q.accuracy(Q.quantize_linear(lin, scheme)(x), _ref(lin, x))
    assert acc["cos"] > min_cos, acc
    assert acc["rel_err"] > 50, acc
    same = Q.quantize_linear(lin, scheme.replace(Q.NOSCALE, ""))
    assert torch.equal(Q.dequantize(same, drop_scales=True), Q.quantize_linear(lin, scheme).dequantized_weight())


@pytest.mark.parametrize("scheme", [s for s, _ in NOSCALE])
def test_scale_dropped_model_signature_is_cos_zero(scheme):
    """Through a residual stack (RMSNorm, GeGLU, MLP-only quantization, depth 6) the exploded
    layer outputs swamp the residual stream: the model output has |cos| < 0.1 -- the seed's
    cos ~ 0 -- while the same codes with their scales stay at cos > 0.999."""
    net = Q.toy_residual_stack(depth=6)
    x = torch.randn(2, 32, 256, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = net(x)
        bad = Q.quantize_model(copy.deepcopy(net), scheme, Q.MLP_ONLY)(x)
        good = Q.quantize_model(copy.deepcopy(net), scheme.replace(Q.NOSCALE, ""), Q.MLP_ONLY)(x)
    assert abs(Q.accuracy(bad, ref)["cos"]) < 0.1
    assert Q.accuracy(good, ref)["cos"] > 0.999


def test_fault_table_layout_faults_give_cos_zero():
    """Codes read in the wrong order give an unrelated output of the same size (cos ~ 0, norm ~ 1,
    rel_err ~ sqrt(2)); dropped scales keep the direction and blow the size up by ~1/scale."""
    lin, x = _linear(n=512, k=512), _fresh_input(k=512)
    df = Q.fault_signatures(lin.weight, x).set_index("fault")
    for fault in ("int4, nibble order swapped", "nvfp4, nibble order swapped",
                  "bf16, weight read in the other major order", "output channels permuted"):
        assert abs(df.loc[fault, "out_cos"]) < 0.1, fault
        assert abs(df.loc[fault, "out_rel_err"] - math.sqrt(2)) < 0.2, fault
        assert 0.8 < df.loc[fault, "out_norm_ratio"] < 1.25, fault
    assert df.loc["int4, correct", "out_cos"] > 0.99 and df.loc["nvfp4, correct", "out_cos"] > 0.99
    for fault in ("int4, scales dropped", "nvfp4, scales dropped"):
        assert df.loc[fault, "out_cos"] > 0.9 and df.loc[fault, "out_norm_ratio"] > 50, fault
    assert df.loc["fp8 cast without any scale", "out_rel_err"] < 0.1  # std-0.02 weights fit E4M3 as they are


def test_swap_nibbles_and_other_major():
    c = torch.arange(8).reshape(2, 4)
    assert Q.swap_nibbles(c).tolist() == [[1, 0, 3, 2], [5, 4, 7, 6]]
    assert torch.equal(Q.swap_nibbles(Q.swap_nibbles(c)), c)
    sq = torch.arange(9.0).reshape(3, 3)
    assert torch.equal(Q.read_other_major(sq), sq.t())
    r = torch.arange(6.0).reshape(2, 3)  # written [2,3] row-major, read as [3,2] row-major, shown as [2,3]
    assert Q.read_other_major(r).tolist() == [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]


def test_e2m1_as_int4():
    codes = torch.tensor([0, 1, 7, 8, 9, 15], dtype=torch.uint8)  # +0, +0.5, +6, -0, -0.5, -6
    assert Q.e2m1_as_int4(codes).tolist() == [0, 1, 7, -8, -7, -1]
    assert Q.e2m1_as_int4(codes, signed=False).tolist() == [-8, -7, -1, 0, 1, 7]


def test_every_fault_keeps_the_shape_and_correct_rows_are_accurate():
    w = _linear(n=64, k=256).weight.detach()
    for name, (fmt, fn) in Q.fault_weights(128).items():
        wd = fn(w)
        assert wd.shape == w.shape and torch.isfinite(wd).all(), name
        if name.endswith("correct"):
            assert Q.signature(wd, w)["cos"] > 0.99, name


def test_apply_fault_rewrites_only_the_selected_linears():
    net = Q.toy_residual_stack(depth=2, d=32, f=64)
    bad = Q.apply_fault(net, lambda w: torch.zeros_like(w), lambda n: n.endswith("down_proj"))
    assert (bad[0].down_proj.weight == 0).all() and (bad[1].down_proj.weight == 0).all()
    assert torch.equal(bad[0].gate_proj.weight, net[0].gate_proj.weight)
    assert not (net[0].down_proj.weight == 0).all()  # the original is untouched
    x = torch.randn(1, 4, 32)
    with torch.no_grad():
        assert torch.equal(bad(x), x)  # every MLP branch zeroed: the residual stream passes through
