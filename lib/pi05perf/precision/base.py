"""The quantized-linear base: `QuantLinear` and its native / simulate dispatch, device
capability queries, the shared constants and the accuracy metric.

Each scheme (fp8.py, int8.py, int4.py, nvfp4.py) is a `QuantLinear` that runs its *native*
kernel where the device has one and otherwise an exact *simulation* (quantize, dequantize
in fp32, matmul), so accuracy can be measured anywhere. `BF16Linear` is the baseline.
"""
from __future__ import annotations

import functools
import warnings
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..check import cosine as _cosine, relative_error as _relative_error

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
INT8_MAX = 127
NOSCALE = "_noscale"  # scheme suffix: the same codes with every scale treated as 1
Backend = Literal["auto", "native", "simulate"]


def accuracy(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """cos and ||out - ref|| / ||ref||, in float64. A pure rescale keeps cos=1, not rel_err."""
    return {"cos": _cosine(out, ref), "rel_err": _relative_error(out, ref)}


# ----------------------------------------------------------------------------- devices
def cuda_capability(device: torch.device | str | None = None) -> tuple[int, int] | None:
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return _capability(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def fp8_supported(device: torch.device | str | None = None) -> bool:
    """FP8 tensor-core matmuls (`torch._scaled_mm`): CUDA capability >= 8.9 (Ada, Hopper,
    Blackwell incl. Thor sm_110). False on CPU: torch 2.13 has a CPU `_scaled_mm`, but it is a
    reference path, so schemes simulate there unless asked for backend="native"."""
    cap = cuda_capability(device)
    return cap is not None and cap >= (8, 9) and hasattr(torch, "_scaled_mm")


def int_mm_supported(device: torch.device | str | None = None) -> bool:
    """`torch._int_mm` exists for this device (CUDA sm_80+; CPU in recent torch)."""
    device = torch.device(device if device is not None else "cpu")
    if not hasattr(torch, "_int_mm"):
        return False
    if device.type == "cuda":
        cap = cuda_capability(device)
        return cap is not None and cap >= (8, 0)
    return _int_mm_on(device.type)


@functools.lru_cache(maxsize=None)
def _int_mm_on(device: str) -> bool:
    try:
        a = torch.zeros(17, 8, dtype=torch.int8, device=device)
        torch._int_mm(a, torch.zeros(8, 8, dtype=torch.int8, device=device))
        return True
    except (RuntimeError, NotImplementedError):
        return False


def int4_supported(device: torch.device | str | None = None) -> bool:
    """torch's built-in int4 weight-only kernels: tinygemm on CUDA sm_80+, the CPU variant."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        cap = cuda_capability(device)
        return cap is not None and cap >= (8, 0) and hasattr(torch, "_weight_int4pack_mm")
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(torch, "_convert_weight_to_int4pack_for_cpu")


def _amax_scale(t: torch.Tensor, qmax: float, dim: int | None) -> torch.Tensor:
    """fp32 scale amax/qmax over `dim` (None: whole tensor), zero-safe."""
    t = t.detach().float()
    amax = t.abs().amax() if dim is None else t.abs().amax(dim=dim, keepdim=True)
    return (amax / qmax).clamp(min=torch.finfo(torch.float32).tiny)


# ----------------------------------------------------------------------------- layers
class QuantLinear(nn.Module):
    """Base of the quantized linears: y = x W^T (+ b) with x [..., K] of any float dtype; the
    output has x's dtype. Buffers keep their dtype under `.to(dtype)` (only the device moves),
    so a model can be cast after quantization without corrupting codes or scales.

    `backend`: "auto" (native kernel where the device has one, else simulation), "native"
    (raise if the kernel fails) or "simulate". `backend_used` tells which one the last forward
    ran; `native_error` keeps why an "auto" layer fell back."""

    scheme = "base"

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None,
                 scale_ignored: bool = False, backend: Backend = "auto"):
        super().__init__()
        if backend not in ("auto", "native", "simulate"):
            raise ValueError(f"backend must be auto, native or simulate, got {backend!r}")
        self.in_features, self.out_features = in_features, out_features
        self.scale_ignored, self.backend = scale_ignored, backend
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None
        self.backend_used: str | None = None
        self.native_error: str | None = None

    # --- subclass interface
    def _native_ok(self, device: torch.device) -> bool:
        return False

    def _native(self, x2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _simulate(self, x2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dequantized_weight(self, drop_scales: bool | None = None) -> torch.Tensor:
        """fp32 [N,K] weight the layer multiplies by (activation quantization aside)."""
        raise NotImplementedError

    def weight_bytes(self) -> int:
        """Bytes of weight data (codes and scales) the matmul reads."""
        raise NotImplementedError

    # --- common
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if torch.compiler.is_compiling():
            y = self._traced(x2)
        else:
            y = self._dispatch(x2)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def _traced(self, x2: torch.Tensor) -> torch.Tensor:
        """The path torch.compile traces: no device queries, try/except, warnings or attribute
        writes. Native when the layer was built with backend="native" or an eager call already
        ran natively (`backend_used`); otherwise the simulation. Run one eager forward (or use
        backend="native") before compiling an "auto" layer, or it compiles the simulation."""
        if self.backend == "native" or (self.backend == "auto" and self.backend_used == "native"):
            return self._native(x2)
        return self._simulate(x2)

    def _dispatch(self, x2: torch.Tensor) -> torch.Tensor:
        y = None
        if self.backend != "simulate" and self._native_ok(x2.device):
            try:
                y = self._native(x2)
                self.backend_used = "native"
            except (RuntimeError, NotImplementedError) as e:
                if self.backend == "native":
                    raise
                if self.native_error is None:
                    warnings.warn(f"{type(self).__name__}: native kernel failed, simulating: {e}", stacklevel=2)
                self.native_error = str(e)
        elif self.backend == "native":
            raise RuntimeError(f"{type(self).__name__} has no native kernel on {x2.device}")
        if y is None:
            y = self._simulate(x2)
            self.backend_used = "simulate"
        return y

    def _apply(self, fn, recurse=True):
        bufs, self._buffers = self._buffers, {}
        try:
            super()._apply(fn, recurse)
        finally:
            new = {}
            for k, b in bufs.items():
                if b is None:
                    new[k] = None
                    continue
                m = fn(b)
                new[k] = m if m.dtype == b.dtype else b.to(device=m.device)
            self._buffers = new
            if hasattr(self, "_packed"):
                self._packed = {}
        return self

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, scheme={self.scheme}, "
                f"scale_ignored={self.scale_ignored}, backend={self.backend}")


class BF16Linear(QuantLinear):
    """The baseline: bf16 weight, bf16 activations, fp32 accumulate (cuBLAS / CPU)."""

    scheme = "bf16"

    def __init__(self, linear: nn.Linear, backend: Backend = "auto", **_):
        super().__init__(linear.in_features, linear.out_features, linear.bias, False, backend)
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16).contiguous())

    def _native_ok(self, device):
        return True

    def _native(self, x2):
        return F.linear(x2.to(torch.bfloat16), self.weight)

    def _simulate(self, x2):
        return x2.float() @ self.weight.float().t()

    def dequantized_weight(self, drop_scales=None):
        return self.weight.float()

    def weight_bytes(self):
        return self.weight.numel() * 2


class ScaledCodesLinear(QuantLinear):
    """A quantized linear whose weight is one-byte codes `qweight` [N,K] times `weight_scale`, one
    scale for the tensor or one per output channel (FP8 and INT8)."""

    def dequantized_weight(self, drop_scales=None):
        drop = self.scale_ignored if drop_scales is None else drop_scales
        w = self.qweight.float()
        return w if drop else w * self.weight_scale.reshape(-1, 1)

    def weight_bytes(self):
        return self.qweight.numel() * self.qweight.element_size() + self.weight_scale.numel() * 4


def dequantize(layer: QuantLinear, drop_scales: bool = False) -> torch.Tensor:
    """The fp32 weight a quantized layer represents; drop_scales=True: what a runtime that
    ignores the scales (treats them as 1) multiplies by."""
    return layer.dequantized_weight(drop_scales)
