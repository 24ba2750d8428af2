"""Split-K skinny GEMM: y [M, N] = x [M, K] @ W [N, K]ᵀ for M <= 64 rows (the action tokens).

At M = 10 a GEMM reads each weight element once and does 20 FLOPs with it: it is a weight
stream, and its floor is the weight bytes over the device's bandwidth. A tile-per-program
matmul launches only cdiv(N, BLOCK_N) programs, too few to keep all SMs reading when N is 256
or 1024; split-K also cuts K into SPLIT_K slices, giving cdiv(N, BLOCK_N) x SPLIT_K programs.

Each program loads its x rows (padded to BLOCK_M = 16 for `tl.dot`) and a [BLOCK_K, BLOCK_N]
slab of W, K-contiguous as nn.Linear stores it, and accumulates in fp32. With SPLIT_K > 1 it
writes its fp32 partial to a workspace and increments a per-column-tile counter (an atomic with
acquire-release order at GPU scope, so the partial stores are visible to whoever sees the last
arrival); the program that arrives last sums the partials, writes y and resets the counter to 0
for the next call. One launch, no memset, capturable in a CUDA graph. The workspace is shared by
calls of one shape, so calls of one shape must not run concurrently on two streams.

FP8 weights (E4M3, one fp32 scale per output channel) halve the bytes; they are widened to the
activation dtype in registers and the scale is applied to the fp32 accumulator.
"""
from __future__ import annotations

import functools
import time
from typing import Iterable

import pandas as pd
import torch
import torch.nn.functional as F

from . import autotuned, check_runnable, copies_past_l2, interpreting, time_per_call
from ..log import progress

# BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages. Few distinct (BLOCK_N, BLOCK_K, warps,
# stages) tuples, since each is a compile; SPLIT_K is a run-time argument (no recompile).
_CONFIGS: tuple[tuple[int, int, int, int, int], ...] = (
    (64, 128, 1, 4, 4), (64, 128, 2, 4, 4), (64, 128, 4, 4, 4), (64, 128, 8, 4, 4),
    (32, 128, 4, 4, 4), (32, 128, 8, 4, 4), (32, 128, 16, 4, 4),
    (128, 128, 2, 4, 4), (128, 128, 4, 4, 4),
    (64, 256, 2, 4, 3), (64, 256, 4, 4, 3), (32, 256, 8, 4, 3),
)
_FIELDS = ("BLOCK_N", "BLOCK_K", "SPLIT_K", "num_warps", "num_stages")
MAX_M = 64
MAX_SPLIT = max(c[2] for c in _CONFIGS)


def autotune_configs() -> list[dict]:
    return [dict(zip(_FIELDS, c)) for c in _CONFIGS]


def fits(cfg: dict, n: int, k: int) -> bool:
    """A config worth trying at (N, K): tiles no wider than N needs, no empty K slices."""
    n_cap = max(16, 1 << (max(1, n) - 1).bit_length())
    return cfg["BLOCK_N"] <= n_cap and cfg["SPLIT_K"] * cfg["BLOCK_K"] <= max(k, cfg["BLOCK_K"])


