"""pi05perf.precision.onnx_qdq: Q/DQ ONNX export checked with onnxruntime against the torch meaning."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from pi05perf import precision as Q
from _precision_helpers import _linear, _fresh_input


# --------------------------------------------------------------------------- ONNX Q/DQ
@pytest.mark.parametrize("scheme", ["int8", "fp8"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("which", ["linear", "mlp"])
def test_qdq_onnx_export_and_onnxruntime(tmp_path, scheme, per_channel, which):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    mod = _linear(4, 128, 256, bias=True) if which == "linear" else nn.Sequential(
        _linear(4, 256, 256), nn.GELU(), nn.ReLU(), _linear(5, 128, 256, bias=True))
    x_cal, x = _fresh_input(11, 32, 256), _fresh_input(12, 32, 256)
    path = tmp_path / f"{which}_{scheme}.onnx"
    info = Q.export_qdq_onnx(mod, x_cal, str(path), scheme=scheme, per_channel=per_channel)
    scale_dtypes = Q.onnx_scale_dtypes(str(path))
    n_lin = 1 if which == "linear" else 2
    assert len(scale_dtypes) == 2 * n_lin and set(scale_dtypes.values()) == {"FLOAT"}
    g = onnx.load(str(path)).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("QuantizeLinear") == n_lin and ops.count("DequantizeLinear") == 2 * n_lin
    wq = {t.name: onnx.TensorProto.DataType.Name(t.data_type) for t in g.initializer if t.name.endswith("w_q")}
    assert set(wq.values()) == {"INT8" if scheme == "int8" else "FLOAT8E4M3FN"}
    ort_out = torch.from_numpy(Q.run_onnxruntime(str(path), x))
    agree = Q.accuracy(ort_out, Q.simulate_qdq(mod, x, info))
    assert agree["cos"] >= 0.999 and agree["rel_err"] < 1e-4, agree  # same graph, fp32 rounding apart
    with torch.no_grad():
        ref = mod(x)
    assert Q.accuracy(ort_out, ref)["cos"] >= (0.999 if scheme == "int8" else 0.995)


def test_qdq_onnx_matches_int8_quantlinear(tmp_path):
    """The Q/DQ graph means what Int8Linear (per-tensor activations) computes."""
    lin, x = _linear(6, 128, 256), _fresh_input(13, 32, 256)
    Q.export_qdq_onnx(lin, x, str(tmp_path / "l.onnx"), scheme="int8")
    ort_out = torch.from_numpy(Q.run_onnxruntime(str(tmp_path / "l.onnx"), x))
    ql = Q.quantize_linear(lin, "int8", act="tensor", backend="simulate")
    assert Q.accuracy(ort_out, ql(x))["rel_err"] < 1e-5


# --------------------------------------------------------------------------- Gemma MLP as Q/DQ
def _geglu(fused: bool, width: int = 128, hidden: int = 256):
    from pi05perf.model import GeGLU

    g = torch.Generator().manual_seed(21)
    mlp = GeGLU(width, hidden)
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
    if fused:
        mlp.fuse_()
    return mlp


@pytest.mark.parametrize("scheme", ["fp8", "int8"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_geglu_qdq_onnx_export_and_onnxruntime(tmp_path, scheme, per_channel, fused):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    mlp = _geglu(fused)
    x_cal, x = _fresh_input(31, 40, 128), _fresh_input(32, 24, 128)
    path = str(tmp_path / "mlp.onnx")
    info = Q.export_geglu_qdq_onnx(mlp, x_cal, path, scheme=scheme, per_channel=per_channel)
    assert set(Q.onnx_scale_dtypes(path).values()) == {"FLOAT"} and len(Q.onnx_scale_dtypes(path)) == 4  # x, h, 2 weights
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 4 and ops.count("MatMul") == 2
    ort = torch.from_numpy(Q.run_onnxruntime(path, x))
    sim = Q.simulate_geglu_qdq(mlp, x, info)
    assert Q.accuracy(ort, sim)["rel_err"] < 1e-4  # the graph means what the simulation computes
    with torch.no_grad():
        ref = mlp(x)
    acc = Q.accuracy(ort, ref)
    assert acc["cos"] > 0.99, acc  # static per-tensor activation scales on loud tokens: measured 0.994-0.996
    # the same graph with the activation scales dropped (set to 1) is far off: they matter
    assert Q.accuracy(Q.simulate_geglu_qdq(mlp, x, {**info, "act_scales": [1.0, 1.0]}), ref)["rel_err"] > 0.05


def test_geglu_qdq_rejects_other_modules(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(TypeError):
        Q.export_geglu_qdq_onnx(nn.Linear(8, 8), torch.randn(4, 8), str(tmp_path / "x.onnx"))
