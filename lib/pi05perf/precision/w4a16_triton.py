"""A prefill-class INT4 weight-only matmul (W4A16) in Triton: the int4 weights are unpacked
and dequantized to bf16 inside the main loop and multiplied on the bf16 tensor cores.

torch's tinygemm (`_weight_int4pack_mm`) is a decode kernel; this is the standard tiled
matmul (a [BM, BK] tile of x against a [BK, BN] tile of W^T per step, fp32 accumulator), so
its speed at 712 tokens says what INT4 weights cost a compute-bound prefill.

Layout (`pack_w4a16`, from `int4.int4_group_quantize`'s codes and scales_and_zeros): one
K-tile is one quantization group (BK = group_size). Within a group the byte at row j of
`packed` [K/2, N] (uint8, N contiguous) holds k = g*G + j in its high nibble and
k = g*G + G/2 + j in its low nibble, so each half of the tile multiplies a contiguous half of
x's tile. scales, zeros [K/G, N] bf16: W[n, k] = (q - 8) * s + z, as in tinygemm.
`dequantize_w4a16` is the pure-torch inverse (the reference, testable on a CPU).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from ..log import progress

try:  # Triton is absent on CPU-only machines: the kernel is defined only where it imports
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - any import failure means "no Triton here"
    triton = None

if TYPE_CHECKING:
    import pandas as pd


def available(device: torch.device | str | None = None) -> bool:
    """Triton importable and a CUDA device (sm_80+, bf16 MMA) to run on."""
    if triton is None or not torch.cuda.is_available():
        return False
    d = torch.device(device) if device is not None else torch.device("cuda")
    return d.type == "cuda" and torch.cuda.get_device_capability(d) >= (8, 0)


# ----------------------------------------------------------------------------- packing (pure torch)
def pack_w4a16(codes: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """codes uint8 [N,K] in 0..15 and scales_and_zeros [K/G, N, 2] -> (packed uint8 [K/2, N],
    scales bf16 [K/G, N], zeros bf16 [K/G, N]) in the kernel's layout (module docstring)."""
    n, k = codes.shape
    if k % group_size or group_size % 2:
        raise ValueError(f"K={k} must be a multiple of an even group size (got {group_size})")
    c = codes.to(torch.uint8).t().reshape(k // group_size, 2, group_size // 2, n)  # [K/G, half, G/2, N]
    packed = (c[:, 0] << 4) | c[:, 1]  # high nibble: first half of the group
    return (packed.reshape(k // 2, n).contiguous(), scales_and_zeros[..., 0].to(torch.bfloat16).contiguous(),
            scales_and_zeros[..., 1].to(torch.bfloat16).contiguous())


def unpack_w4a16(packed: torch.Tensor, group_size: int) -> torch.Tensor:
    """The codes uint8 [N,K] back from `pack_w4a16`'s packed [K/2, N]."""
    k2, n = packed.shape
    p = packed.reshape(k2 * 2 // group_size, group_size // 2, n)
    halves = torch.stack([p >> 4, p & 0xF], dim=1)  # [K/G, 2, G/2, N]
    return halves.reshape(k2 * 2, n).t().contiguous()


def dequantize_w4a16(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """fp32 W [N,K] the kernel multiplies by (before its bf16 rounding of each dequantized value)."""
    q = unpack_w4a16(packed, group_size).float()  # [N,K]
    n, k = q.shape
    s = scales.float().t()[..., None]  # [N, K/G, 1]
    z = zeros.float().t()[..., None]
    return ((q.reshape(n, k // group_size, group_size) - 8) * s + z).reshape(n, k)


def reference_matmul(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                     group_size: int) -> torch.Tensor:
    """x [M,K] @ W^T in fp32 from the packed operands: the check every kernel run must pass."""
    return x.float() @ dequantize_w4a16(packed, scales, zeros, group_size).to(x.device).t()


# ----------------------------------------------------------------------------- the kernel
if triton is not None:
    _CONFIGS = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                for bm, bn, w, s in ((128, 128, 8, 3), (128, 256, 8, 3), (64, 128, 4, 4), (128, 64, 4, 4),
                                     (64, 256, 8, 3), (128, 128, 4, 4))]

    @triton.autotune(configs=_CONFIGS, key=["M", "N", "K"])
    @triton.jit
    def _w4a16_kernel(x_ptr, p_ptr, s_ptr, z_ptr, y_ptr, M, N, K,
                      stride_xm, stride_xk, stride_pk, stride_pn, stride_sg, stride_sn, stride_ym, stride_yn,
                      GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      DOT_F32: tl.constexpr = False):
        HALF: tl.constexpr = GROUP // 2
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rh = tl.arange(0, HALF)
        m_ok = rm < M
        n_ok = rn < N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for g in range(0, K // GROUP):
            k0 = g * GROUP
            # x: the two contiguous halves of the group, [BM, G/2] each (bf16)
            xa = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rh)[None, :] * stride_xk, mask=m_ok[:, None], other=0.0)
            xb = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + HALF + rh)[None, :] * stride_xk,
                         mask=m_ok[:, None], other=0.0)
            # packed weights [G/2, BN] uint8: high nibble -> first half, low nibble -> second half
            p = tl.load(p_ptr + (g * HALF + rh)[:, None] * stride_pk + rn[None, :] * stride_pn, mask=n_ok[None, :], other=0)
            p = p.to(tl.int32)
            s = tl.load(s_ptr + g * stride_sg + rn * stride_sn, mask=n_ok, other=0.0).to(tl.float32)
            z = tl.load(z_ptr + g * stride_sg + rn * stride_sn, mask=n_ok, other=0.0).to(tl.float32)
            wa = ((((p >> 4) & 0xF).to(tl.float32) - 8.0) * s[None, :] + z[None, :]).to(tl.bfloat16)
            wb = (((p & 0xF).to(tl.float32) - 8.0) * s[None, :] + z[None, :]).to(tl.bfloat16)
            if DOT_F32:  # Triton's CPU interpreter multiplies bf16 tiles wrongly: tests widen them
                acc += tl.dot(xa.to(tl.float32), wa.to(tl.float32))
                acc += tl.dot(xb.to(tl.float32), wb.to(tl.float32))
            else:  # the GPU path: bf16 tiles on the tensor cores, fp32 accumulator
                acc += tl.dot(xa, wa)
                acc += tl.dot(xb, wb)
        tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :] * stride_yn, acc.to(tl.bfloat16),
                 mask=m_ok[:, None] & n_ok[None, :])


def w4a16_matmul(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                 group_size: int) -> torch.Tensor:
    """y [M,N] bf16 = x [M,K] bf16 @ W^T with W from `pack_w4a16`'s operands (Triton)."""
    if triton is None:
        raise RuntimeError("Triton is not importable here")
    if x.dtype != torch.bfloat16 or x.dim() != 2:
        raise ValueError("x must be a 2-D bf16 tensor")
    m, k = x.shape
    n = packed.shape[1]
    if packed.shape[0] * 2 != k or k % group_size or group_size < 32 or group_size & (group_size - 1):
        raise ValueError(f"K={k}, packed {tuple(packed.shape)}, group {group_size}: K must be 2*packed rows, "
                         "a multiple of the group, the group a power of two >= 32 (tl.dot needs K >= 16 per half)")
    y = torch.empty(m, n, device=x.device, dtype=torch.bfloat16)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))  # noqa: E731
    _w4a16_kernel[grid](x, packed, scales, zeros, y, m, n, k, x.stride(0), x.stride(1), packed.stride(0),
                        packed.stride(1), scales.stride(0), scales.stride(1), y.stride(0), y.stride(1),
                        GROUP=group_size)
    return y


