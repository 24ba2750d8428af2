"""The project's own Triton matmul: c = a @ b, bf16/fp16 (or FP8 E4M3 in, bf16 out).

It follows the structure of Triton's matmul tutorial (python/tutorials/03-matrix-multiplication.py):
one program per [BLOCK_M, BLOCK_N] tile of C, launched on a 1-D grid and re-ordered in
groups of GROUP_M rows of tiles ("L2 swizzle": consecutive programs share the same A rows
and sweep B's columns, so A and B tiles are reused from L2), a K loop of loads (masked only
when BLOCK_K does not divide K) and `tl.dot` into an fp32 accumulator, and `@triton.autotune`
over BLOCK_M/N/K, GROUP_M, num_warps and num_stages keyed on (M, N, K) (Triton adds the
argument dtypes to the key). The autotuner times the configurations on the running GPU the
first time a key is seen and keeps its choice for the process; `best_config` reads it back.

The seed measured a Triton FP16 matmul at 0.41x cuBLAS on Jetson Thor (sm_110). This module
lets the book rerun the comparison on the device at hand: `triton_vs_cublas` (chapter 6) checks,
then times, the kernel against cuBLAS on the prefill's shapes.

FP8: `tl.dot` takes float8e4nv operands on sm_89+; as in the tutorial, b is passed
column-major (K-major), which is what Hopper's FP8 wgmma wants for the second operand.

Triton is optional: this module imports without it and `triton_available()` is False on a
machine without CUDA. The kernel is defined when the module is imported, so TRITON_INTERPRET=1
(Triton's CPU interpreter, used by the tests) must be set before that.
`triton_matmul(..., config={...})` runs one fixed config without autotuning (also what runs
under the interpreter, where there is nothing to autotune on).
"""
from __future__ import annotations

import functools
import os
from typing import Iterable, Sequence

import pandas as pd
import torch
from .ceilings import cublas_product
from .kernels import autotuned
from .log import progress

# BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_stages, num_warps. Hopper first: 128-row tiles with
# 8 warps (two warpgroups issuing wgmma), 3-4 cp.async stages (a 128x256x64 bf16 stage is 48 KB of
# the 227 KB of shared memory). Then smaller tiles: at M = 712 and N = 2048 a 128x256 tile gives
# 6 x 8 = 48 programs for 132 SMs, a 64x128 tile 192. Each config is a compile per dtype and a
# benchmark per shape, so the lists stay near 10 (chapter 6's autotuning: tens of seconds).
_BF16_CONFIGS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (128, 256, 64, 8, 3, 8), (128, 256, 64, 8, 4, 8), (256, 128, 64, 8, 3, 8), (256, 128, 64, 8, 4, 8),
    (128, 128, 64, 8, 3, 8), (128, 128, 64, 8, 4, 8),
    (128, 128, 64, 8, 4, 4), (64, 256, 64, 8, 4, 4), (128, 64, 64, 8, 4, 4), (64, 128, 64, 8, 4, 4),
)
_FP8_CONFIGS: tuple[tuple[int, int, int, int, int, int], ...] = (
    # the same shapes with BLOCK_K = 128 (an fp8 128-wide K slab is as many bytes as a bf16 64-wide one)
    (128, 256, 128, 8, 3, 8), (128, 256, 128, 8, 4, 8), (256, 128, 128, 8, 3, 8), (128, 128, 128, 8, 3, 8),
    (128, 128, 128, 8, 4, 8), (128, 128, 128, 8, 4, 4), (64, 256, 128, 8, 4, 4), (128, 64, 128, 8, 4, 4),
    (64, 128, 128, 8, 4, 4),
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


try:  # optional: without triton this module imports and `triton_matmul` raises
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None

if triton is not None:  # module level, so that the kernel can call its step function
    @triton.jit
    def _mm_step(acc, a_ptrs, b_ptrs, k_left, offs_k, EVEN_K: tl.constexpr, UPCAST: tl.constexpr):
        """acc += one BLOCK_K slab; unmasked loads when BLOCK_K divides K (every prefill shape)."""
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        if UPCAST:  # Triton's interpreter gets bf16 tl.dot wrong: the CPU tests multiply in fp32
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        return tl.dot(a, b, acc)

    @triton.jit
    def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                      stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr, EVEN_K: tl.constexpr, UPCAST: tl.constexpr = False,
                      K_STEPS: tl.constexpr = 0):
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
        # K_STEPS > 0 fixes the trip count at compile time: Triton's interpreter (the CPU tests)
        # fails on run-time loop bounds with numpy >= 2.3. On a GPU it is 0.
        if K_STEPS > 0:
            for k in range(0, K_STEPS):
                acc = _mm_step(acc, a_ptrs, b_ptrs, K - k * BLOCK_K, offs_k, EVEN_K, UPCAST)
                a_ptrs += BLOCK_K * stride_ak
                b_ptrs += BLOCK_K * stride_bk
        else:
            for k in range(0, tl.cdiv(K, BLOCK_K)):
                acc = _mm_step(acc, a_ptrs, b_ptrs, K - k * BLOCK_K, offs_k, EVEN_K, UPCAST)
                a_ptrs += BLOCK_K * stride_ak
                b_ptrs += BLOCK_K * stride_bk
        c = acc.to(c_ptr.dtype.element_ty)

        offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
        tl.store(c_ptrs, c, mask=(offs_cm[:, None] < M) & (offs_cn[None, :] < N))


