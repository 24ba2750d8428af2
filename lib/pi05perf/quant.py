"""Quantized linear layers beside the model: FP8, INT8, INT4, NVFP4, and the scale-dropping fault.

Every scheme is a `QuantLinear` built from an `nn.Linear` by `quantize_linear`, and
`quantize_model` swaps a model's linears by qualified name (`MLP_ONLY`, `FULL_COVERAGE`).
Each layer runs its *native* kernel where the device has one, and otherwise an exact
*simulation* (quantize, dequantize in fp32, matmul), so accuracy can be measured anywhere:

scheme        weights                       activations                kernel (native)
------------  ----------------------------  -------------------------  -----------------------------------
bf16          bf16                          bf16                       F.linear (cuBLAS)
fp8_tensor    E4M3, one fp32 scale          E4M3, dynamic per-tensor   torch._scaled_mm (cuBLASLt), sm_89+
fp8_channel   E4M3, fp32 scale per out-ch   E4M3, dynamic per-token    torch._scaled_mm rowwise, sm_89+
int8          int8, fp32 scale per out-ch   int8, dynamic per-token    torch._int_mm (cuBLASLt IMMA / CPU)
int4wo        uint4, group 128, bf16 s & z  none (bf16)                torch._weight_int4pack_mm (tinygemm)
nvfp4_sim     E2M1, E4M3 scale / 16 along K none (or NVFP4 with act=)  simulated only (no torch kernel)
+ "_noscale"  the same codes, every scale treated as 1 (the TensorRT fault, see below)

Layout rules the native kernels impose (checked in code, documented here once):
* `torch._scaled_mm(a, b, scale_a, scale_b, out_dtype=bf16)`: a [M,K] row-major, b [K,N]
  **column-major** (we pass `w_fp8.t()` of a contiguous [N,K] weight), K and N multiples of
  16. Tensorwise scaling: both scales 1-element fp32. Rowwise scaling: scale_a [M,1] fp32,
  scale_b [1,N] fp32, out_dtype bf16 (sm_90; sm_89/sm_100+ depending on the torch build).
* `torch._int_mm(a, b)`: int8 x int8 -> int32, M > 16, K and N multiples of 8. On CUDA the
  fast cuBLASLt IMMA kernels want the "TN" layout, i.e. b column-major (`w_int8.t()`); a
  row-major b runs, but on a slower path (pytorch/pytorch#165230; on sm_103 even the fast
  layout lands on Ampere-era CUTLASS kernels, pytorch/pytorch#187094 -- the same kind of
  dispatch gap the seed measured on Thor as `_int_mm` 0.98x bf16). M <= 16 is zero-padded.
* int4 (tinygemm): codes q in 0..15 per group of 128 along K, w ~ (q - 8) * s + z with s, z
  bf16 in `scales_and_zeros` [K/G, N, 2] (gpt-fast's convention: z = min + 8 s).
  CUDA: `_convert_weight_to_int4pack(uint8 [N,K/2] with the even k in the high nibble,
  inner_k_tiles)`, K % (16*inner_k_tiles) == 0, x bf16, sm_80+. CPU:
  `_convert_weight_to_int4pack_for_cpu(int32 [N,K], inner_k_tiles)` (it packs itself).

The scale-dropping fault. The seed's TensorRT logs on Thor read "[DEQUANTIZE] [SCALE] has
invalid precision FP4, ignored." and its FP4/INT4 runs gave cos ~ 0. `scale_ignored=True`
(or scheme "<name>_noscale") runs the same codes with every scale treated as 1. What that
*does* to one layer (measured, see `fault_signatures` and tests/test_quant.py):
codes are w / s, so without s they are the weights times 1/s -- the direction survives
(per layer, weights std 0.02: cos 0.9993 fp8 per-tensor, 0.97 nvfp4, 0.93-0.95 int4 group-128
asymmetric, 0.93-0.95 int8 / fp8 per-token, whose scales carry each token's loudness) and the
magnitude explodes (rel_err ~ 1/s: ~150 for 4-bit, 3e4 int8, 1e5-4e5 fp8). cos ~ 0 at one
layer needs a *layout* fault instead (codes read in the wrong order: nibble swap, transposed
or permuted weights give cos ~ 0 with rel_err ~ sqrt(2)), or unsigned codes read without
their zero point (cos ~ 0.3). In a residual network the exploded magnitude of every
quantized layer swamps the residual stream and compounds through the norms, so the *model*
output loses its direction: cos ~ 0 at the model output is what scale dropping looks like
end to end (see `toy_residual_stack`).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Callable, Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
INT8_MAX = 127
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_MAX = 6.0
_E2M1_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
# round half to even: a tie goes to the neighbour whose index (= mantissa bit) is even
_E2M1_TIE_UP = (False, True, False, True, False, True, False)

QuantScheme = Literal["bf16", "fp8_tensor", "fp8_channel", "int8", "int4wo", "nvfp4_sim"]
SCHEMES: tuple[str, ...] = ("bf16", "fp8_tensor", "fp8_channel", "int8", "int4wo", "nvfp4_sim")
NOSCALE = "_noscale"
SCALE_IGNORED_SCHEMES: tuple[str, ...] = tuple(s + NOSCALE for s in SCHEMES if s != "bf16")
ALL_SCHEMES: tuple[str, ...] = SCHEMES + SCALE_IGNORED_SCHEMES
Backend = Literal["auto", "native", "simulate"]

# ----------------------------------------------------------------------------- accuracy
from .check import cosine as _cosine, relative_error as _relative_error


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


# ----------------------------------------------------------------------------- primitives
def _amax_scale(t: torch.Tensor, qmax: float, dim: int | None) -> torch.Tensor:
    """fp32 scale amax/qmax over `dim` (None: whole tensor), zero-safe."""
    t = t.detach().float()
    amax = t.abs().amax() if dim is None else t.abs().amax(dim=dim, keepdim=True)
    return (amax / qmax).clamp(min=torch.finfo(torch.float32).tiny)


def quantize_fp8(t: torch.Tensor, granularity: Literal["tensor", "row"] = "tensor"):
    """E4M3 codes and fp32 scale: t ~ codes * scale. `row` scales each row (per output channel
    for a [N,K] weight, per token for [M,K] activations) -> scale [rows, 1]."""
    scale = _amax_scale(t, FP8_MAX, None if granularity == "tensor" else -1)
    codes = (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return codes, scale


def quantize_int8(t: torch.Tensor, granularity: Literal["tensor", "row"] = "row"):
    """Symmetric int8 codes in [-127, 127] (round half to even) and fp32 scale."""
    scale = _amax_scale(t, INT8_MAX, None if granularity == "tensor" else -1)
    codes = torch.round(t.float() / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return codes, scale


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


class FP8Linear(QuantLinear):
    """W8A8 in E4M3. granularity "tensor": one weight scale; "channel": one per output channel.
    act "tensor": one dynamic activation scale per call; "token": one per row of x.
    Native: torch._scaled_mm (tensorwise if both scales are single, else rowwise), bf16 out."""

    def __init__(self, linear: nn.Linear, granularity: Literal["tensor", "channel"] = "tensor",
                 act: Literal["tensor", "token"] | None = None, scale_ignored: bool = False,
                 backend: Backend = "auto", fast_accum: bool = False, **_):
        super().__init__(linear.in_features, linear.out_features, linear.bias, scale_ignored, backend)
        self.granularity = granularity
        self.act = act or ("tensor" if granularity == "tensor" else "token")
        self.fast_accum = fast_accum
        self.scheme = f"fp8_{granularity}"
        q, s = quantize_fp8(linear.weight, "tensor" if granularity == "tensor" else "row")
        # stored as uint8 bits so that no dtype cast can touch them; [N,K] row-major, so
        # q.t() is the column-major second operand _scaled_mm wants
        self.register_buffer("qweight_bits", q.contiguous().view(torch.uint8))
        self.register_buffer("weight_scale", s.reshape(-1).float())  # [1] or [N]

    @property
    def qweight(self) -> torch.Tensor:
        return self.qweight_bits.view(FP8)

    def _quant_act(self, x2):
        return quantize_fp8(x2, "tensor" if self.act == "tensor" else "row")

    def _native_ok(self, device):
        if device.type == "cpu":
            return self.backend == "native" and hasattr(torch, "_scaled_mm")
        return fp8_supported(device) and self.in_features % 16 == 0 and self.out_features % 16 == 0

    def _native(self, x2):
        xq, sx = self._quant_act(x2.contiguous())
        sw = self.weight_scale
        if self.scale_ignored:
            sx, sw = torch.ones_like(sx), torch.ones_like(sw)
        if sx.numel() == 1 and sw.numel() == 1:  # tensorwise
            sa, sb = sx.reshape(()), sw.reshape(())
        else:  # rowwise: scale_a [M,1], scale_b [1,N], fp32, bf16 out
            sa = sx.expand(xq.shape[0], 1).contiguous()
            sb = sw.reshape(1, -1).expand(1, self.out_features).contiguous()
        return torch._scaled_mm(xq, self.qweight.t(), scale_a=sa, scale_b=sb,
                                out_dtype=torch.bfloat16, use_fast_accum=self.fast_accum)

    def _simulate(self, x2):
        xq, sx = self._quant_act(x2)
        if self.scale_ignored:
            return xq.float() @ self.qweight.float().t()
        return (xq.float() * sx) @ self.dequantized_weight().t()

    def dequantized_weight(self, drop_scales=None):
        drop = self.scale_ignored if drop_scales is None else drop_scales
        w = self.qweight.float()
        return w if drop else w * self.weight_scale.reshape(-1, 1)

    def weight_bytes(self):
        return self.qweight_bits.numel() + self.weight_scale.numel() * 4


class Int8Linear(QuantLinear):
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

    def dequantized_weight(self, drop_scales=None):
        drop = self.scale_ignored if drop_scales is None else drop_scales
        w = self.qweight.float()
        return w if drop else w * self.weight_scale.reshape(-1, 1)

    def weight_bytes(self):
        return self.qweight.numel() + self.weight_scale.numel() * 4


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


def dequantize(layer: QuantLinear, drop_scales: bool = False) -> torch.Tensor:
    """The fp32 weight a quantized layer represents; drop_scales=True: what a runtime that
    ignores the scales (treats them as 1) multiplies by."""
    return layer.dequantized_weight(drop_scales)


# ----------------------------------------------------------------------------- model surgery
def quantize_linear(linear: nn.Linear, scheme: str, **opts) -> QuantLinear:
    """One nn.Linear -> its QuantLinear. scheme in ALL_SCHEMES; "<scheme>_noscale" is
    scale_ignored=True. opts: backend, act, group_size, symmetric, inner_k_tiles, block,
    fast_accum (each scheme ignores those that do not apply)."""
    if scheme.endswith(NOSCALE):
        scheme, opts = scheme[: -len(NOSCALE)], {**opts, "scale_ignored": True}
    builders: dict[str, Callable[..., QuantLinear]] = {
        "bf16": BF16Linear,
        "fp8_tensor": lambda l, **o: FP8Linear(l, "tensor", **o),
        "fp8_channel": lambda l, **o: FP8Linear(l, "channel", **o),
        "int8": Int8Linear,
        "int4wo": Int4WOLinear,
        "nvfp4_sim": NVFP4Linear,
    }
    if scheme not in builders:
        raise ValueError(f"scheme must be one of {ALL_SCHEMES}, got {scheme!r}")
    with torch.no_grad():
        return builders[scheme](linear, **opts)


_ATTN_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
_MLP_NAMES = ("gate_proj", "up_proj", "down_proj", "gate_up_proj")


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def all_linears(name: str) -> bool:
    return True


def MLP_ONLY(name: str) -> bool:
    """gate/up/down projections, fused (gate_up_proj) or not: what the seed ran in TRT FP8."""
    return _leaf(name) in _MLP_NAMES


def ATTN_ONLY(name: str) -> bool:
    return _leaf(name) in _ATTN_NAMES


def FULL_COVERAGE(name: str) -> bool:
    """Every transformer projection: q/k/v/o (or qkv_proj) and gate/up/down (or gate_up_proj)."""
    return _leaf(name) in _ATTN_NAMES + _MLP_NAMES


def quantize_model(module: nn.Module, scheme: str, include: Callable[[str], bool] = all_linears,
                   **opts) -> nn.Module:
    """Swap, in place, every nn.Linear whose qualified name `include` accepts for its
    QuantLinear; returns `module`. An nn.Linear passed directly is returned quantized."""
    if isinstance(module, nn.Linear):
        return quantize_linear(module, scheme, **opts) if include("") else module
    targets = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear) and n and include(n)]
    for name, lin in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, quantize_linear(lin, scheme, **opts))
    return module


def quantized_names(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, QuantLinear)]


def model_weight_bytes(module: nn.Module) -> int:
    """Bytes of the projection weights as the kernels read them (QuantLinear codes + scales,
    nn.Linear weights at their dtype)."""
    total = 0
    for m in module.modules():
        if isinstance(m, QuantLinear):
            total += m.weight_bytes()
        elif isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
    return total


# ----------------------------------------------------------------------------- fault signatures
def fault_signatures(weight: torch.Tensor, x: torch.Tensor, group_size: int = 128) -> "pandas.DataFrame":
    """One layer, y = x W^T, under ways a runtime can misread a quantized weight. Returns
    a DataFrame (fault, weight_cos, out_cos, out_rel_err). Dropped scales keep the direction
    (cos near 1) and blow up the magnitude; only layout faults give cos ~ 0 at one layer."""
    import pandas as pd

    w = weight.detach().double()
    x = x.detach().double()
    ref = x @ w.t()
    n, k = w.shape
    lin = nn.Linear(k, n, bias=False)
    lin.weight.data = weight.detach().float()
    rows = []

    def add(name, wd):
        a = accuracy(x @ wd.double().t(), ref)
        rows.append({"fault": name, "weight_cos": _cosine(wd, w), "out_cos": a["cos"], "out_rel_err": a["rel_err"]})

    i4a = Int4WOLinear(lin, group_size, symmetric=False, backend="simulate")
    i4s = Int4WOLinear(lin, group_size, symmetric=True, backend="simulate")
    nv = NVFP4Linear(lin, backend="simulate")
    add("int4 asym, correct", i4a.dequantized_weight(False))
    add("int4 asym, scales dropped (q-8)", i4a.dequantized_weight(True))
    add("int4 asym, raw codes 0..15 (no zero point)", i4a.codes.double())
    add("int4 sym, scales dropped", i4s.dequantized_weight(True))
    sw = i4s.codes.double().reshape(n, k // 2, 2).flip(-1).reshape(n, k)
    add("int4 sym, nibbles swapped", int4_dequantize(sw, i4s.scales_and_zeros, group_size))
    add("nvfp4, correct", nv.dequantized_weight(False))
    add("nvfp4, scales dropped", nv.dequantized_weight(True))
    add("int8 per-channel, scale dropped", Int8Linear(lin).dequantized_weight(True))
    add("fp8 per-tensor, scale dropped", FP8Linear(lin, "tensor").dequantized_weight(True))
    add("fp8 cast without any scale", w.float().to(FP8).double())
    if n == k:
        add("weight transposed", w.t())
    add("output channels permuted", w[torch.randperm(n, generator=torch.Generator().manual_seed(0))])
    return pd.DataFrame(rows)


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


# ----------------------------------------------------------------------------- torchao
def torchao_version() -> str | None:
    try:
        import torchao
    except Exception:  # not installed, or broken against this torch
        return None
    return getattr(torchao, "__version__", "unknown")


def apply_torchao(module: nn.Module, config: Literal["int8wo", "int8dyn", "int4wo"],
                  include: Callable[[str], bool] = all_linears, group_size: int = 128,
                  **config_kwargs) -> nn.Module:
    """Quantize `module` in place with torchao's quantize_ (int8 weight-only, int8 dynamic
    activation + int8 weight, int4 weight-only group `group_size`) on the linears `include`
    accepts. int4wo asks for the tinygemm packing ("tile_packed_to_4d", torchao >= 0.13) since
    torchao's default "plain" int4 needs fbgemm-gpu-genai (the seed's "missing
    fbgemm-gpu-genai"). Raises ImportError where torchao is absent."""
    from torchao.quantization import quantize_  # noqa: F401 - the ImportError is the guard
    import torchao.quantization as tq

    def make():
        if config == "int8wo":
            if hasattr(tq, "Int8WeightOnlyConfig"):
                return tq.Int8WeightOnlyConfig(**config_kwargs)
            return tq.int8_weight_only(**config_kwargs)
        if config == "int8dyn":
            if hasattr(tq, "Int8DynamicActivationInt8WeightConfig"):
                return tq.Int8DynamicActivationInt8WeightConfig(**config_kwargs)
            return tq.int8_dynamic_activation_int8_weight(**config_kwargs)
        if config == "int4wo":
            if hasattr(tq, "Int4WeightOnlyConfig"):
                kw = {"group_size": group_size, **config_kwargs}
                try:
                    return tq.Int4WeightOnlyConfig(**{"int4_packing_format": "tile_packed_to_4d", **kw})
                except TypeError:
                    return tq.Int4WeightOnlyConfig(**kw)
            return tq.int4_weight_only(group_size=group_size, **config_kwargs)
        raise ValueError(f"config must be int8wo, int8dyn or int4wo, got {config!r}")

    tq.quantize_(module, make(), filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and include(fqn))
    return module