def w4a16_vs_bf16(shapes: dict[str, tuple[int, int]], tokens: int, device: torch.device | str, repeats: int,
                  group_size: int = 128, seed: int = 0, log=progress) -> "pd.DataFrame":
    """Per shape {label: (N, K)}: y = x W^T at `tokens` rows as bf16 cuBLAS (F.linear) and as
    the Triton W4A16 kernel on W's int4 codes (group `group_size`, asymmetric). Before timing
    the kernel's output must match the fp32 product with the dequantized weight (relative
    error <= 1e-2: bf16 rounding only) and cuBLAS the fp32 product with W (<= 1e-2). Each shape
    that fails is a row with its error (no time). Same timer for both (events, L2 flushed)."""
    import math

    import pandas as pd
    import torch.nn.functional as F

    from ..check import relative_error
    from ..timing import time_fn
    from .int4 import int4_group_quantize

    device = torch.device(device)
    if not available(device):
        return pd.DataFrame([{"gemm": k, "impl": "Triton W4A16", "error": "not run: needs a CUDA device and Triton"}
                             for k in shapes])
    g = torch.Generator().manual_seed(seed)
    rows = []
    for label, (n, k) in shapes.items():
        try:
            w = (torch.randn(n, k, generator=g) / math.sqrt(k)).to(device)
            x = torch.randn(tokens, k, generator=g).to(device=device, dtype=torch.bfloat16)
            q, sz = int4_group_quantize(w, group_size)
            packed, s, z = pack_w4a16(q, sz, group_size)
            w_bf = w.to(torch.bfloat16)
            ref_q = reference_matmul(x, packed, s, z, group_size)
            ref_w = x.float() @ w.t()
            y = w4a16_matmul(x, packed, s, z, group_size)  # autotunes on these operands
            err_q, err_w = relative_error(y, ref_q), relative_error(F.linear(x, w_bf), ref_w)
            if not (err_q <= 1e-2 and err_w <= 1e-2):
                raise AssertionError(f"W4A16 rel err {err_q:.2e} vs its dequantized weight, cuBLAS {err_w:.2e} vs fp32")
            x2 = torch.randn(tokens, k, generator=g).to(device=device, dtype=torch.bfloat16)  # a fresh input
            err2 = relative_error(w4a16_matmul(x2, packed, s, z, group_size), reference_matmul(x2, packed, s, z, group_size))
            if not err2 <= 1e-2:
                raise AssertionError(f"W4A16 rel err {err2:.2e} on a second input")
            for impl, fn, nbytes in (("bf16 cuBLAS", lambda: F.linear(x, w_bf), n * k * 2),
                                     ("Triton W4A16", lambda: w4a16_matmul(x, packed, s, z, group_size),
                                      packed.numel() + 4 * s.numel())):
                t = time_fn(fn, device, repeats)
                rows.append({"gemm": label, "N": n, "K": k, "tokens": tokens, "impl": impl, **t.as_dict(),
                             "tflops": 2 * tokens * n * k / (t.median_ms * 1e-3) / 1e12, "weight_bytes": nbytes,
                             "rel_err_vs_dequant": err_q if impl.startswith("Triton") else err_w, "error": None})
            log(f"  {label} @ {tokens}: bf16 {rows[-2]['median_ms']:.4f} ms, W4A16 {rows[-1]['median_ms']:.4f} ms")
        except Exception as e:  # noqa: BLE001 - a kernel that fails is recorded with its message
            log(f"  {label}: W4A16 failed: {type(e).__name__}: {e}")
            rows.append({"gemm": label, "N": n, "K": k, "tokens": tokens, "impl": "Triton W4A16",
                         "error": f"{type(e).__name__}: {str(e)[:300]}"})
    return pd.DataFrame(rows)


def w4a16_ratio(rows: "pd.DataFrame") -> float | None:
    """Triton W4A16 time over bf16 time, summed over the shapes both timed (> 1: INT4 slower)."""
    if "median_ms" not in rows:
        return None
    ok = rows[rows.median_ms.notna()]
    both = set(ok[ok.impl == "bf16 cuBLAS"].gemm) & set(ok[ok.impl == "Triton W4A16"].gemm)
    if not both:
        return None
    s = ok[ok.gemm.isin(both)].groupby("impl").median_ms.sum()
    return float(s["Triton W4A16"] / s["bf16 cuBLAS"])


__all__ = ["available", "pack_w4a16", "unpack_w4a16", "dequantize_w4a16", "reference_matmul", "w4a16_matmul", "w4a16_vs_bf16",
           "w4a16_ratio"]