@functools.lru_cache(maxsize=None)
def _kernels() -> dict:
    """The autotuned launchers, built on first use."""
    if triton is None:
        raise RuntimeError("triton is not installed")

    def prune(configs, named_args, **kwargs):
        # no point in tiles far larger than the problem (small-M prefill chunks, tests)
        m, n, k = named_args["M"], named_args["N"], named_args["K"]
        cap = lambda v: max(16, triton.next_power_of_2(v))  # noqa: E731
        kept = [c for c in configs if c.kwargs["BLOCK_M"] <= cap(m) and c.kwargs["BLOCK_N"] <= cap(n)
                and c.kwargs["BLOCK_K"] <= cap(k)]
        return kept or configs[-1:]

    even_k = triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})(matmul_kernel)

    def tuned(fp8: bool):
        cfgs = [triton.Config({f: d[f] for f in _FIELDS[:4]}, num_stages=d["num_stages"], num_warps=d["num_warps"])
                for d in autotune_configs(fp8)]
        # shorter than do_bench's default (25 ms warm-up, 100 ms): ~20 configs x 8 shapes stay in seconds
        return autotuned(even_k, cfgs, ["M", "N", "K"], prune, warmup_ms=10, rep_ms=40)

    return {"raw": matmul_kernel, "bf16": tuned(False), "fp8": tuned(True)}


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
            launch = {"UPCAST": True, "K_STEPS": triton.cdiv(K, meta["BLOCK_K"])}
        fixed = (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)
        K_["raw"][fixed](*args, **meta, EVEN_K=K % meta["BLOCK_K"] == 0, **launch)
    else:
        K_["fp8" if fp8 else "bf16"][grid](*args)
    return c


