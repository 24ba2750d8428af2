"""Low-bit benchmarks behind chapter 5: what each way of misreading 4-bit weights does to a
layer, an MLP and the model, and one projection's matmul in bf16, INT4, INT8 and FP8.

* `fault_injection`: the prefill with every quantization scale dropped (one runtime fault a
  cos ~ 0 can come from), accuracy only, layer by layer.
* `fault_levels`: weight-misreading faults (`precision.faults`) at layer, MLP and model level.
* `lowbit_sweep`: one projection's matmul in bf16, INT4 weight-only, INT8 and FP8 across token
  counts, each checked (`accuracy_gate`) before it is timed.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import precision as Q
from .check import cosine
from .config import TransformerConfig
from .quantized_prefill import (GATE, References, build_variant, detach_outputs, kernels_used, layer_kv_cosines,
                                output_accuracy, parse_variant)
from .prefill_bench import build_llm, exact_fp32
from .timing import time_fn
from .log import progress

def fault_injection(refs: References, schemes: Iterable[str], coverage: str = "full",
                    backend: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy (no timing) of the prefill with `schemes` on `coverage`, with their scales and
    with every scale dropped ("<scheme>_noscale", what a runtime that ignores the scale
    tensors computes). Returns (one row per model, one row per model and layer: KV cosine)."""
    rows, per_layer = [], []
    for scheme in schemes:
        v = parse_variant(f"{scheme}/{coverage}", "eager")
        model = build_variant(refs.cfg, v, refs.device, refs.dtype, backend, fused=refs.fused)
        with torch.no_grad():
            out = detach_outputs(model.prefill(refs.x.to(refs.dtype)))
        used = kernels_used(model)
        rows.append({"scheme": v.scheme, "coverage": v.coverage, "scales": "dropped" if v.scale_ignored else "kept",
                     "kernels": "/".join(sorted(used)), **output_accuracy(out, refs.base_out, "vs_base_"),
                     **output_accuracy(out, refs.fp32_out, "vs_fp32_"),
                     "hidden_norm_ratio": float(out[0].float().norm() / refs.base_out[0].float().norm())})
        for i, c in enumerate(layer_kv_cosines(out, refs.base_out)):
            per_layer.append({"scheme": v.scheme, "scales": rows[-1]["scales"], "layer": i, "kv_cos": c})
        del model
        if refs.device.type == "cuda":
            torch.cuda.empty_cache()
    return pd.DataFrame(rows), pd.DataFrame(per_layer)


def fault_levels(refs: References, group_size: int = 128, faults: Iterable[str] | None = None) -> pd.DataFrame:
    """Each fault of `precision.faults.fault_weights` at three levels, fp32, against the true
    fp32 computation on fresh input: one layer (layer 0's query projection on its real input),
    one MLP (layer 0's, every projection faulted, on its real input) and the model (the whole
    prefill with every projection faulted: final hidden state, and the first layer's K/V).
    Signature = cos and norm ratio (||faulty|| / ||true||)."""
    from .precision import faults as FA

    table = FA.fault_weights(group_size)
    names = list(faults) if faults is not None else list(table)
    model = refs.fp32_model
    layer0 = model.layers[0]
    dev = refs.device
    gen = torch.Generator().manual_seed(777)
    with exact_fp32(), torch.no_grad():
        x = torch.randn(1, refs.tokens, refs.cfg.width, generator=gen).to(dev)
        xq = layer0.input_norm(x)[0].reshape(-1, refs.cfg.width)
        xm = layer0.post_attn_norm(x)[0]
        wq = layer0.attn.qkv_proj.weight[: refs.cfg.q_dim].detach().float()
        q_ref, mlp_ref = xq @ wq.t(), layer0.mlp(xm)
        rows = []
        for name in names:
            fmt_, fn = table[name]
            lay = FA.signature(xq @ fn(wq).t(), q_ref)
            mlp = FA.signature(FA.apply_fault(layer0.mlp, fn)(xm), mlp_ref)
            faulty = FA.apply_fault(model, fn, Q.FULL_COVERAGE)
            h, kv = faulty.prefill(refs.x)
            mod = FA.signature(h, refs.fp32_out[0])
            kv0 = cosine(torch.cat([kv[0][0].flatten(), kv[0][1].flatten()]),
                         torch.cat([refs.fp32_out[1][0][0].flatten(), refs.fp32_out[1][0][1].flatten()]))
            rows.append({"fault": name, "format": fmt_, "layer_cos": lay["cos"], "layer_norm_ratio": lay["norm_ratio"],
                         "mlp_cos": mlp["cos"], "mlp_norm_ratio": mlp["norm_ratio"], "model_cos": mod["cos"],
                         "model_norm_ratio": mod["norm_ratio"], "model_first_kv_cos": kv0})
            del faulty
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def first_layer_q_input(cfg: TransformerConfig, tokens: int, device: torch.device, seed: int = 0,
                        input_seed: int = 4242) -> tuple[torch.Tensor, torch.Tensor]:
    """(q-projection weight [q_dim, width] of layer 0, its real input: input_norm of a fresh
    random embedding), fp32 on CPU: one layer of the model, for `precision.fault_signatures`."""
    layer = build_llm(cfg.with_depth(1), device, torch.float32, fused=True, seed=seed).layers[0]
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(input_seed)).to(device)
    with torch.no_grad():
        h = layer.input_norm(x)[0]
    return layer.attn.qkv_proj.weight[: cfg.q_dim].detach().cpu(), h.detach().cpu()


