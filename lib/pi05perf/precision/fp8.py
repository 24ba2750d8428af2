"""FP8 E4M3 (W8A8): per-tensor or per-output-channel weight scales; dynamic per-tensor or
per-token activation scales, or one static activation scale per layer, calibrated once
(`calibrate_static`): then quantizing an activation is a multiply and a cast that a compiler
fuses into the kernel before it, instead of an amax reduction per call.

Native kernel: `torch._scaled_mm(a, b, scale_a, scale_b, out_dtype=bf16)` (cuBLASLt), sm_89+.
Layout: a [M,K] row-major, b [K,N] **column-major** (we pass `w_fp8.t()` of a contiguous
[N,K] weight), K and N multiples of 16. Tensorwise scaling: both scales 1-element fp32.
Rowwise: scale_a [M,1] fp32, scale_b [1,N] fp32, out_dtype bf16 (sm_90; sm_89/sm_100+
depending on the torch build).
"""
from __future__ import annotations

from typing import Any, Callable, Literal

import torch
import torch.nn as nn

from .base import FP8, FP8_MAX, Backend, ScaledCodesLinear, _amax_scale, fp8_supported


# ----------------------------------------------------------------------------- FP8 E4M3
def quantize_fp8(t: torch.Tensor, granularity: Literal["tensor", "row"] = "tensor",
                 scale: torch.Tensor | None = None):
    """E4M3 codes and fp32 scale: t ~ codes * scale. `row` scales each row (per output channel
    for a [N,K] weight, per token for [M,K] activations) -> scale [rows, 1]. A given `scale`
    (e.g. a calibrated one) is used as is; values beyond its range saturate."""
    if scale is None:
        scale = _amax_scale(t, FP8_MAX, None if granularity == "tensor" else -1)
    codes = (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return codes, scale


class FP8Linear(ScaledCodesLinear):
    """W8A8 in E4M3. granularity "tensor": one weight scale; "channel": one per output channel.
    act "tensor": one dynamic activation scale per call; "token": one per row of x; "static":
    the `act_scale` buffer, set by `calibrate_static` (until then, and while calibrating, the
    layer quantizes dynamically per tensor). Values beyond a static scale's range saturate.
    Native: torch._scaled_mm (tensorwise if both scales are single, else rowwise), bf16 out."""

    def __init__(self, linear: nn.Linear, granularity: Literal["tensor", "channel"] = "tensor",
                 act: Literal["tensor", "token", "static"] | None = None, scale_ignored: bool = False,
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
        if self.act == "static":
            self.register_buffer("act_scale", torch.ones(1, device=self.weight_scale.device))
            self.calibrated = False
            self.observed_amax: torch.Tensor | None = None  # set while calibrating

    @property
    def qweight(self) -> torch.Tensor:
        return self.qweight_bits.view(FP8)

    def _quant_act(self, x2):
        if self.act == "static":
            if self.observed_amax is not None:  # calibrating: record, quantize dynamically
                self.observed_amax = torch.maximum(self.observed_amax, x2.detach().abs().amax().float())
            elif not self.calibrated:
                raise RuntimeError("FP8Linear(act='static') used before calibrate_static")
            else:
                return quantize_fp8(x2, scale=self.act_scale)
        return quantize_fp8(x2, "tensor" if self.act in ("tensor", "static") else "row")

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


@torch.no_grad()
def calibrate_static(model: nn.Module, run: Callable[[], Any]) -> int:
    """Set the `act_scale` of every FP8Linear(act="static") in `model` from the largest |input|
    it sees while `run()` executes (amax / 448: the calibration input just fits E4M3's range);
    returns how many layers were calibrated. Inputs outside the calibrated range saturate, so
    check the model on other inputs than `run`'s."""
    layers = [m for m in model.modules() if isinstance(m, FP8Linear) and m.act == "static"]
    for m in layers:
        m.observed_amax = torch.zeros((), device=m.weight_scale.device)
    try:
        run()
    finally:
        for m in layers:
            amax, m.observed_amax = m.observed_amax, None
            m.act_scale.copy_(_amax_scale(amax, FP8_MAX, None).reshape(1))
            m.calibrated = True
    return len(layers)
