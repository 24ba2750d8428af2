"""Fault injection: the ways a runtime can misread a quantized weight, and their signatures.

Each fault maps a true fp32 weight W [N,K] to the weight a faulty runtime multiplies by: it
quantizes W in one format and reads the codes or scales back wrongly (nibble order swapped,
block scales in the wrong layout, the buffer read in the other major order, FP4 E2M1 codes
read as INT4 integers, scales dropped). `fault_weights` lists them; `apply_fault` rewrites a
model's linears so a whole network runs with one fault; `fault_signatures` measures one layer.
The signature of a fault is two numbers: the output's cosine to the true output (direction)
and the ratio of their norms (magnitude). The measured values are the chapter's (chapter 5).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..check import cosine as _cosine
from .base import FP8, accuracy
from .fp8 import FP8Linear
from .int4 import int4_dequantize, int4_group_quantize
from .int8 import Int8Linear
from .nvfp4 import E2M1_VALUES, dequantize_nvfp4, e2m1_decode, quantize_nvfp4

if TYPE_CHECKING:
    import pandas as pd

Fault = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- misreadings
def swap_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Codes [.., K] with each adjacent (even, odd) pair along K exchanged: what a reader that
    takes the low nibble of a packed byte as the even element gets from `pack_uint4`'s layout
    (even k in the high nibble)."""
    *lead, k = codes.shape
    return codes.reshape(*lead, k // 2, 2).flip(-1).reshape(*lead, k)


def read_other_major(t: torch.Tensor) -> torch.Tensor:
    """A [R, C] buffer written row-major and read as if it were [C, R] row-major, returned in
    the [R, C] shape the reader believes it has (for square t: the transpose)."""
    r, c = t.shape[-2], t.shape[-1]
    return t.reshape(*t.shape[:-2], c, r).transpose(-1, -2)


def e2m1_as_int4(codes: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """FP4 E2M1 codes (sign bit 3, magnitude index 0..7 into E2M1_VALUES) read as integers:
    signed two's-complement INT4 (-8..7), or unsigned with tinygemm's -8 offset."""
    c = codes.to(torch.int16)
    return (torch.where(c >= 8, c - 16, c) if signed else c - 8).float()


def _nvfp4(w: torch.Tensor, block: int = 16):
    codes, bs, ts = quantize_nvfp4(w, block)
    return codes, bs.float(), ts.float()


def _nv_weight(codes_val: torch.Tensor, bs: torch.Tensor, ts: torch.Tensor, block: int = 16) -> torch.Tensor:
    n, k = codes_val.shape
    return (codes_val.reshape(n, k // block, block) * bs[..., None] * ts).reshape(n, k)


def fault_weights(group_size: int = 128) -> dict[str, tuple[str, Fault]]:
    """{fault name: (format, W -> the weight the faulty runtime uses)}. The "correct" rows are
    each format's own rounding, for comparison."""
    def i4(w, symmetric=False):
        return int4_group_quantize(w, min(group_size, w.shape[1]), symmetric)

    def g(w):
        return min(group_size, w.shape[1])

    def nv_scale_t(w):  # block scales [N, K/16] written row-major, read as [K/16, N]
        codes, bs, ts = _nvfp4(w)
        return _nv_weight(e2m1_decode(codes), read_other_major(bs), ts)

    def i4_scale_t(w):  # scales_and_zeros [K/G, N, 2] read as if laid out [N, K/G, 2]
        q, sz = i4(w)
        kg, n, _ = sz.shape
        return int4_dequantize(q, sz.reshape(n, kg, 2).transpose(0, 1), g(w))

    return {
        "nvfp4, correct": ("nvfp4", lambda w: dequantize_nvfp4(*quantize_nvfp4(w))),
        "nvfp4, scales dropped": ("nvfp4", lambda w: dequantize_nvfp4(*quantize_nvfp4(w), drop_scales=True)),
        "nvfp4, nibble order swapped": ("nvfp4", lambda w: (lambda c, b, t: dequantize_nvfp4(swap_nibbles(c), b, t))(
            *quantize_nvfp4(w))),
        "nvfp4, block scales transposed": ("nvfp4", nv_scale_t),
        "nvfp4, E2M1 codes read as signed INT4": ("nvfp4", lambda w: (lambda c, b, t: _nv_weight(e2m1_as_int4(c), b, t))(
            *_nvfp4(w))),
        "nvfp4, E2M1 codes read as uint4 - 8": ("nvfp4", lambda w: (lambda c, b, t: _nv_weight(
            e2m1_as_int4(c, signed=False), b, t))(*_nvfp4(w))),
        "int4, correct": ("int4", lambda w: int4_dequantize(*i4(w), g(w))),
        "int4, scales dropped": ("int4", lambda w: int4_dequantize(*i4(w), g(w), drop_scales=True)),
        "int4, nibble order swapped": ("int4", lambda w: (lambda q, sz: int4_dequantize(swap_nibbles(q), sz, g(w)))(*i4(w))),
        "int4, group scales transposed": ("int4", i4_scale_t),
        "int4, zero point dropped": ("int4", lambda w: (lambda q, sz: int4_dequantize(
            q, torch.stack([sz[..., 0], torch.zeros_like(sz[..., 1])], -1), g(w)))(*i4(w))),
        "bf16, weight read in the other major order": ("bf16", lambda w: read_other_major(w.to(torch.bfloat16).float())),
        "fp8, per-tensor scale dropped": ("fp8", lambda w: _fp8_lin(w).dequantized_weight(True)),
    }


def _fp8_lin(w: torch.Tensor) -> FP8Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False, device=w.device)
    lin.weight.data = w.detach().float()
    return FP8Linear(lin, "tensor")


def signature(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Direction and magnitude of `out` against `ref`: cos, ||out|| / ||ref||, relative error."""
    a = accuracy(out, ref)
    norm = float(out.detach().double().norm() / ref.detach().double().norm())
    return {"cos": a["cos"], "norm_ratio": norm, "rel_err": a["rel_err"]}


@torch.no_grad()
def apply_fault(module: nn.Module, fault: Fault, include: Callable[[str], bool] = lambda n: True) -> nn.Module:
    """A copy of `module` whose nn.Linear weights `include` accepts are replaced by `fault(W)`
    (computed in fp32 on the weight's device, stored back in its dtype): the network a runtime
    with that fault computes, activations unquantized."""
    m = copy.deepcopy(module)
    for name, lin in m.named_modules():
        if isinstance(lin, nn.Linear) and include(name):
            w = lin.weight
            lin.weight.copy_(fault(w.detach().float()).to(device=w.device, dtype=w.dtype))
    return m


# ----------------------------------------------------------------------------- one layer
def fault_signatures(weight: torch.Tensor, x: torch.Tensor, group_size: int = 128) -> "pd.DataFrame":
    """One layer, y = x W^T, under every fault of `fault_weights` (plus INT8 / FP8 scale drops
    and a permutation of the output channels). Returns a DataFrame (fault, format, weight_cos,
    out_cos, out_norm_ratio, out_rel_err) against the exact fp64 product."""
    import pandas as pd

    w = weight.detach().float().cpu()
    xd = x.detach().double().cpu().reshape(-1, w.shape[1])
    ref = xd @ w.double().t()
    rows = []

    def add(name, fmt, wd):
        s = signature(xd @ wd.double().t(), ref)
        rows.append({"fault": name, "format": fmt, "weight_cos": _cosine(wd, w), "out_cos": s["cos"],
                     "out_norm_ratio": s["norm_ratio"], "out_rel_err": s["rel_err"]})

    for name, (fmt, fn) in fault_weights(group_size).items():
        add(name, fmt, fn(w))
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    lin.weight.data = w
    add("int8 per-channel, scales dropped", "int8", Int8Linear(lin).dequantized_weight(True))
    add("fp8 cast without any scale", "fp8", w.to(FP8).float())
    add("output channels permuted", "bf16", w[torch.randperm(w.shape[0], generator=torch.Generator().manual_seed(0))])
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- a toy network
class _ToyBlock(nn.Module):
    def __init__(self, d: int, f: int):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)

    def forward(self, h):
        n = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return h + self.down_proj(F.gelu(self.gate_proj(n), approximate="tanh") * self.up_proj(n))


def toy_residual_stack(depth: int = 6, d: int = 256, f: int = 1024, seed: int = 0) -> nn.Sequential:
    """A Gemma-like residual GeGLU stack (RMSNorm, gate/up/down named as in the model),
    weights std 0.02, to show how per-layer errors compound to the output."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(*[_ToyBlock(d, f) for _ in range(depth)])
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return net


__all__ = ["fault_weights", "apply_fault", "fault_signatures", "signature", "swap_nibbles", "read_other_major",
           "e2m1_as_int4", "toy_residual_stack", "E2M1_VALUES"]
