"""The project's own Triton matmul: c = a @ b, bf16/fp16 (or FP8 E4M3 in, bf16 out).

It follows the structure of Triton's matmul tutorial (python/tutorials/03-matrix-multiplication.py):
one program per [BLOCK_M, BLOCK_N] tile of C, launched on a 1-D grid and re-ordered in
groups of GROUP_M rows of tiles ("L2 swizzle": consecutive programs share the same A rows
and sweep B's columns, so A and B tiles are reused from L2), a K loop of masked loads and
`tl.dot` into an fp32 accumulator, and `@triton.autotune` over BLOCK_M/N/K, GROUP_M,
num_warps and num_stages keyed on (M, N, K) (Triton adds the argument dtypes to the key).

The seed measured a Triton FP16 matmul at 0.41x cuBLAS on Jetson Thor (sm_110). This module
lets the book rerun the comparison on the device at hand, with its own autotuned kernel.

FP8: `tl.dot` takes float8e4nv operands on sm_89+; as in the tutorial, b is passed
column-major (K-major), which is what Hopper's FP8 wgmma wants for the second operand.

Triton is imported lazily: this module imports on CPU without triton; `triton_available()`
is False there. `triton_matmul(..., config={...})` runs one fixed config without autotuning
(also what runs under TRITON_INTERPRET=1, where there is nothing to autotune on).
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import torch

_BF16_CONFIGS: tuple[tuple[int, int, int, int, int, int], ...] = (
    # BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_stages, num_warps  (the tutorial's CUDA list + K=64
    # variants, without its three smallest tiles (128x32, 64x32, 32x64), meant for small matrices,
    # not the prefill's M >= 712 x N >= 2048: every config costs a compile and a benchmark per
    # shape, and <= 12 configs keep chapter 6's autotuning inside the book's time budget)
    (128, 256, 64, 8, 3, 8),
    (64, 256, 32, 8, 4, 4),
    (128, 128, 32, 8, 4, 4),
    (128, 64, 32, 8, 4, 4),
    (64, 128, 32, 8, 4, 4),
    (128, 128, 64, 8, 3, 8),
    (128, 128, 64, 8, 4, 4),
    (64, 128, 64, 8, 4, 4),
    (128, 256, 64, 8, 4, 8),
    (256, 128, 64, 8, 3, 8),
)
_FP8_CONFIGS: tuple[tuple[int, int, int, int, int, int], ...] = (
    # the tutorial's "good for fp8 inputs" list
    (128, 256, 128, 8, 3, 8),
    (256, 128, 128, 8, 3, 8),
    (256, 64, 128, 8, 4, 4),
    (64, 256, 128, 8, 4, 4),
    (128, 128, 128, 8, 4, 4),
    (128, 64, 64, 8, 4, 4),
    (64, 128, 64, 8, 4, 4),
    (128, 32, 64, 8, 4, 4),
)
_FIELDS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_stages", "num_warps")


def autotune_configs(fp8: bool = False) -> list[dict]:
    """The search space, as plain dicts (readable without triton)."""
    return [dict(zip(_FIELDS, c)) for c in (_FP8_CONFIGS if fp8 else _BF16_CONFIGS)]


def triton_version() -> str | None:
    try:
        import triton
    except Exception:
        return None
    return triton.__version__


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    """Triton importable and a CUDA device to run it on (False on a CPU-only machine)."""
    return torch.cuda.is_available() and triton_version() is not None


def fp8_matmul_supported(device: torch.device | str = "cuda") -> bool:
    device = torch.device(device)
    return (device.type == "cuda" and torch.cuda.is_available()
            and torch.cuda.get_device_capability(device) >= (8, 9))


_K: dict | None = None


def _kernels() -> dict:
    """Compile-time objects, built on first use (so importing needs no triton)."""
    global _K
    if _K is not None:
        return _K
    import triton
    import triton.language as tl

    @triton.jit
    def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                      stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr):
        # which tile of C: grouped ordering for L2 reuse
        pid = tl.program_id(axis=0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
        pid_n = (pid % num_pid_in_group) // group_size_m

        # rows/cols past M/N wrap around (their results are masked at the store)
        offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
        offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
        offs_k = tl.arange(0, BLOCK_K)
        a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)
        b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
            acc = tl.dot(a, b, acc)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c = acc.to(c_ptr.dtype.element_ty)

        offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
        tl.store(c_ptrs, c, mask=(offs_cm[:, None] < M) & (offs_cn[None, :] < N))

    def prune(configs, named_args, **kwargs):
        # no point in tiles far larger than the problem (small-M prefill chunks, tests)
        m, n, k = named_args["M"], named_args["N"], named_args["K"]
        cap = lambda v: max(16, triton.next_power_of_2(v))  # noqa: E731
        kept = [c for c in configs if c.kwargs["BLOCK_M"] <= cap(m) and c.kwargs["BLOCK_N"] <= cap(n)
                and c.kwargs["BLOCK_K"] <= cap(k)]
        return kept or configs[-1:]

    def tuned(fp8: bool):
        cfgs = [triton.Config({f: d[f] for f in _FIELDS[:4]}, num_stages=d["num_stages"], num_warps=d["num_warps"])
                for d in autotune_configs(fp8)]
        return triton.autotune(configs=cfgs, key=["M", "N", "K"],
                               prune_configs_by={"early_config_prune": prune})(matmul_kernel)

    _K = {"raw": matmul_kernel, "bf16": tuned(False), "fp8": tuned(True), "triton": triton}
    return _K


def triton_matmul(a: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype | None = None,
                  config: dict | None = None) -> torch.Tensor:
    """c = a @ b for a [M,K], b [K,N] on CUDA (bf16/fp16 in: same dtype out; float8_e4m3fn
    in, sm_89+: bf16 out). Any strides; for FP8, b is made column-major. `config` (keys of
    `autotune_configs()`) runs that one configuration instead of autotuning."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need a [M,K] and b [K,N], got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must share a dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError("a and b must be on one device")
    fp8 = a.dtype == torch.float8_e4m3fn
    if not fp8 and a.dtype not in (torch.bfloat16, torch.float16):
        raise TypeError(f"dtype must be bfloat16, float16 or float8_e4m3fn, got {a.dtype}")
    if a.device.type != "cuda" and not _interpret():
        raise RuntimeError("triton_matmul runs on CUDA (or under TRITON_INTERPRET=1)")
    if fp8 and a.device.type == "cuda" and not fp8_matmul_supported(a.device):
        raise RuntimeError("FP8 tl.dot needs CUDA capability >= 8.9")
    if fp8 and b.stride(0) != 1:
        b = b.t().contiguous().t()  # column-major (K-major) second operand
    K_ = _kernels()
    triton = K_["triton"]
    M, K = a.shape
    N = b.shape[1]
    out_dtype = out_dtype or (torch.bfloat16 if fp8 else a.dtype)
    c = torch.empty((M, N), device=a.device, dtype=out_dtype)
    if M == 0 or N == 0:
        return c
    if K == 0:
        return c.zero_()
    grid = lambda META: (triton.cdiv(M, META["BLOCK_M"]) * triton.cdiv(N, META["BLOCK_N"]),)  # noqa: E731
    args = (a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1))
    if config is not None:
        meta = {f: config[f] for f in _FIELDS[:4]}
        launch = {f: config[f] for f in _FIELDS[4:] if f in config}
        if _interpret():
            launch = {}
        K_["raw"][grid](*args, **meta, **launch)
    else:
        K_["fp8" if fp8 else "bf16"][grid](*args)
    return c


