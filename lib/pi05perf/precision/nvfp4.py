"""NVFP4: E2M1 codes, one E4M3 scale per 16 values along K, one fp32 per-tensor scale.
Simulated only: torch has no FP4 matmul to call (Blackwell's block-scaled MMA is reached
through TensorRT / cuBLASLt / CUTLASS).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from .base import FP8, FP8_MAX, Backend, QuantLinear
from .int4 import pack_uint4, unpack_uint4

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_MAX = 6.0
_E2M1_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
# round half to even: a tie goes to the neighbour whose index (= mantissa bit) is even
_E2M1_TIE_UP = (False, True, False, True, False, True, False)


# ----------------------------------------------------------------------------- NVFP4
def e2m1_encode(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest FP4 E2M1 value (ties to even mantissa, saturating at 6) ->
    uint8 codes sign<<3 | index into E2M1_VALUES."""
    a = x.abs()
    idx = torch.zeros_like(a, dtype=torch.uint8)
    for mid, up in zip(_E2M1_MIDPOINTS, _E2M1_TIE_UP):
        idx += ((a >= mid) if up else (a > mid)).to(torch.uint8)
    return idx | (torch.signbit(x).to(torch.uint8) << 3)


def e2m1_decode(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    grid = torch.tensor(E2M1_VALUES, dtype=dtype, device=codes.device)
    v = grid[(codes & 7).long()]
    return torch.where((codes & 8).bool(), -v, v)


def quantize_nvfp4(w: torch.Tensor, block: int = 16):
    """NVFP4: E2M1 codes, one E4M3 scale per `block` values along the last dim, one fp32
    per-tensor scale. tensor_scale = amax/(6*448) so the largest block scale fits E4M3;
    block_scale = E4M3(block_amax / 6 / tensor_scale). Returns (codes uint8 [..., K] (one
    code per byte; two per byte is a storage detail), block_scales float8_e4m3fn [..., K/block],
    tensor_scale fp32 0-d)."""
    *lead, k = w.shape
    if k % block:
        raise ValueError(f"last dim {k} is not a multiple of the NVFP4 block {block}")
    wf = w.detach().float().reshape(*lead, k // block, block)
    amax = wf.abs().amax()
    tensor_scale = (amax / (E2M1_MAX * FP8_MAX)) if amax > 0 else torch.ones((), device=w.device)
    block_scales = (wf.abs().amax(-1) / E2M1_MAX / tensor_scale).clamp(max=FP8_MAX).to(FP8)
    eff = block_scales.float() * tensor_scale
    scaled = torch.where(eff[..., None] > 0, wf / eff[..., None].clamp(min=1e-30), torch.zeros_like(wf))
    codes = e2m1_encode(scaled).reshape(*lead, k)
    return codes, block_scales, tensor_scale.float()


def dequantize_nvfp4(codes: torch.Tensor, block_scales: torch.Tensor, tensor_scale: torch.Tensor,
                     block: int = 16, drop_scales: bool = False) -> torch.Tensor:
    """fp32 values = e2m1(code) * block_scale * tensor_scale (drop_scales: e2m1(code) alone)."""
    v = e2m1_decode(codes)
    if drop_scales:
        return v
    *lead, k = codes.shape
    v = v.reshape(*lead, k // block, block) * block_scales.float()[..., None] * tensor_scale.float()
    return v.reshape(*lead, k)


def fake_quant_nvfp4(t: torch.Tensor, block: int = 16, drop_scales: bool = False) -> torch.Tensor:
    return dequantize_nvfp4(*quantize_nvfp4(t, block), block=block, drop_scales=drop_scales)


class NVFP4Linear(QuantLinear):
    """NVFP4 (E2M1 codes, E4M3 scale per 16 along K, fp32 tensor scale), simulated in fp32:
    torch has no FP4 matmul to call (Blackwell's block-scaled MMA is reached through
    TensorRT / cuBLASLt / CUTLASS, not here). act="nvfp4" fake-quantizes activations the same
    way (dynamic per-call tensor scale), for the W4A4 variant."""

    scheme = "nvfp4_sim"

    def __init__(self, linear: nn.Linear, block: int = 16, act: Literal["none", "nvfp4"] = "none",
                 scale_ignored: bool = False, backend: Backend = "auto", **_):
        super().__init__(linear.in_features, linear.out_features, linear.bias, scale_ignored, backend)
        self.block, self.act = block, act
        codes, bs, ts = quantize_nvfp4(linear.weight, block)
        self.register_buffer("codes_packed", pack_uint4(codes).contiguous())  # uint8 [N, K/2]
        self.register_buffer("block_scales_bits", bs.contiguous().view(torch.uint8))  # E4M3 [N, K/16]
        self.register_buffer("tensor_scale", ts.reshape(1))

    def _simulate(self, x2):
        x = x2.float()
        if self.act == "nvfp4":
            x = fake_quant_nvfp4(x, self.block, drop_scales=self.scale_ignored)
        return x @ self.dequantized_weight().t()

    def dequantized_weight(self, drop_scales=None):
        drop = self.scale_ignored if drop_scales is None else drop_scales
        return dequantize_nvfp4(unpack_uint4(self.codes_packed), self.block_scales_bits.view(FP8),
                                self.tensor_scale.reshape(()), self.block, drop)

    def weight_bytes(self):
        return self.codes_packed.numel() + self.block_scales_bits.numel() + 4