def programs(cfg: dict, n: int) -> int:
    return -(-n // cfg["BLOCK_N"]) * cfg["SPLIT_K"]


def quantize_fp8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W [N, K] -> (E4M3 W / s, s [N] fp32) with s = amax of each row / 448 (per output channel)."""
    s = w.float().abs().amax(dim=1).clamp(min=1e-12) / 448.0
    return (w.float() / s[:, None]).clamp(-448, 448).to(torch.float8_e4m3fn), s


def reference(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """float32 x @ (W * scale)ᵀ on the same (rounded / quantized) operands the kernel reads."""
    wf = w.float() if scale is None else w.float() * scale.float()[:, None]
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return x.float() @ wf.t()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


try:  # Triton is optional: without it this module imports and `gemv_splitk` raises
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None

if triton is not None:  # the jit functions live at module level so that they can call each other
    @triton.jit
    def _step(acc, x_ptr, w_ptr, M, N, K, stride_xm, stride_wn, k0, rm, rn, rk, UPCAST: tl.constexpr):
        """acc += x[:, k0:k0+BLOCK_K] @ W[rn, k0:k0+BLOCK_K]ᵀ"""
        offs_k = k0 + rk
        k_ok = offs_k < K
        x = tl.load(x_ptr + rm[:, None] * stride_xm + offs_k[None, :], mask=(rm[:, None] < M) & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + rn[None, :] * stride_wn + offs_k[:, None], mask=(rn[None, :] < N) & k_ok[:, None], other=0.0)
        w = w.to(x.dtype)  # FP8 weights widen in registers
        if UPCAST:  # Triton's interpreter gets bf16 tl.dot wrong; the CPU tests multiply in fp32
            x = x.to(tl.float32)
            w = w.to(tl.float32)
        return tl.dot(x, w, acc)

    @triton.jit
    def gemv_splitk_kernel(x_ptr, w_ptr, scale_ptr, y_ptr, part_ptr, count_ptr, M, N, K,
                           stride_xm, stride_wn, stride_ym, SPLIT_K,
                           HAS_SCALE: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, MAX_SPLIT: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STEPS: tl.constexpr = 0):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        rm = tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        # BLOCK_K steps per K slice. STEPS > 0 fixes the count at compile time: the interpreter
        # (CPU tests) fails on run-time loop bounds with numpy >= 2.3.
        if STEPS > 0:
            for i in range(0, STEPS):
                acc = _step(acc, x_ptr, w_ptr, M, N, K, stride_xm, stride_wn, (pid_k * STEPS + i) * BLOCK_K,
                            rm, rn, rk, UPCAST)
        else:
            steps = tl.cdiv(K, SPLIT_K * BLOCK_K)
            for i in range(0, steps):
                acc = _step(acc, x_ptr, w_ptr, M, N, K, stride_xm, stride_wn, (pid_k * steps + i) * BLOCK_K,
                            rm, rn, rk, UPCAST)
        if HAS_SCALE:
            acc = acc * tl.load(scale_ptr + rn, mask=rn < N, other=0.0)[None, :]
        ok = (rm[:, None] < M) & (rn[None, :] < N)
        y_ptrs = y_ptr + rm[:, None] * stride_ym + rn[None, :]
        if SPLIT_K == 1:
            tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=ok)
        else:
            slab = BLOCK_M * N
            tl.store(part_ptr + pid_k * slab + rm[:, None] * N + rn[None, :], acc, mask=ok)
            arrived = tl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT_K - 1:
                total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
                for s in range(0, MAX_SPLIT):  # a compile-time bound (the interpreter needs one)
                    if s < SPLIT_K:  # from L2 (.cg): other SMs wrote these
                        total += tl.load(part_ptr + s * slab + rm[:, None] * N + rn[None, :], mask=ok, other=0.0,
                                         cache_modifier=".cg")
                tl.store(y_ptrs, total.to(y_ptr.dtype.element_ty), mask=ok)
                tl.atomic_xchg(count_ptr + pid_n, 0)



@functools.lru_cache(maxsize=None)
def _kernels() -> dict:
    """The autotuned launcher, built on first use."""
    if triton is None:
        raise RuntimeError("triton is not installed")

    def prune(configs, named_args, **kwargs):
        n, k = named_args["N"], named_args["K"]
        kept = [c for c in configs if fits(c.kwargs, n, k)]
        return kept or configs[:1]

    cfgs = [triton.Config({"BLOCK_N": c[0], "BLOCK_K": c[1], "SPLIT_K": c[2]}, num_warps=c[3], num_stages=c[4])
            for c in _CONFIGS]
    # short benchmarks: 12 configs x 10 shapes stay in seconds
    tuned = autotuned(gemv_splitk_kernel, cfgs, ["M", "N", "K", "HAS_SCALE"], prune, warmup_ms=5, rep_ms=20)
    return {"raw": gemv_splitk_kernel, "tuned": tuned}


_WORK: dict = {}


def _workspace(device: torch.device, n: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 partials for the largest split and one int32 counter per 16-wide column tile, per
    (device, N, BLOCK_M); counters start at 0 and every call leaves them at 0."""
    key = (str(device), n, block_m)
    if key not in _WORK:
        _WORK[key] = (torch.empty(MAX_SPLIT * block_m * n, device=device, dtype=torch.float32),
                      torch.zeros(-(-n // 16), device=device, dtype=torch.int32))
    return _WORK[key]


def gemv_splitk(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None,
                config: dict | None = None) -> torch.Tensor:
    """y = x @ (W * scale)ᵀ: x [M, K] bf16/fp16 (M <= 64), W [N, K] of x's dtype or float8_e4m3fn
    (then `scale` [N] fp32 is required). Autotuned per (M, N, K) unless `config` (keys of
    `autotune_configs()`) fixes one."""
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"need x [M,K] and W [N,K], got {tuple(x.shape)} and {tuple(w.shape)}")
    if x.dtype not in (torch.bfloat16, torch.float16):
        raise TypeError(f"x must be bfloat16 or float16, got {x.dtype}")
    fp8 = w.dtype == torch.float8_e4m3fn
    if not fp8 and w.dtype != x.dtype:
        raise TypeError(f"W must be {x.dtype} or float8_e4m3fn, got {w.dtype}")
    if fp8 and scale is None:
        raise ValueError("FP8 weights need their per-channel scale")
    M, K = x.shape
    N = w.shape[0]
    if M > MAX_M:
        raise ValueError(f"gemv_splitk is for M <= {MAX_M} rows, got {M}")
    check_runnable(x.device)
    x = x if x.stride(1) == 1 else x.contiguous()
    w = w if w.stride(1) == 1 else w.contiguous()
    kern = _kernels()
    block_m = max(16, triton.next_power_of_2(M))
    part, count = _workspace(x.device, N, block_m)
    y = torch.empty((M, N), device=x.device, dtype=x.dtype)
    sc = scale.float().contiguous() if scale is not None else y  # unused pointer when HAS_SCALE is False
    args = (x, w, sc, y, part, count, M, N, K, x.stride(0), w.stride(0), y.stride(0))
    consts = dict(HAS_SCALE=scale is not None, UPCAST=interpreting(), BLOCK_M=block_m, MAX_SPLIT=MAX_SPLIT)
    if interpreting() and config is None:  # nothing to tune on; the first config that fits
        config = next((c for c in autotune_configs() if fits(c, N, K)), autotune_configs()[0])
    grid = lambda META: (triton.cdiv(N, META["BLOCK_N"]), META["SPLIT_K"])  # noqa: E731
    if config is not None:
        launch = {f: config[f] for f in ("num_warps", "num_stages") if f in config}
        if interpreting():
            launch = {"STEPS": triton.cdiv(K, config["SPLIT_K"] * config["BLOCK_K"])}
        fixed = (triton.cdiv(N, config["BLOCK_N"]), config["SPLIT_K"])
        kern["raw"][fixed](*args, config["SPLIT_K"], **consts, BLOCK_N=config["BLOCK_N"], BLOCK_K=config["BLOCK_K"],
                          **launch)
    else:
        kern["tuned"][grid](*args, **consts)
    return y


def describe(cfg: dict | None) -> str:
    """A config in a few characters: BLOCK_N x BLOCK_K, K slices, warps, stages."""
    if not cfg:
        return "not reported"
    return (f"{cfg['BLOCK_N']}×{cfg['BLOCK_K']}, split-K {cfg['SPLIT_K']}, "
            f"{cfg.get('num_warps', 4)}w {cfg.get('num_stages', 4)}s")


def best_config() -> dict | None:
    """The autotuner's choice for the last shape it ran (None before any call)."""
    built = _kernels() if _kernels.cache_info().currsize else None  # never builds (or imports triton) here
    cfg = getattr(built["tuned"], "best_config", None) if built else None
    return None if cfg is None else {**cfg.kwargs, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}


def check(shapes: Iterable[tuple[int, int, int]], device: torch.device | str, seed: int = 0,
          weights: Iterable[str] = ("bfloat16", "float8_e4m3fn"), config: dict | None = None,
          act_dtype: torch.dtype = torch.bfloat16, rtol: float = 1e-2) -> pd.DataFrame:
    """One row per (M, N, K) and weight dtype: the kernel against float32 on fresh random
    inputs (the same rounded / quantized operands), rel_err and ok = rel_err < rtol; an
    exception is recorded in `error`, not raised."""
    from ..check import relative_error

    g = torch.Generator().manual_seed(seed)
    rows = []
    for M, N, K in shapes:
        for wname in weights:
            x = torch.randn(M, K, generator=g).to(act_dtype).to(device)
            w = (torch.randn(N, K, generator=g) / K ** 0.5).to(device)
            scale = None
            w = w.to(act_dtype) if wname != "float8_e4m3fn" else w
            if wname == "float8_e4m3fn":
                w, scale = quantize_fp8_rows(w)
            err, rel = None, float("nan")
            try:
                rel = relative_error(gemv_splitk(x, w, scale, config=config), reference(x, w, scale))
            except Exception as e:  # recorded, shown as failed
                err = f"{type(e).__name__}: {e}"
            rows.append({"M": M, "N": N, "K": K, "weights": wname, "rel_err": rel, "ok": bool(rel < rtol),
                         "error": err})
    return pd.DataFrame(rows)


def _scaled_mm_fn(x: torch.Tensor, w8: torch.Tensor, s: torch.Tensor):
    """cuBLASLt FP8 (activations quantized per tensor, weights per channel folded into one
    per-tensor scale), x padded to 16 rows since cuBLASLt wants dims that are multiples of 16."""
    xs = x.float().abs().amax().clamp(min=1e-12) / 448.0
    xp = torch.zeros(16 * -(-x.shape[0] // 16), x.shape[1], device=x.device)
    xp[: x.shape[0]] = x.float() / xs
    x8 = xp.to(torch.float8_e4m3fn)
    ws = s.max()
    w8t = (w8.float() * (s / ws)[:, None]).to(torch.float8_e4m3fn).t()  # [K, N], column-major
    return lambda: torch._scaled_mm(x8, w8t, scale_a=xs, scale_b=ws, out_dtype=torch.bfloat16)[: x.shape[0]]


def bench(shapes: dict[str, tuple[int, int, int]], device: torch.device | str, repeats: int, copy_gbps: float,
          seed: int = 0, log=progress) -> pd.DataFrame:
    """Per shape: bf16 cuBLAS (F.linear, what the model runs), cuBLASLt FP8 (torch._scaled_mm),
    the split-K kernel with bf16 and with FP8 weights. Each is checked against float32 on
    these operands (and the kernel on fresh inputs, `check`) before it is timed with
    `time_per_call`; a failure is a row with `error` set and no time. byte_floor_ms: the bytes
    that must move (weights, x, y) over `copy_gbps`."""
    from ..check import relative_error

    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for label, (M, N, K) in shapes.items():
        x = torch.randn(M, K, generator=g).to(device=device, dtype=torch.bfloat16)
        w32 = (torch.randn(N, K, generator=g) / K ** 0.5).to(device)
        w16 = w32.to(torch.bfloat16)
        w8, s = quantize_fp8_rows(w32)
        exact = reference(x, w32)
        variants = {"cuBLAS bf16": ("bfloat16", w16.nbytes), "cuBLASLt fp8": ("float8_e4m3fn", w8.nbytes),
                    "Triton split-K bf16": ("bfloat16", w16.nbytes),
                    "Triton split-K fp8": ("float8_e4m3fn", w8.nbytes + s.nbytes)}
        for impl, (wdt, wbytes) in variants.items():
            row = {"gemm": label, "M": M, "N": N, "K": K, "impl": impl, "weights": wdt}
            moved = wbytes + x.nbytes + M * N * 2
            row["byte_floor_ms"] = moved / (copy_gbps * 1e9) * 1e3
            try:
                t0 = time.perf_counter()
                fn = _call(impl, x, w16, w8, s)
                out = fn()  # autotunes the Triton kernel on these operands
                tune_s = time.perf_counter() - t0
                row["config"] = describe(best_config()) if impl.startswith("Triton") else "library heuristic"
                ref = exact if "fp8" not in impl else reference(x, w8, s)
                if impl == "cuBLASLt fp8":  # its activations are quantized too: gate against the unquantized product
                    ref = exact
                row["rel_err_vs_fp32"] = relative_error(out, ref)
                gate = 0.08 if impl == "cuBLASLt fp8" else 1e-2
                if not row["rel_err_vs_fp32"] < gate:
                    raise AssertionError(f"relative error {row['rel_err_vs_fp32']:.2e} against float32 (gate {gate})")
                if impl.startswith("Triton"):
                    fresh = check([(M, N, K)], device, seed=seed + 1, weights=(wdt,))
                    if not fresh.ok.all():
                        raise AssertionError(f"wrong on fresh inputs: {fresh.to_dict('records')}")
                n = copies_past_l2(wbytes, device)
                calls = [fn] + [_call(impl, x, w16.clone(), w8.clone(), s) for _ in range(n - 1)]
                t = time_per_call(calls, device, repeats)
                row.update(t.as_dict(), autotune_s=tune_s if impl.startswith("Triton") else 0.0,
                           achieved_gbps=moved / (t.median_ms * 1e-3) / 1e9)
                log(f"  {label} {impl}: {t.median_ms * 1e3:.2f} us (floor {row['byte_floor_ms'] * 1e3:.2f} us)")
            except Exception as e:  # recorded and shown as failed, never timed
                row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                log(f"  {label} {impl}: FAILED {row['error']}")
            rows.append(row)
    return pd.DataFrame(rows)


def _call(impl: str, x: torch.Tensor, w16: torch.Tensor, w8: torch.Tensor, s: torch.Tensor):
    """One benchmarked implementation on these operands, as a no-argument callable."""
    if impl == "cuBLAS bf16":
        return lambda: F.linear(x, w16)
    if impl == "cuBLASLt fp8":
        return _scaled_mm_fn(x, w8, s)
    if impl == "Triton split-K bf16":
        return lambda: gemv_splitk(x, w16)
    return lambda: gemv_splitk(x, w8, s)


def ratio(table: pd.DataFrame, impl: str, base: str = "cuBLAS bf16") -> float | None:
    """Summed time of `impl` over summed time of `base` across the shapes both timed (> 1: slower);
    None when either failed on any shape."""
    if table is None or table.empty or "median_ms" not in table:
        return None
    t = table.pivot_table(index="gemm", columns="impl", values="median_ms")
    if impl not in t or base not in t or t[[impl, base]].isna().any().any() or len(t) < table.gemm.nunique():
        return None
    return float(t[impl].sum() / t[base].sum())


__all__ = ["gemv_splitk", "describe", "autotune_configs", "best_config", "quantize_fp8_rows", "reference", "check", "bench",
           "ratio", "fits", "programs", "MAX_M"]
