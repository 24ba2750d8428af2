"""Low-precision benchmarks beside the quantized prefill (chapters 4 and 5): its roofline floor per
precision, FP8 where the device is memory-bound, and the Q/DQ ONNX / TensorRT path of one MLP.

* `precision_floors`: the prefill's roofline floor for each weight / compute precision.
* `memory_bound_fp8`: bf16 against FP8 where the device is memory-bound (few tokens), each
  compiled and CUDA-graphed, beside the speed-up the bytes predict.
* `geglu_qdq_check`, `tensorrt_mlp`: Gemma's MLP as a Q/DQ ONNX graph, run in onnxruntime and
  (where installed) built and timed as a TensorRT engine.

The quantized prefill itself (variant specs, checked and timed runs) is `quantized_prefill`; the
4-bit benchmarks (faults, the low-bit matmul sweep) are in `lowbit_bench`.
"""
from __future__ import annotations

import math
import time
from typing import Iterable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import flops as fl
from . import precision as Q
from .config import TransformerConfig
from .prefill_bench import build_llm, exact_fp32
from .quantized_prefill import build_variant, parse_variant, quantized_prefill_variants, references
from .timing import time_fn
from .log import progress


def geglu_qdq_check(mlp: nn.Module, x_cal: torch.Tensor, x: torch.Tensor, path: str, scheme: str = "fp8",
                    per_channel: bool = True) -> dict:
    """Export Gemma's MLP as a Q/DQ ONNX graph, run it in onnxruntime (CPU) on fresh input,
    compare with the torch meaning of the same graph and with the unquantized fp32 MLP."""
    info = Q.export_geglu_qdq_onnx(mlp, x_cal, path, scheme=scheme, per_channel=per_channel)
    scale_dtypes = Q.onnx_scale_dtypes(path)
    t0 = time.perf_counter()
    ort = torch.from_numpy(Q.run_onnxruntime(path, x))
    ort_s = time.perf_counter() - t0
    sim = Q.simulate_geglu_qdq(mlp, x, info)
    with torch.no_grad():
        ref = _geglu_fp32(mlp, x.detach().float().reshape(-1, x.shape[-1]).cpu())
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    ops = pd.Series([n.op_type for n in graph.node]).value_counts().to_dict()
    return {"scheme": scheme, "per_channel": per_channel, "path": path, "info": info,
            "scale_dtypes": scale_dtypes, "all_scales_float32": set(scale_dtypes.values()) == {"FLOAT"},
            "ops": ops, "ort_vs_torch": Q.accuracy(ort, sim), "ort_vs_fp32": Q.accuracy(ort, ref),
            "ort_wall_s": ort_s, "ort_out": ort, "torch_out": sim}