def lowbit_sweep(shapes: dict[str, tuple[int, int]], tokens: Iterable[int], device: torch.device, repeats: int,
                 group_size: int = 128, seed: int = 0, log=progress) -> pd.DataFrame:
    """One projection y = x W^T (W [N,K], std 1/sqrt(K)) per (shape, token count) as:
    bf16 F.linear; INT4 weight-only (torch._weight_int4pack_mm, group `group_size`, called
    through Int4WOLinear); INT8 W8A8 as the bare torch._int_mm kernel on pre-quantized
    operands (M padded to 17 rows where smaller: the kernel's minimum) and as the whole eager
    layer (dynamic per-token quantization + _int_mm + rescale); FP8 rowwise torch._scaled_mm
    on pre-quantized operands where the device has FP8. Each is checked on fresh inputs before
    it is timed: bf16 against fp32, INT4 / FP8 against the exact simulation of their own codes
    (and against fp32), _int_mm against an exact integer reference (int32 accumulation: error 0)."""
    device = torch.device(device)
    fp8 = Q.fp8_supported(device)
    int4 = Q.int4_supported(device)
    int8 = Q.int_mm_supported(device)
    rows = []
    g = torch.Generator().manual_seed(seed)
    for label, (N, K) in shapes.items():
        w = (torch.randn(N, K, generator=g) / math.sqrt(K)).to(device)
        lin = nn.Linear(K, N, bias=False, device=device).requires_grad_(False)
        lin.weight.copy_(w)
        w_bf = w.to(torch.bfloat16)
        i4 = Q.quantize_linear(lin, "int4wo", group_size=group_size, backend="native") if int4 else None
        i8 = Q.quantize_linear(lin, "int8", backend="native") if int8 else None
        f8 = Q.quantize_linear(lin, "fp8_channel", backend="native") if fp8 else None
        if i4 is not None:
            i4.prepack(device)
        for M in tokens:
            x = torch.randn(M, K, generator=g).to(device=device, dtype=torch.bfloat16)
            with exact_fp32():
                ref = x.float() @ w.t()
            cases: dict[str, tuple[Callable[[], torch.Tensor], Callable[[torch.Tensor], dict], int]] = {}
            cases["bf16"] = (lambda: F.linear(x, w_bf), lambda y: accuracy_gate(y, ref, 2e-2), N * K * 2)
            if i4 is not None:
                sim4 = i4._simulate(x)
                cases["int4wo"] = (lambda: i4(x), lambda y: {**accuracy_gate(y, sim4, 2e-2), **accuracy_gate(y, ref, 0.2, "fp32_")},
                                   i4.weight_bytes())
            if i8 is not None:
                xq, _ = Q.quantize_int8(x, "row")
                if M <= 16:
                    xq = F.pad(xq, (0, 0, 0, 17 - M))
                wq_t = i8.qweight.t()
                exact = (xq.double() @ i8.qweight.double().t())
                cases["int8 _int_mm kernel"] = (lambda: torch._int_mm(xq, wq_t), lambda y: accuracy_gate(y, exact, 1e-6),
                                                i8.weight_bytes())
                cases["int8 layer (eager)"] = (lambda: i8(x), lambda y: accuracy_gate(y, ref, 5e-2), i8.weight_bytes())
            if f8 is not None:
                xq8, sx8 = Q.quantize_fp8(x, "row")
                sw8 = f8.weight_scale.reshape(1, -1).contiguous()
                w8_t = f8.qweight.t()
                sim8 = (xq8.float() * sx8) @ f8.dequantized_weight().t()
                cases["fp8 _scaled_mm kernel"] = (
                    lambda: torch._scaled_mm(xq8, w8_t, scale_a=sx8, scale_b=sw8, out_dtype=torch.bfloat16),
                    lambda y: {**accuracy_gate(y, sim8, 2e-2), **accuracy_gate(y, ref, GATE["fp8"], "fp32_")}, f8.weight_bytes())
            for impl, (fn, gate, nbytes) in cases.items():
                with torch.no_grad():
                    check = gate(fn())
                    t = time_fn(fn, device, repeats)
                rows.append({"gemm": label, "N": N, "K": K, "tokens": M, "impl": impl, **t.as_dict(),
                             "tflops": 2 * M * N * K / (t.median_ms * 1e-3) / 1e12,
                             "weight_bytes": nbytes, "weight_gbps": nbytes / (t.median_ms * 1e-3) / 1e9, **check})
            log(f"  {label} @ {M} tokens: " + ", ".join(f"{r['impl']} {r['median_ms']:.4f} ms"
                                                        for r in rows if r["gemm"] == label and r["tokens"] == M))
    return pd.DataFrame(rows)


