"""INT8 (W8A8): symmetric per-output-channel weight scales, dynamic per-token (or
per-tensor) activation scales, int32 accumulate.

Native kernel: `torch._int_mm(a, b)`: int8 x int8 -> int32, M > 16, K and N multiples of 8.
On CUDA the fast cuBLASLt IMMA kernels want the "TN" layout, i.e. b column-major
(`w_int8.t()`); a row-major b runs, but on a slower path (pytorch/pytorch#165230; on sm_103
even the fast layout lands on Ampere-era CUTLASS kernels, pytorch/pytorch#187094 -- the same
kind of dispatch gap the seed measured on Thor as `_int_mm` 0.98x bf16). M <= 16 is
zero-padded.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import INT8_MAX, Backend, ScaledCodesLinear, _amax_scale, int_mm_supported


# ----------------------------------------------------------------------------- INT8
def quantize_int8(t: torch.Tensor, granularity: Literal["tensor", "row"] = "row"):
    """Symmetric int8 codes in [-127, 127] (round half to even) and fp32 scale."""
    scale = _amax_scale(t, INT8_MAX, None if granularity == "tensor" else -1)
    codes = torch.round(t.float() / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return codes, scale


class Int8Linear(ScaledCodesLinear):
    """W8A8 int8: per-output-channel weight scales, dynamic per-token (or per-tensor)
    activation scales, int32 accumulate. Native: torch._int_mm(x_i8 [M,K], w_i8.t() [K,N])
    with the column-major second operand; simulated exactly in float64."""

    scheme = "int8"

    def __init__(self, linear: nn.Linear, act: Literal["token", "tensor"] = "token",
                 scale_ignored: bool = False, backend: Backend = "auto", **_):
        super().__init__(linear.in_features, linear.out_features, linear.bias, scale_ignored, backend)
        self.act = act
        q, s = quantize_int8(linear.weight, "row")
        self.register_buffer("qweight", q.contiguous())
        self.register_buffer("weight_scale", s.reshape(-1).float())

    def _native_ok(self, device):
        return (self.in_features % 8 == 0 and self.out_features % 8 == 0 and int_mm_supported(device))

    def _native(self, x2):
        xq, sx = quantize_int8(x2, "tensor" if self.act == "tensor" else "row")
        m = xq.shape[0]
        if m <= 16:  # _int_mm needs M > 16
            xq = F.pad(xq, (0, 0, 0, 17 - m))
        acc = torch._int_mm(xq.contiguous(), self.qweight.t())[:m]
        if self.scale_ignored:
            return acc.float()
        return acc.float() * sx * self.weight_scale

    def _simulate(self, x2):
        xq, sx = quantize_int8(x2, "tensor" if self.act == "tensor" else "row")
        acc = xq.double() @ self.qweight.double().t()  # exact: |acc| < 2^53
        if self.scale_ignored:
            return acc.float()
        return (acc * sx.double() * self.weight_scale.double()).float()

