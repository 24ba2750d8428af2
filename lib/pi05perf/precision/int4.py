"""INT4 weight-only (W4A16): uint4 codes per group of `group_size` along K, bf16 scale and
zero, bf16 activations.

Convention (gpt-fast's, tinygemm's): codes q in 0..15, w ~ (q - 8) * s + z with s, z bf16 in
`scales_and_zeros` [K/G, N, 2] (z = min + 8 s). CUDA: `_convert_weight_to_int4pack(uint8
[N,K/2] with the even k in the high nibble, inner_k_tiles)`, K % (16*inner_k_tiles) == 0, x
bf16, sm_80+. CPU: `_convert_weight_to_int4pack_for_cpu(int32 [N,K], inner_k_tiles)`. tinygemm
is a decode kernel; `w4a16_triton` holds a prefill-class kernel on the same codes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backend, QuantLinear, int4_supported


# ----------------------------------------------------------------------------- INT4 weight-only
def int4_group_quantize(w: torch.Tensor, group_size: int = 128, symmetric: bool = False):
    """gpt-fast's groupwise uint4: codes [N,K] uint8 in 0..15 and scales_and_zeros [K/G, N, 2]
    bf16 with w ~ (q - 8) * s + z. Asymmetric: s = (max-min)/15, z = min + 8 s. Symmetric:
    s = amax/7, z = 0. Codes are computed from the bf16-rounded s, z, as the kernel sees them."""
    n, k = w.shape
    if k % group_size:
        raise ValueError(f"in_features {k} is not a multiple of group_size {group_size}")
    g = w.detach().float().reshape(n, k // group_size, group_size)
    if symmetric:
        s = (g.abs().amax(-1) / 7).clamp(min=1e-6)
        z = torch.zeros_like(s)
    else:
        mn, mx = g.amin(-1), g.amax(-1)
        s = ((mx - mn) / 15).clamp(min=1e-6)
        z = mn + 8 * s
    s, z = s.to(torch.bfloat16).float(), z.to(torch.bfloat16).float()
    lo = z - 8 * s
    q = ((g - lo[..., None]) / s[..., None]).round().clamp(0, 15).to(torch.uint8).reshape(n, k)
    sz = torch.stack([s, z], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
    return q, sz


def int4_dequantize(codes: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int = 128,
                    drop_scales: bool = False) -> torch.Tensor:
    """fp32 [N,K] weight from uint4 codes. drop_scales: s=1, z=0 (the whole scales_and_zeros
    tensor ignored) -> q - 8."""
    n, k = codes.shape
    q = codes.float().reshape(n, k // group_size, group_size) - 8
    if drop_scales:
        return q.reshape(n, k)
    s = scales_and_zeros[..., 0].float().t()[..., None]
    z = scales_and_zeros[..., 1].float().t()[..., None]
    return (q * s + z).reshape(n, k)


def pack_uint4(codes: torch.Tensor) -> torch.Tensor:
    """[N,K] codes 0..15 -> uint8 [N,K/2], even k in the high nibble (the CUDA tinygemm input)."""
    c = codes.to(torch.uint8)
    return (c[:, 0::2] << 4) | c[:, 1::2]


def unpack_uint4(packed: torch.Tensor) -> torch.Tensor:
    hi, lo = packed >> 4, packed & 0xF
    return torch.stack([hi, lo], dim=-1).reshape(packed.shape[0], -1)


class Int4WOLinear(QuantLinear):
    """Weight-only uint4, groupwise along K (default 128), bf16 activations. Native through
    torch's tinygemm kernels (CUDA) or their CPU port; the packed layout is built lazily per
    device on first use (`prepack(device)` to do it ahead of timing)."""

    scheme = "int4wo"

    def __init__(self, linear: nn.Linear, group_size: int = 128, symmetric: bool = False,
                 inner_k_tiles: int = 8, scale_ignored: bool = False, backend: Backend = "auto", **_):
        super().__init__(linear.in_features, linear.out_features, linear.bias, scale_ignored, backend)
        self.group_size, self.symmetric, self.inner_k_tiles = group_size, symmetric, inner_k_tiles
        q, sz = int4_group_quantize(linear.weight, group_size, symmetric)
        self.register_buffer("qweight_packed", pack_uint4(q).contiguous())  # uint8 [N, K/2]
        self.register_buffer("scales_and_zeros", sz)  # bf16 [K/G, N, 2]
        self._packed: dict[str, torch.Tensor] = {}

    @property
    def codes(self) -> torch.Tensor:
        return unpack_uint4(self.qweight_packed)

    def _native_ok(self, device):
        if not int4_supported(device) or self.out_features % 8:
            return False
        if device.type == "cuda":
            return self.in_features % (16 * self.inner_k_tiles) == 0
        return self.in_features % self.group_size == 0

    def prepack(self, device: torch.device | str) -> torch.Tensor:
        device = torch.device(device)
        key = str(device)
        if key not in self._packed:
            if device.type == "cuda":
                self._packed[key] = torch._convert_weight_to_int4pack(
                    self.qweight_packed.to(device), self.inner_k_tiles)
            else:
                self._packed[key] = torch._convert_weight_to_int4pack_for_cpu(
                    self.codes.to(device=device, dtype=torch.int32).contiguous(), self.inner_k_tiles)
        return self._packed[key]

    def _sz(self, device):
        key = f"{device}:sz"
        if key not in self._packed:
            sz = self.scales_and_zeros.to(device)
            if self.scale_ignored:
                sz = torch.stack([torch.ones_like(sz[..., 0]), torch.zeros_like(sz[..., 1])], -1)
            self._packed[key] = sz.contiguous()
        return self._packed[key]

    def _native(self, x2):
        packed = self.prepack(x2.device)
        xb = x2.to(torch.bfloat16).contiguous()
        if x2.device.type == "cuda":
            return torch._weight_int4pack_mm(xb, packed, self.group_size, self._sz(x2.device))
        return torch._weight_int4pack_mm_for_cpu(xb, packed, self.group_size, self._sz(x2.device))

    def _simulate(self, x2):
        return x2.float() @ self.dequantized_weight().t()

    def dequantized_weight(self, drop_scales=None):
        drop = self.scale_ignored if drop_scales is None else drop_scales
        return int4_dequantize(self.codes, self.scales_and_zeros, self.group_size, drop)

    def weight_bytes(self):
        return self.qweight_packed.numel() + self.scales_and_zeros.numel() * 2
