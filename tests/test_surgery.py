"""pi05perf.precision.surgery: which linears quantize_model swaps, weight bytes, torchao guard."""
from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
import torch.nn as nn

from pi05perf import precision as Q
from _precision_helpers import _linear, _fresh_input


# --------------------------------------------------------------------------- model surgery
def _toy_model() -> nn.Module:
    def attn(fused):
        m = nn.Module()
        if fused:
            m.qkv_proj = nn.Linear(64, 192, bias=False)
        else:
            m.q_proj, m.k_proj, m.v_proj = (nn.Linear(64, 64, bias=False) for _ in range(3))
        m.o_proj = nn.Linear(64, 64, bias=False)
        return m

    def mlp(fused):
        m = nn.Module()
        if fused:
            m.gate_up_proj = nn.Linear(64, 256, bias=False)
        else:
            m.gate_proj, m.up_proj = nn.Linear(64, 128, bias=False), nn.Linear(64, 128, bias=False)
        m.down_proj = nn.Linear(128, 64, bias=False)
        return m

    root = nn.Module()
    root.layers = nn.ModuleList()
    for fused in (False, True):
        blk = nn.Module()
        blk.self_attn, blk.mlp = attn(fused), mlp(fused)
        root.layers.append(blk)
    root.vision = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 64))
    root.lm_head = nn.Linear(64, 100, bias=False)
    return root


def _linear_names(m):
    return {n for n, x in m.named_modules() if isinstance(x, nn.Linear)}


@pytest.mark.parametrize("pred,expected_leaves", [
    (Q.MLP_ONLY, {"gate_proj", "up_proj", "down_proj", "gate_up_proj"}),
    (Q.FULL_COVERAGE, {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj", "up_proj",
                       "down_proj", "gate_up_proj"}),
    (Q.ATTN_ONLY, {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj"}),
])
def test_quantize_model_swaps_exactly_the_selected_names(pred, expected_leaves):
    model = _toy_model()
    all_names = _linear_names(model)
    expected = {n for n in all_names if n.rsplit(".", 1)[-1] in expected_leaves}
    assert expected and expected != all_names
    out = Q.quantize_model(model, "int8", pred)
    assert out is model
    assert set(Q.quantized_names(model)) == expected
    assert _linear_names(model) == all_names - expected
    assert "lm_head" in _linear_names(model) and "vision.0" in _linear_names(model)


def test_quantize_model_custom_predicate_and_all():
    model = _toy_model()
    Q.quantize_model(model, "fp8_tensor", lambda n: n.startswith("layers.1."))
    assert set(Q.quantized_names(model)) == {n for n in _linear_names(_toy_model()) if n.startswith("layers.1.")}
    model = Q.quantize_model(_toy_model(), "nvfp4_sim")
    assert _linear_names(model) == set()
    with pytest.raises(ValueError):
        Q.quantize_linear(nn.Linear(16, 16), "int3")


def test_quantized_stack_runs_and_tracks_reference():
    net = nn.Sequential(_linear(1, 512, 256), nn.GELU(), _linear(2, 256, 512))
    x = _fresh_input(k=256)
    with torch.no_grad():
        ref = net(x)
        for scheme in Q.SCHEMES:
            q = Q.quantize_model(copy.deepcopy(net), scheme)
            assert Q.accuracy(q(x), ref)["cos"] > 0.98, scheme


def test_model_weight_bytes_drops_with_bits():
    sizes = [Q.model_weight_bytes(Q.quantize_model(_toy_model(), s, Q.FULL_COVERAGE, group_size=32))
             for s in ("bf16", "int8", "int4wo")]
    assert sizes[0] > sizes[1] > sizes[2]


def test_torchao_guarded():
    have = importlib.util.find_spec("torchao") is not None
    assert (Q.torchao_version() is not None) == have
    if not have:
        with pytest.raises(ImportError):
            Q.apply_torchao(nn.Sequential(nn.Linear(16, 16)), "int8wo")
