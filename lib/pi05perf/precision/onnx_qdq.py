"""Explicit-quantization ONNX graphs (QuantizeLinear / DequantizeLinear, the pattern
TensorRT's explicit quantization reads), written with onnx.helper, run in onnxruntime, and
their meaning simulated in torch to compare runtimes against.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import FP8, FP8_MAX, INT8_MAX, _amax_scale
from .fp8 import quantize_fp8
from .int8 import quantize_int8


def _linear_chain(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Linear):
        return [module]
    if isinstance(module, nn.Sequential):
        layers = list(module)
        ok = (nn.Linear, nn.ReLU, nn.GELU, nn.Identity)
        if all(isinstance(m, ok) for m in layers):
            return layers
    raise TypeError("export_qdq_onnx takes an nn.Linear or an nn.Sequential of nn.Linear/ReLU/GELU")


def _save_onnx(nodes: list, inits: list, name: str, k_in: int, n_out: int, opset: int, path) -> None:
    """One float input x [M, k_in] and output y [M, n_out] around `nodes`; checked, then saved."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n_out])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pi05perf.precision")
    model.ir_version = min(model.ir_version, 10)  # readable by current onnxruntime / TensorRT parsers
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_qdq_onnx(module: nn.Module, example_input: torch.Tensor, path: str,
                    scheme: Literal["int8", "fp8"] = "int8", per_channel: bool = True,
                    opset: int = 19) -> dict:
    """Write the TensorRT explicit-quantization pattern for `module` (an nn.Linear or an
    nn.Sequential of linears and ReLU/GELU) with onnx.helper:

        x -> QuantizeLinear -> DequantizeLinear -> MatMul(., DequantizeLinear(W_q)) [-> Add b]

    W_q is a quantized initializer [K,N] (int8, or FLOAT8E4M3FN), its scale fp32 per output
    channel (axis=1) or per tensor; activations get one *static* fp32 scale per layer,
    calibrated as amax/qmax of that layer's input on `example_input` (Q/DQ has no dynamic
    per-token form). Every scale is a float32 initializer (`onnx_scale_dtypes` checks).
    FP8 needs opset >= 19; onnxruntime's CPU provider may not run FP8 Q/DQ, so FP8 is an
    export for TensorRT, and INT8 is the one checked against onnxruntime. Returns a dict of
    the calibration (act_scales) for the torch-side simulation."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    if scheme == "fp8" and opset < 19:
        raise ValueError("FP8 QuantizeLinear needs opset >= 19")
    layers = _linear_chain(module)
    qmax = INT8_MAX if scheme == "int8" else FP8_MAX
    nodes, inits = [], []
    k0 = layers[0].in_features if isinstance(layers[0], nn.Linear) else example_input.shape[-1]
    cur, h = "x", example_input.detach().float().reshape(-1, example_input.shape[-1])
    act_scales = []

    def f32(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))

    def qzero(name, shape):
        if scheme == "int8":
            inits.append(helper.make_tensor(name, TensorProto.INT8, shape, [0] * int(np.prod(shape or [1]))))
        else:
            inits.append(helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, shape,
                                            bytes(int(np.prod(shape or [1]))), raw=True))

    for i, m in enumerate(layers):
        p = f"l{i}"
        if isinstance(m, nn.Linear):
            sx = float(_amax_scale(h, qmax, None))
            act_scales.append(sx)
            f32(f"{p}.x_scale", np.float32(sx))
            qzero(f"{p}.x_zp", [])
            nodes += [helper.make_node("QuantizeLinear", [cur, f"{p}.x_scale", f"{p}.x_zp"], [f"{p}.xq"]),
                      helper.make_node("DequantizeLinear", [f"{p}.xq", f"{p}.x_scale", f"{p}.x_zp"], [f"{p}.xdq"])]
            gran = "row" if per_channel else "tensor"
            if scheme == "int8":
                wq, sw = quantize_int8(m.weight, gran)
                wq_t = wq.t().contiguous()  # [K,N]
                inits.append(numpy_helper.from_array(wq_t.numpy(), f"{p}.w_q"))
            else:
                wq, sw = quantize_fp8(m.weight, gran)
                wq_t = wq.t().contiguous()
                inits.append(helper.make_tensor(f"{p}.w_q", TensorProto.FLOAT8E4M3FN, list(wq_t.shape),
                                                wq_t.view(torch.uint8).numpy().tobytes(), raw=True))
            n_out = m.out_features
            if per_channel:
                f32(f"{p}.w_scale", sw.reshape(-1).numpy())
                qzero(f"{p}.w_zp", [n_out])
                nodes.append(helper.make_node("DequantizeLinear", [f"{p}.w_q", f"{p}.w_scale", f"{p}.w_zp"],
                                              [f"{p}.w"], axis=1))
            else:
                f32(f"{p}.w_scale", np.float32(float(sw)))
                qzero(f"{p}.w_zp", [])
                nodes.append(helper.make_node("DequantizeLinear", [f"{p}.w_q", f"{p}.w_scale", f"{p}.w_zp"], [f"{p}.w"]))
            out = f"{p}.mm"
            nodes.append(helper.make_node("MatMul", [f"{p}.xdq", f"{p}.w"], [out]))
            if m.bias is not None:
                f32(f"{p}.b", m.bias.detach().float().numpy())
                nodes.append(helper.make_node("Add", [out, f"{p}.b"], [f"{p}.out"]))
                out = f"{p}.out"
            with torch.no_grad():
                h = m(h)
        elif isinstance(m, nn.ReLU):
            out = f"{p}.relu"
            nodes.append(helper.make_node("Relu", [cur], [out]))
            h = F.relu(h)
        elif isinstance(m, nn.GELU):
            out = f"{p}.gelu"
            if opset >= 20:
                nodes.append(helper.make_node("Gelu", [cur], [out], approximate=m.approximate))
            else:
                if m.approximate != "none":
                    raise ValueError("tanh GELU needs opset >= 20")
                f32(f"{p}.rsqrt2", np.float32(1 / math.sqrt(2)))
                f32(f"{p}.half", np.float32(0.5))
                f32(f"{p}.one", np.float32(1.0))
                nodes += [helper.make_node("Mul", [cur, f"{p}.rsqrt2"], [f"{p}.a"]),
                          helper.make_node("Erf", [f"{p}.a"], [f"{p}.e"]),
                          helper.make_node("Add", [f"{p}.e", f"{p}.one"], [f"{p}.e1"]),
                          helper.make_node("Mul", [cur, f"{p}.e1"], [f"{p}.t"]),
                          helper.make_node("Mul", [f"{p}.t", f"{p}.half"], [out])]
            h = F.gelu(h, approximate=m.approximate)
        else:  # Identity
            continue
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    n_last = h.shape[-1]
    _save_onnx(nodes, inits, f"qdq_{scheme}", k0, n_last, opset, path)
    return {"path": str(path), "scheme": scheme, "opset": opset, "act_scales": act_scales,
            "per_channel": per_channel}


def onnx_scale_dtypes(path: str) -> dict[str, str]:
    """{scale input name: ONNX dtype name} of every QuantizeLinear/DequantizeLinear."""
    import onnx
    from onnx import TensorProto

    m = onnx.load(path)
    dtypes = {t.name: TensorProto.DataType.Name(t.data_type) for t in m.graph.initializer}
    return {n.input[1]: dtypes.get(n.input[1], "non-initializer")
            for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def run_onnxruntime(path: str, x: torch.Tensor, optimize: bool = False):
    """Run the exported graph on onnxruntime's CPU provider; returns a numpy array.

    optimize=False (default) runs the graph as written. With onnxruntime's extended graph
    optimizations (1.32 measured) a Relu in front of an FP8 QuantizeLinear is removed --
    a fold that is only valid for integer Q with zero_point = qmin -- and the output drifts
    (cos ~ 0.7 on a Linear-ReLU-Linear): a runtime mishandling Q/DQ, like TensorRT's on Thor."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    arr = x.detach().float().reshape(-1, x.shape[-1]).cpu().numpy().astype(np.float32)
    return sess.run(None, {name: arr})[0]