def best_config(fp8: bool = False) -> dict | None:
    """The autotuner's choice for the last (M, N, K) it tuned, or None before any call."""
    if not _kernels.cache_info().currsize:  # nothing tuned yet (and triton may be absent)
        return None
    cfg = getattr(_kernels()["fp8" if fp8 else "bf16"], "best_config", None)
    if cfg is None:
        return None
    return {**cfg.kwargs, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


def check_triton_matmul(shapes: Iterable[Sequence[int]], dtype: torch.dtype = torch.bfloat16,
                        device: str = "cuda", seed: int = 0, config: dict | None = None,
                        rtol: float = 1e-2) -> pd.DataFrame:
    """Correctness of `triton_matmul` on fresh random inputs, one row per (M, N, K):
    relative error ||c - ref|| / ||ref|| and cosine vs an fp32 torch reference on the same
    (already rounded) inputs, so the error is accumulation + output rounding only (bf16
    output: ~2e-3). ok = rel_err < rtol. A non-contiguous case is included per shape
    (b given as a transposed view)."""
    from .check import cosine, relative_error

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
                acc = {"cos": cosine(c, ref), "rel_err": relative_error(c, ref)}
                max_abs = float((c.float() - ref).abs().max())
            except Exception as e:  # reported, not hidden: ok=False
                acc, max_abs, err = {"cos": float("nan"), "rel_err": float("nan")}, float("nan"), f"{type(e).__name__}: {e}"
            rows.append({"M": M, "N": N, "K": K, "dtype": str(dtype).replace("torch.", ""), "b_layout": layout,
                         "rel_err": acc["rel_err"], "cos": acc["cos"], "max_abs_err": max_abs,
                         "ok": bool(acc["rel_err"] < rtol), "config": None if config else best_config(dtype == torch.float8_e4m3fn),
                         "error": err})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- benchmark (chapter 6)
def _tf32_off():
    import contextlib

    @contextlib.contextmanager
    def ctx():
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
    return ctx()


def tiles(config: dict | None, M: int, N: int) -> int | None:
    """Output tiles (= programs) of a config at (M, N): with fewer than the SM count, or a last
    partial wave, some SMs idle for part of the run."""
    if not config:
        return None
    return -(-M // config["BLOCK_M"]) * -(-N // config["BLOCK_N"])


def grid_efficiency(config: dict | None, M: int, N: int, sms: int) -> float | None:
    """The share of SM time a one-tile-per-SM wave model gives to useful output elements: M·N
    over (waves × SMs × tile area), where a wave is one tile on every SM. Padding loses the rest
    (712 rows in 128-row tiles compute 768) and so does the last, partial wave. A model, for
    reading the table: chapter 6's decomposition rests on timed products (`limit_text`)."""
    n_tiles = tiles(config, M, N)
    if not n_tiles or sms <= 0:
        return None
    waves = -(-n_tiles // sms)
    return M * N / (waves * sms * config["BLOCK_M"] * config["BLOCK_N"])


def limit_text(per_shape: pd.DataFrame, main_loop: dict[str, float], target: float, square: str) -> str:
    """What stands between each pair over `target` and the target. `main_loop[dtype]` is
    Triton's time over cuBLAS's on a large square product (`square`), where both fill every SM
    with whole tiles for many waves: the main loop's gap alone. A pair whose ratio exceeds it
    loses the rest to its grid. `per_shape` rows: gemm, dtype, triton_vs_cublas_ratio."""
    slow = per_shape[per_shape.triton_vs_cublas_ratio > target]
    if slow.empty:
        return f"Every pair is within {target}× of cuBLAS."
    out = []
    for dtype, rows in slow.groupby("dtype", sort=False):
        loop = main_loop.get(dtype)
        pairs = ", ".join(f"{r.gemm} ({r.triton_vs_cublas_ratio:.2f}×)" for r in rows.itertuples())
        if loop is None:
            out.append(f"{dtype}: {pairs} over {target}×; the square product was not timed, so the main loop and the "
                       "grid are not told apart.")
            continue
        where = ("the main loop alone is over the target: where both kernels fill every SM with whole tiles, Triton's "
                 "tiles compute slower than cuBLAS's, a part no grid or tile shape fitted to these shapes removes; the "
                 "main loop itself must get faster" if loop > target else
                 "the main loop is within the target, so the excess at these shapes is the grid's: padding to whole "
                 "tiles, the last partial wave, SMs without a tile")
        out.append(f"{dtype}: on the {square} product Triton takes {loop:.2f}× cuBLAS's time; at {pairs}, {where}.")
    return " ".join(out)


def triton_vs_cublas(shapes: dict[str, tuple[int, int, int]], device: torch.device | str, repeats: int,
                     dtypes: Iterable[torch.dtype] = (torch.bfloat16,), seed: int = 0,
                     log=progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The autotuned Triton matmul against cuBLAS (torch.matmul; torch._scaled_mm with unit
    scales for FP8) on each (M, N, K), the second operand laid out as nn.Linear keeps it (W [N,K],
    passed as the column-major view W.t()). Per shape and dtype: autotune on these operands (its
    wall time is `autotune_s`, its choice the BLOCK_* columns), check both against fp32 on them and
    `check_triton_matmul` on fresh inputs (both layouts of b), then time both (medians, IQR: one
    CUDA graph of calls on operand copies that do not fit in L2 together, `kernels.time_on_copies`).
    A failed check or an exception is a `checks` row with `error` and no timing.
    Returns (checks, timings)."""
    import math
    import time

    from .check import relative_error
    from .kernels import time_on_copies
    from .timing import synchronize

    if not triton_available():
        raise RuntimeError("Triton needs a CUDA device and an importable triton")
    device = torch.device(device)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    g = torch.Generator().manual_seed(seed)
    checks, rows = [], []
    for dtype in dtypes:
        fp8 = dtype == torch.float8_e4m3fn
        name = str(dtype).removeprefix("torch.")
        if fp8 and not fp8_matmul_supported(device):
            log(f"skip {dtype}: this device has no FP8 matmul")
            continue
        for label, (M, N, K) in shapes.items():
            a = torch.randn(M, K, generator=g)
            w = torch.randn(N, K, generator=g) * (1.0 if fp8 else 1 / math.sqrt(K))
            a, w = a.to(device=device, dtype=dtype), w.to(device=device, dtype=dtype)
            b = w.t()  # [K,N], column-major: nn.Linear's weight as the second operand
            products = {"cuBLAS": cublas_product(dtype, device), "Triton": triton_matmul}
            impls = {impl: (lambda f=f, a=a, b=b: f(a, b)) for impl, f in products.items()}
            try:
                t0 = time.perf_counter()
                impls["Triton"]()  # autotunes on these operands
                synchronize(device)
                tune_s = time.perf_counter() - t0
                config = best_config(fp8)
                with _tf32_off():
                    ref = a.float() @ b.float()
                fresh = check_triton_matmul([(M, N, K)], dtype, device=str(device), seed=seed + 1)
                for impl, fn in impls.items():
                    err = relative_error(fn(), ref)
                    checks.append({"gemm": label, "dtype": name, "impl": impl, "rel_err_vs_fp32": err,
                                   "fresh_max_rel_err": float(fresh.rel_err.max()) if impl == "Triton" else math.nan,
                                   "error": None})
                    if not err <= 1e-2:
                        raise AssertionError(f"{impl}: relative error {err:.2e} against fp32")
                if not fresh["ok"].all():
                    raise AssertionError(f"Triton wrong on fresh inputs: {fresh[['b_layout', 'rel_err', 'error']].to_dict('records')}")
            except Exception as e:  # recorded and shown as failed, never timed
                checks.append({"gemm": label, "dtype": name, "impl": "Triton", "rel_err_vs_fp32": math.nan,
                               "fresh_max_rel_err": math.nan, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                log(f"  {label} {name}: FAILED {checks[-1]['error']}")
                continue
            try:
                # graphed calls on operand copies past L2: a Triton launch costs tens of µs of Python, more
                # than a 712-row GEMM takes on the GPU, and an eager timing would measure that launch
                timed = {impl: time_on_copies(f, (a, b), device, repeats) for impl, f in products.items()}
            except Exception as e:  # a pair is timed whole or not at all
                checks.append({"gemm": label, "dtype": name, "impl": "timing", "rel_err_vs_fp32": math.nan,
                               "fresh_max_rel_err": math.nan, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                continue
            for impl, t in timed.items():
                cfg = (config or {}) if impl == "Triton" else {}
                rows.append({"gemm": label, "M": M, "N": N, "K": K, "dtype": name, "impl": impl, **t.as_dict(),
                             "achieved_tflops": 2 * M * N * K / (t.median_ms * 1e-3) / 1e12,
                             **{f: cfg.get(f) for f in _FIELDS}, "tiles_count": tiles(cfg, M, N), "sm_count": sms,
                             "autotune_s": tune_s if impl == "Triton" else 0.0})
            log(f"  {label} {name}: cuBLAS {rows[-2]['median_ms']:.4f} ms, Triton {rows[-1]['median_ms']:.4f} ms "
                f"(autotune {tune_s:.1f} s, {config})")
    return pd.DataFrame(checks), pd.DataFrame(rows)


def launched_from_python(timings: pd.DataFrame | None) -> bool:
    """True when the timings were taken call by call from Python (runs before graphed timing):
    a Triton launch's host cost then sits in the small GEMMs' times, so their ratio to cuBLAS is
    partly host overhead."""
    return timings is not None and not timings.empty and not timings["method"].str.startswith("cuda-graph").all()


def triton_ratio(timings: pd.DataFrame | None, dtype: str) -> float | None:
    """Triton time over cuBLAS time, summed over the shapes both timed (> 1: Triton slower)."""
    if timings is None or timings.empty:
        return None
    t = timings[timings.dtype == dtype].pivot_table(index="gemm", columns="impl", values="median_ms").dropna()
    if t.empty or "Triton" not in t or "cuBLAS" not in t:
        return None
    return float(t.Triton.sum() / t.cuBLAS.sum())


__all__ = ["triton_available", "triton_version", "fp8_matmul_supported", "triton_matmul", "triton_vs_cublas",
           "triton_ratio", "launched_from_python", "tiles", "grid_efficiency", "limit_text",
           "check_triton_matmul", "autotune_configs", "best_config"]