def _geglu_fp32(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from .precision.onnx_qdq import _geglu_weights

    gate, up, down = _geglu_weights(mlp)
    return (F.gelu(x @ gate.t(), approximate="tanh") * (x @ up.t())) @ down.t()


def tensorrt_mlp(path: str, x: torch.Tensor, expected: torch.Tensor, fp8: bool, repeats: int) -> dict:
    """Build a TensorRT engine from a Q/DQ ONNX file and time it (TensorRT's own event loop,
    no L2 flush); its output compared with the torch meaning of the graph. Needs
    `precision.tensorrt_available()`."""
    log: list[str] = []
    t0 = time.perf_counter()
    engine = Q.build_trt_engine(path, fp8=fp8, int8=not fp8, bf16=True, shapes=tuple(x.reshape(-1, x.shape[-1]).shape),
                                log=log)
    build_s = time.perf_counter() - t0
    res = Q.time_trt_engine(engine, x.reshape(-1, x.shape[-1]).float(), iters=max(10, repeats))
    out = next(iter(res["outputs"].values())).float().cpu()
    times = res["times_ms"]
    q = len(times) // 4
    return {"median_ms": res["median_ms"], "p25_ms": times[q], "p75_ms": times[-q - 1], "build_s": build_s,
            "vs_torch": Q.accuracy(out, expected), "version": Q.tensorrt_version(),
            "scale_warnings": [m for m in log if "SCALE" in m or "ignored" in m]}


def mlp_layer_timings(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
                      repeats: int, schemes: Iterable[str] = ("base", "fp8_tensor", "fp8_channel")) -> pd.DataFrame:
    """One Gemma MLP (fused gate_up + GeGLU + down) at `tokens`, eager, per scheme: beside a
    TensorRT engine of the same MLP."""
    one = cfg.with_depth(1)
    rows = []
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(99)).to(device)
    with exact_fp32(), torch.no_grad():
        ref = build_llm(one, device, torch.float32, fused=True).layers[0].mlp(x)
    for s in schemes:
        v = parse_variant(s if s == "base" else f"{s}/mlp", "eager")
        mlp = build_variant(one, v, device, dtype, fused=True).layers[0].mlp
        with torch.no_grad():
            y = mlp(x.to(dtype))
            t = time_fn(lambda: mlp(x.to(dtype)), device, repeats)
        rows.append({"mlp": f"torch {v.scheme} (eager)", **t.as_dict(), **Q.accuracy(y, ref)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- floors per precision
def precision_floors(cfg: TransformerConfig, tokens: int, devices: list[dict]) -> pd.DataFrame:
    """The prefill's roofline floor, max(FLOPs / peak of the compute precision, bytes /
    bandwidth), for each weight / compute precision. Bytes are the fewest any implementation
    must move (`flops.stack_cost`'s min_bytes: weights read once, the bf16 KV cache written, the
    stack's input and output; intermediate activations stay on chip), with the weight bytes
    scaled by the bits per weight (INT4 group 128 with bf16 scale and zero: 4.25 bits; NVFP4:
    4 bits + one E4M3 scale per 16 = 4.5). `memory_unfused_ms` counts every op's activations
    through memory as chapters 2 and 3 do. devices: dicts with name, bandwidth_gbps and
    peak TFLOP/s per compute precision ({"bf16": .., "fp8": .., "fp4": ..}; None where the
    device has no such tensor cores)."""
    cost = fl.stack_cost(cfg, tokens)
    other = cost["min_bytes"] - cost["weight_bytes"]
    cases = [("bf16 weights, bf16 compute", 16.0, "bf16"),
             ("INT4 weight-only (group 128), bf16 compute", 4.25, "bf16"),
             ("FP8 weights, FP8 compute", 8.0, "fp8"),
             ("NVFP4 weights, FP4 compute", 4.5, "fp4")]
    rows = []
    for d in devices:
        base_floor = None
        for label, bits, comp in cases:
            peak = d["tflops"].get(comp)
            wbytes = cost["weight_bytes"] * bits / 16
            memory_ms = (wbytes + other) / (d["bandwidth_gbps"] * 1e9) * 1e3
            unfused_ms = (wbytes + cost["act_bytes"] + cost["kv_bytes"]) / (d["bandwidth_gbps"] * 1e9) * 1e3
            compute_ms = cost["flops"] / (peak * 1e12) * 1e3 if peak else math.nan
            floor = max(compute_ms, memory_ms) if peak else math.nan
            if base_floor is None:
                base_floor = floor
            rows.append({"device": d["name"], "precision": label, "weight_bits": bits, "compute": comp,
                         "weight_gb": wbytes / 1e9, "memory_ms": memory_ms, "compute_ms": compute_ms,
                         "floor_ms": floor,
                         "bound": (None if not peak else "memory" if memory_ms >= compute_ms else "compute"),
                         "speedup_vs_bf16_floor": base_floor / floor if peak else math.nan,
                         "weight_traffic_ratio": 16 / bits, "memory_unfused_ms": unfused_ms})
    return pd.DataFrame(rows)


def ridge_tokens(cfg: TransformerConfig, copy_gbps: float, peak_tflops: float, max_tokens: int = 4096) -> int | None:
    """The smallest token count at which the stack's arithmetic intensity (FLOPs over its
    fewest bytes, `flops.stack_cost`) reaches the device's ridge (peak / bandwidth): below it
    the stack is memory-bound on that device. None if not reached by `max_tokens`."""
    ridge = peak_tflops * 1e12 / (copy_gbps * 1e9)
    t = 1
    while t <= max_tokens:
        c = fl.stack_cost(cfg, t)
        if c["flops"] / c["min_bytes"] >= ridge:
            return t
        t += 1 if t < 16 else 8
    return None


def memory_bound_fp8(shapes: dict[str, tuple[TransformerConfig, int]], device: torch.device, dtype: torch.dtype,
                     repeats: int, here: dict, fp8_variant: str = "fp8_channel/full/fast_accum",
                     scope: str = "layer_graph", log=progress) -> pd.DataFrame:
    """bf16 against FP8 where the stack is memory-bound: for each {label: (config, tokens)}
    the unquantized and the `fp8_variant` stack, built, checked against fp32 and timed by
    `quantized_prefill_variants` in `scope` (compiled + one CUDA graph on a GPU), beside the
    speed-up the roofline predicts from `precision_floors` on `here` (a `floor_devices` entry):
    the ratio of the two floors, which is the bytes ratio where both are memory-bound.
    A shape that fails (exception or failed check) is a row with its error, never a crash."""
    rows = []
    for label, (cfg, tokens) in shapes.items():
        fl_rows = precision_floors(cfg, tokens, [here])
        b16 = fl_rows[fl_rows.precision.str.startswith("bf16")].iloc[0]
        f8 = fl_rows[fl_rows.compute == "fp8"].iloc[0]
        row = {"case": label, "tokens": tokens, "scope": scope, "bound": b16.bound,
               "predicted_speedup_ratio": b16.memory_ms / f8.memory_ms if b16.bound == "memory" else
               b16.floor_ms / f8.floor_ms, "bf16_floor_ms": b16.floor_ms}
        try:
            refs = references(cfg, tokens, device, dtype)
            var = quantized_prefill_variants(refs, repeats, ["base", fp8_variant], scope=scope, log=log)
            base, q = var.iloc[0], var.iloc[1]
            row.update(bf16_ms=base.median_ms, fp8_ms=q.median_ms, bf16_p25_ms=base.p25_ms, bf16_p75_ms=base.p75_ms,
                       fp8_p25_ms=q.p25_ms, fp8_p75_ms=q.p75_ms, method=q.method, fp8_kernels=q.kernels,
                       measured_speedup_ratio=base.median_ms / q.median_ms, fp8_vs_base_cos=q.vs_base_hidden_cos,
                       error=None)
        except Exception as e:  # noqa: BLE001 - a failed variant is a finding, recorded with its message
            log(f"  {label}: failed: {type(e).__name__}: {e}")
            row.update(bf16_ms=math.nan, fp8_ms=math.nan, measured_speedup_ratio=math.nan,
                       error=f"{type(e).__name__}: {str(e)[:300]}")
        rows.append(row)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def memory_bound_scope(cuda: bool) -> str:
    """How chapter 4 runs its memory-bound FP8 test: each layer compiled and the stack in one CUDA
    graph on a GPU (so that no launch gap hides the bytes it saves), eager on a CPU smoke run."""
    return "layer_graph" if cuda else "eager"


def floor_devices(run) -> list[dict]:
    """Thor from its spec (quoted) and this device from its measured ceilings, in the form
    `precision_floors` takes."""
    from . import ceilings
    from .reference import quoted

    ceil = ceilings.for_run(run)
    thor = {"name": "Thor (quoted)", "bandwidth_gbps": quoted("thor_bandwidth_gbps"),
            "tflops": {"bf16": quoted("thor_bf16_dense_tflops"), "fp8": quoted("thor_fp8_dense_tflops"),
                       "fp4": quoted("thor_fp4_dense_tflops")}}
    here = {"name": "this device (measured)", "bandwidth_gbps": ceil["copy_gbps"],
            "tflops": {"bf16": ceil["matmul_bf16_tflops"], "fp8": ceil.get("matmul_fp8_tflops"), "fp4": None}}
    return [thor, here]