# ----------------------------------------------------------------------------- ONNX Q/DQ
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pi05perf.quant")
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


# ----------------------------------------------------------------------------- TensorRT
_TRT_KEEPALIVE: list = []


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except Exception:
        return None
    return trt.__version__


def build_trt_engine(onnx_path: str, fp8: bool = False, int8: bool = False, fp16: bool = False,
                     bf16: bool = False, shapes: dict | tuple | None = None,
                     strongly_typed: bool | None = None, workspace_bytes: int = 4 << 30,
                     log: list[str] | None = None):
    """Build a TensorRT engine from an explicit-Q/DQ ONNX file (TensorRT 10 / 11 Python API).

    TensorRT 10: weakly typed by default, BuilderFlag.FP8 / INT8 must be set for Q/DQ of that
    type to be honoured and FP16 / BF16 allow those for the rest. TensorRT 11 removed those
    flags (always strongly typed: the Q/DQ nodes alone decide). `strongly_typed=None` picks
    strongly typed on 11+, weakly typed with the flags on 10. Inputs with dynamic dims (the
    "M" of `export_qdq_onnx`) need an optimization profile: `shapes` is one shape for a
    single-input network (min = opt = max), or {input name: shape or (min, opt, max)}.
    Builder messages (the
    "[DEQUANTIZE] [SCALE] ... ignored" kind) are appended to `log` if given. Returns the
    deserialized ICudaEngine."""
    import tensorrt as trt

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if log is not None:
                log.append(f"[{severity.name if hasattr(severity, 'name') else severity}] {msg}")

    logger = _Logger()
    major = int(trt.__version__.split(".")[0])
    if strongly_typed is None:
        strongly_typed = major >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        if not parser.parse(fh.read()):
            errs = []
            for i in range(parser.num_errors):
                e = parser.get_error(i)
                errs.append(e.desc() if hasattr(e, "desc") else str(e))
            raise RuntimeError("TensorRT could not parse " + str(onnx_path) + ": " + "; ".join(errs))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t for t in inputs if any(d < 0 for d in t.shape)]
    if dynamic:
        if shapes is None:
            raise ValueError(f"inputs {[t.name for t in dynamic]} have dynamic dims: pass shapes=")
        if not isinstance(shapes, dict):
            if len(inputs) != 1:
                raise ValueError("several inputs: pass shapes as {name: shape}")
            shapes = {inputs[0].name: shapes}
        profile = builder.create_optimization_profile()
        for t in dynamic:
            sh = shapes[t.name]
            lo, opt, hi = (sh if isinstance(sh[0], (tuple, list)) else (sh, sh, sh))
            profile.set_shape(t.name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)
    if not strongly_typed:
        for want, flag in ((fp8, "FP8"), (int8, "INT8"), (fp16, "FP16"), (bf16, "BF16")):
            if want:
                f = getattr(trt.BuilderFlag, flag, None)
                if f is None:
                    raise RuntimeError(f"this TensorRT ({trt.__version__}) has no BuilderFlag.{flag}")
                config.set_flag(f)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT build failed:\n" + "\n".join(log or []))
    if log is not None:
        log.append(f"[pi05perf] build took {time.perf_counter() - t0:.1f} s, TensorRT {trt.__version__}, "
                   f"strongly_typed={strongly_typed}")
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine it built")
    _TRT_KEEPALIVE.append((engine, runtime, logger))  # the runtime and logger outlive the engine
    return engine