_LARGE = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"))


def ratio_text(value: float | None) -> str:
    """A ratio that may be huge (a faulty output's norm over the true one: up to ~10¹² when every
    scale of an MLP is dropped), for a table cell or a sentence: as `report.num` below a million,
    above it in words ("824 billion"), never in e-notation; a dash when missing."""
    from .report import DASH, num

    if value is None or value != value:
        return DASH
    v = float(value)
    for factor, word in _LARGE:
        if abs(v) >= factor:
            return f"{num(v / factor)} {word}"
    return num(v)


def accuracy_gate(y: torch.Tensor, ref: torch.Tensor, tol: float, prefix: str = "") -> dict:
    """relative error and cosine in float64 on the tensors' device (check.relative_error /
    check.cosine move to the CPU first: too slow for the sweep's 2048 x 32768 outputs)."""
    if y.shape != ref.shape:
        raise AssertionError(f"shape {tuple(y.shape)} != reference {tuple(ref.shape)}")
    a, b = y.detach().double().flatten(), ref.detach().double().flatten()
    finite = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    nb = float(torch.linalg.vector_norm(b))
    err = float(torch.linalg.vector_norm(a - b)) / nb if finite and nb > 0 else math.inf
    cos = float(a @ b) / (float(torch.linalg.vector_norm(a)) * nb) if finite and nb > 0 else math.nan
    if not err <= tol:
        raise AssertionError(f"relative error {err:.3e} against the reference exceeds {tol:g}")
    return {f"{prefix}rel_err": err, f"{prefix}cos": cos}


def sweep_ratios(sweep: pd.DataFrame, base: str = "bf16") -> pd.DataFrame:
    """Time of each impl over the bf16 time at the same token count, summed over the GEMMs
    (an MLP when the shapes are gate_up and down): < 1 is faster. The sums' spread is taken as
    the sums of the quartiles (a slight overestimate of the IQR of a sum); a ratio whose two
    spreads overlap is marked noise."""
    tot = sweep.groupby(["tokens", "impl"]).agg(median_ms=("median_ms", "sum"), p25_ms=("p25_ms", "sum"),
                                                 p75_ms=("p75_ms", "sum")).reset_index()
    b = tot[tot.impl == base].set_index("tokens")
    tot["vs_bf16_ratio"] = tot.median_ms / tot.tokens.map(b.median_ms)
    tot["noise"] = [not (r.p75_ms < b.p25_ms[r.tokens] or b.p75_ms[r.tokens] < r.p25_ms) and r.impl != base
                    for r in tot.itertuples()]
    return tot