def best_config(fp8: bool = False) -> dict | None:
    """The autotuner's choice for the last (M, N, K) it tuned, or None before any call."""
    if _K is None:
        return None
    cfg = getattr(_K["fp8" if fp8 else "bf16"], "best_config", None)
    if cfg is None:
        return None
    return {**cfg.kwargs, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


def check_triton_matmul(shapes: Iterable[Sequence[int]], dtype: torch.dtype = torch.bfloat16,
                        device: str = "cuda", seed: int = 0, config: dict | None = None,
                        rtol: float = 1e-2) -> "pandas.DataFrame":
    """Correctness of `triton_matmul` on fresh random inputs, one row per (M, N, K):
    relative error ||c - ref|| / ||ref|| and cosine vs an fp32 torch reference on the same
    (already rounded) inputs, so the error is accumulation + output rounding only (bf16
    output: ~2e-3). ok = rel_err < rtol. A non-contiguous case is included per shape
    (b given as a transposed view)."""
    import pandas as pd

    from pi05perf.quant import accuracy

    g = torch.Generator(device="cpu").manual_seed(seed)
    rows = []
    for M, N, K in shapes:
        for layout in ("row-major b", "column-major b"):
            a = torch.randn(M, K, generator=g)
            b = torch.randn(K, N, generator=g) / K ** 0.5
            if dtype == torch.float8_e4m3fn:
                a, b = a.clamp(-448, 448), (b * 16).clamp(-448, 448)
            a, b = a.to(dtype).to(device), b.to(dtype).to(device)
            if layout == "column-major b":
                b = b.t().contiguous().t()
            ref_prec = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                ref = a.float() @ b.float()
            finally:
                torch.backends.cuda.matmul.allow_tf32 = ref_prec
            err = None
            try:
                c = triton_matmul(a, b, config=config)
                acc = accuracy(c, ref)
                max_abs = float((c.float() - ref).abs().max())
            except Exception as e:  # reported, not hidden: ok=False
                acc, max_abs, err = {"cos": float("nan"), "rel_err": float("nan")}, float("nan"), f"{type(e).__name__}: {e}"
            rows.append({"M": M, "N": N, "K": K, "dtype": str(dtype).replace("torch.", ""), "b_layout": layout,
                         "rel_err": acc["rel_err"], "cos": acc["cos"], "max_abs_err": max_abs,
                         "ok": bool(acc["rel_err"] < rtol), "config": None if config else best_config(dtype == torch.float8_e4m3fn),
                         "error": err})
    return pd.DataFrame(rows)


__all__ = ["triton_available", "triton_version", "fp8_matmul_supported", "triton_matmul",
           "check_triton_matmul", "autotune_configs", "best_config"]