def _trt_to_torch_dtype(dt) -> torch.dtype:
    import tensorrt as trt

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
             "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8,
             "FP8": FP8}
    for name, tdt in table.items():
        if hasattr(trt.DataType, name) and dt == getattr(trt.DataType, name):
            return tdt
    raise TypeError(f"no torch dtype for TensorRT {dt}")


def time_trt_engine(engine, inputs: torch.Tensor | dict[str, torch.Tensor], warmup: int = 10,
                    iters: int = 50) -> dict:
    """Median / mean milliseconds of `execute_async_v3` with CUDA events, plus the outputs.
    `inputs`: one tensor for a single-input engine or {name: tensor}; copied to CUDA in the
    engine's dtype. Returns {"median_ms", "mean_ms", "times_ms", "outputs": {name: tensor}}."""
    import tensorrt as trt

    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    in_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    if isinstance(inputs, torch.Tensor):
        if len(in_names) != 1:
            raise ValueError(f"engine has inputs {in_names}; pass a dict")
        inputs = {in_names[0]: inputs}
    bufs = {}
    for n in in_names:
        t = inputs[n].to("cuda", _trt_to_torch_dtype(engine.get_tensor_dtype(n))).contiguous()
        context.set_input_shape(n, tuple(t.shape))
        bufs[n] = t
    for n in names:
        if n in bufs:
            continue
        shape = tuple(context.get_tensor_shape(n))
        bufs[n] = torch.empty(shape, dtype=_trt_to_torch_dtype(engine.get_tensor_dtype(n)), device="cuda")
    for n, t in bufs.items():
        context.set_tensor_address(n, t.data_ptr())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            context.execute_async_v3(stream.cuda_stream)
        times = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("execute_async_v3 failed")
            b.record(stream)
            b.synchronize()
            times.append(a.elapsed_time(b))
    times.sort()
    return {"median_ms": times[len(times) // 2], "mean_ms": sum(times) / len(times), "times_ms": times,
            "outputs": {n: bufs[n] for n in names if n not in in_names}}


__all__: Sequence[str] = (
    "SCHEMES", "SCALE_IGNORED_SCHEMES", "ALL_SCHEMES", "QuantScheme", "QuantLinear", "BF16Linear",
    "FP8Linear", "Int8Linear", "Int4WOLinear", "NVFP4Linear", "quantize_linear", "quantize_model",
    "quantized_names", "model_weight_bytes", "all_linears", "MLP_ONLY", "ATTN_ONLY", "FULL_COVERAGE",
    "accuracy", "fp8_supported", "int_mm_supported", "int4_supported", "cuda_capability",
    "quantize_fp8", "quantize_int8", "int4_group_quantize", "int4_dequantize", "pack_uint4",
    "unpack_uint4", "e2m1_encode", "e2m1_decode", "E2M1_VALUES", "quantize_nvfp4", "dequantize_nvfp4",
    "fake_quant_nvfp4", "dequantize", "fault_signatures", "toy_residual_stack", "torchao_version",
    "apply_torchao", "export_qdq_onnx", "onnx_scale_dtypes", "run_onnxruntime", "simulate_qdq",
    "export_geglu_qdq_onnx", "simulate_geglu_qdq",
    "tensorrt_available", "tensorrt_version", "build_trt_engine", "time_trt_engine",
)