def simulate_qdq(module: nn.Module, x: torch.Tensor, info: dict) -> torch.Tensor:
    """The torch-side meaning of an `export_qdq_onnx` graph (same static activation scales),
    in fp32, to compare onnxruntime / TensorRT against."""
    scheme = info["scheme"]
    h = x.detach().float().reshape(-1, x.shape[-1])
    scales = iter(info["act_scales"])
    for m in _linear_chain(module):
        if isinstance(m, nn.Linear):
            sx = next(scales)
            if scheme == "int8":
                hq = torch.round(h / sx).clamp(-128, 127) * sx
                wq, sw = quantize_int8(m.weight, "row" if info["per_channel"] else "tensor")
            else:
                hq = (h / sx).clamp(-FP8_MAX, FP8_MAX).to(FP8).float() * sx
                wq, sw = quantize_fp8(m.weight, "row" if info["per_channel"] else "tensor")
            h = hq @ (wq.float() * sw).t()
            if m.bias is not None:
                h = h + m.bias.detach().float()
        elif isinstance(m, nn.ReLU):
            h = F.relu(h)
        elif isinstance(m, nn.GELU):
            h = F.gelu(h, approximate=m.approximate)
    return h


def _geglu_weights(mlp: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gate [H,W], up [H,W], down [W,H]) fp32 on CPU from a Gemma GeGLU MLP, fused or not."""
    if hasattr(mlp, "gate_up_proj"):
        gate, up = mlp.gate_up_proj.weight.detach().float().chunk(2, dim=0)
    elif hasattr(mlp, "gate_proj") and hasattr(mlp, "up_proj"):
        gate, up = mlp.gate_proj.weight.detach().float(), mlp.up_proj.weight.detach().float()
    else:
        raise TypeError("export_geglu_qdq_onnx needs a GeGLU MLP (gate_up_proj or gate_proj/up_proj, down_proj)")
    if any(getattr(getattr(mlp, n, None), "bias", None) is not None for n in ("gate_up_proj", "gate_proj", "up_proj", "down_proj")):
        raise TypeError("export_geglu_qdq_onnx: Gemma's MLP has no biases")
    return gate.cpu(), up.cpu(), mlp.down_proj.weight.detach().float().cpu()


def _gelu_tanh(h: torch.Tensor) -> torch.Tensor:
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h * h * h)))


def export_geglu_qdq_onnx(mlp: nn.Module, example_input: torch.Tensor, path: str,
                          scheme: Literal["int8", "fp8"] = "fp8", per_channel: bool = True,
                          opset: int = 19) -> dict:
    """Gemma's MLP, down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)), as an explicit-Q/DQ ONNX
    graph (the pattern TensorRT's explicit quantization reads), written with onnx.helper:

        x -> Q -> DQ -> MatMul(., DQ(W_gate_up_q)) -> Split -> gelu_tanh(gate) * up
          -> Q -> DQ -> MatMul(., DQ(W_down_q)) -> y

    Weights are quantized initializers [K,N] (FLOAT8E4M3FN or INT8) with fp32 scales per output
    channel (axis=1) or per tensor; the two activation Q/DQ pairs use static fp32 per-tensor
    scales calibrated as amax/qmax on `example_input` (of the unquantized fp32 MLP). GELU
    (tanh form) is spelled out in Mul/Add/Tanh so opset 19 parsers take it. Every scale is a
    float32 initializer (`onnx_scale_dtypes`). Returns the calibration for
    `simulate_geglu_qdq`."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    if scheme == "fp8" and opset < 19:
        raise ValueError("FP8 QuantizeLinear needs opset >= 19")
    gate, up, down = _geglu_weights(mlp)
    hidden, width = gate.shape
    qmax = INT8_MAX if scheme == "int8" else FP8_MAX
    gran = "row" if per_channel else "tensor"
    x = example_input.detach().float().reshape(-1, example_input.shape[-1]).cpu()
    h = F.gelu(x @ gate.t(), approximate="tanh") * (x @ up.t())
    act_scales = [float(_amax_scale(x, qmax, None)), float(_amax_scale(h, qmax, None))]
    nodes, inits = [], []
    qtype = TensorProto.INT8 if scheme == "int8" else TensorProto.FLOAT8E4M3FN

    def f32(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))

    def qzero(name, shape):
        n = int(np.prod(shape or [1]))
        if scheme == "int8":
            inits.append(helper.make_tensor(name, qtype, shape, [0] * n))
        else:
            inits.append(helper.make_tensor(name, qtype, shape, bytes(n), raw=True))

    def weight(name, w):  # w [N,K] -> quantized [K,N] initializer + its DQ node
        if scheme == "int8":
            wq, sw = quantize_int8(w, gran)
            inits.append(numpy_helper.from_array(wq.t().contiguous().numpy(), f"{name}.w_q"))
        else:
            wq, sw = quantize_fp8(w, gran)
            wq_t = wq.t().contiguous()
            inits.append(helper.make_tensor(f"{name}.w_q", qtype, list(wq_t.shape),
                                            wq_t.view(torch.uint8).numpy().tobytes(), raw=True))
        if per_channel:
            f32(f"{name}.w_scale", sw.reshape(-1).numpy())
            qzero(f"{name}.w_zp", [w.shape[0]])
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}.w_q", f"{name}.w_scale", f"{name}.w_zp"],
                                          [f"{name}.w"], axis=1))
        else:
            f32(f"{name}.w_scale", np.float32(float(sw)))
            qzero(f"{name}.w_zp", [])
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}.w_q", f"{name}.w_scale", f"{name}.w_zp"],
                                          [f"{name}.w"]))
        return f"{name}.w"

    def qdq(name, inp, scale):
        f32(f"{name}.scale", np.float32(scale))
        qzero(f"{name}.zp", [])
        nodes.extend([helper.make_node("QuantizeLinear", [inp, f"{name}.scale", f"{name}.zp"], [f"{name}.q"]),
                      helper.make_node("DequantizeLinear", [f"{name}.q", f"{name}.scale", f"{name}.zp"], [f"{name}.dq"])])
        return f"{name}.dq"

    xdq = qdq("x", "x", act_scales[0])
    w_gu = weight("gate_up", torch.cat([gate, up], 0))
    nodes.append(helper.make_node("MatMul", [xdq, w_gu], ["gate_up"]))
    inits.append(numpy_helper.from_array(np.array([hidden, hidden], dtype=np.int64), "split_sizes"))
    nodes.append(helper.make_node("Split", ["gate_up", "split_sizes"], ["gate", "up"], axis=-1))
    for name, value in (("c_half", 0.5), ("c_one", 1.0), ("c_k", math.sqrt(2.0 / math.pi)), ("c_a", 0.044715)):
        f32(name, np.float32(value))
    nodes += [helper.make_node("Mul", ["gate", "gate"], ["g2"]),
              helper.make_node("Mul", ["g2", "gate"], ["g3"]),
              helper.make_node("Mul", ["g3", "c_a"], ["g3a"]),
              helper.make_node("Add", ["gate", "g3a"], ["inner"]),
              helper.make_node("Mul", ["inner", "c_k"], ["inner_k"]),
              helper.make_node("Tanh", ["inner_k"], ["th"]),
              helper.make_node("Add", ["th", "c_one"], ["th1"]),
              helper.make_node("Mul", ["gate", "th1"], ["gth"]),
              helper.make_node("Mul", ["gth", "c_half"], ["gelu"]),
              helper.make_node("Mul", ["gelu", "up"], ["h"])]
    hdq = qdq("h", "h", act_scales[1])
    w_d = weight("down", down)
    nodes.append(helper.make_node("MatMul", [hdq, w_d], ["y"]))
    _save_onnx(nodes, inits, f"geglu_qdq_{scheme}", width, width, opset, path)
    return {"path": str(path), "scheme": scheme, "opset": opset, "act_scales": act_scales,
            "per_channel": per_channel, "width": width, "hidden": hidden}


def simulate_geglu_qdq(mlp: nn.Module, x: torch.Tensor, info: dict) -> torch.Tensor:
    """What an `export_geglu_qdq_onnx` graph computes, in fp32 torch (same static activation
    scales, same weight codes), to compare onnxruntime / TensorRT against."""
    gate, up, down = _geglu_weights(mlp)
    scheme, gran = info["scheme"], "row" if info["per_channel"] else "tensor"

    def fq_act(t, s):
        if scheme == "int8":
            return torch.round(t / s).clamp(-128, 127) * s
        return (t / s).clamp(-FP8_MAX, FP8_MAX).to(FP8).float() * s

    def fq_w(w):
        wq, sw = quantize_int8(w, gran) if scheme == "int8" else quantize_fp8(w, gran)
        return wq.float() * sw

    h = x.detach().float().reshape(-1, x.shape[-1]).cpu()
    gu = fq_act(h, info["act_scales"][0]) @ fq_w(torch.cat([gate, up], 0)).t()
    g, u = gu.chunk(2, dim=-1)
    h = _gelu_tanh(g) * u
    return fq_act(h, info["act_scales"][1]) @ fq_w(down).t()
