"""Split-KV attention (flash-decoding) for a few queries over a long single-head KV cache.

In a denoise step the expert's 10 action tokens x 8 query heads (folded into 80 query rows, as
`model.attend` does for one K/V head) attend to the ~722-token cache of the prefix plus the
actions, head_dim 256. One program per block of query rows leaves most SMs idle: 80 rows are
a handful of programs, each walking all 722 keys. Here phase 1 also splits the cache into
slices of KV_PER_SPLIT keys, grid (query blocks x slices); each program runs an online softmax
over its slice (in base 2: scores are pre-multiplied by log2(e) / sqrt(D)) and writes its
normalised partial output and log-sum-exp. Phase 2 (`combine`) weights the slices by
exp2(lse_s - max lse) and writes the output: the usual flash-decoding reduction, two launches.

No mask: pi0.5's action tokens see every prefix token and each other (bidirectional).
"""
from __future__ import annotations

import math
import time
from typing import Iterable

import pandas as pd
import torch
import torch.nn.functional as F

from . import check_runnable, interpreting, time_on_copies
from ..log import progress

# BLOCK_Q, BLOCK_KV, KV_PER_SPLIT, num_warps, num_stages; every entry is one compile.
_CONFIGS: tuple[tuple[int, int, int, int, int], ...] = (
    (16, 32, 32, 4, 2), (16, 32, 64, 4, 2), (16, 64, 64, 4, 2), (16, 64, 128, 4, 2),
    (32, 64, 64, 4, 2), (16, 64, 256, 4, 2),
)
_FIELDS = ("BLOCK_Q", "BLOCK_KV", "KV_PER_SPLIT", "num_warps", "num_stages")


def configs() -> list[dict]:
    return [dict(zip(_FIELDS, c)) for c in _CONFIGS]


def describe(cfg: dict | None) -> str:
    """A config in a few characters: query rows x keys per block, keys per slice, warps, stages."""
    if not cfg:
        return "library"
    return (f"{cfg['BLOCK_Q']}×{cfg['BLOCK_KV']}, {cfg['KV_PER_SPLIT']} keys/slice, "
            f"{cfg.get('num_warps', 4)}w {cfg.get('num_stages', 2)}s")


def splits(cfg: dict, s: int) -> int:
    return -(-s // cfg["KV_PER_SPLIT"])


def programs(cfg: dict, rows: int, s: int) -> int:
    return -(-rows // cfg["BLOCK_Q"]) * splits(cfg, s)


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """float32 softmax(q kᵀ / sqrt(D)) v: q [..., D], k, v [S, D]; TF32 off."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        qf = q.reshape(-1, q.shape[-1]).float()
        p = torch.softmax(qf @ k.float().t() / math.sqrt(q.shape[-1]), dim=-1)
        return (p @ v.float()).view(q.shape)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


try:  # Triton is optional: without it this module imports and `decode_attention` raises
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None

if triton is not None:
    @triton.jit
    def _kv_block(acc, m_i, l_i, q, k_ptr, v_ptr, S, stride_ks, stride_vs, start, rd, qk_scale,
                  BLOCK_KV: tl.constexpr, UPCAST: tl.constexpr):
        """One BLOCK_KV block of the online softmax: rescale acc, l by exp2(m_old - m_new)."""
        offs = start + tl.arange(0, BLOCK_KV)
        ok = offs < S
        k = tl.load(k_ptr + offs[:, None] * stride_ks + rd[None, :], mask=ok[:, None], other=0.0)
        v = tl.load(v_ptr + offs[:, None] * stride_vs + rd[None, :], mask=ok[:, None], other=0.0)
        if UPCAST:  # Triton's interpreter gets bf16 tl.dot wrong; the CPU tests multiply in fp32
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        s = tl.where(ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        return acc, m_new, l_i

    @triton.jit(do_not_specialize=["S", "S2"])  # a length of 1 would become a constant in one branch only
    def split_kv_kernel(q_ptr, k_ptr, v_ptr, k2_ptr, v2_ptr, part_ptr, lse_ptr, R, S, S2, SPLITS1, stride_qr,
                        stride_ks, stride_vs, stride_k2s, stride_v2s, qk_scale, D: tl.constexpr,
                        BLOCK_Q: tl.constexpr, BLOCK_KV: tl.constexpr, KV_PER_SPLIT: tl.constexpr,
                        UPCAST: tl.constexpr):
        """Slices 0..SPLITS1-1 cover the first K/V source (S keys), the rest the second (S2 keys):
        the expert's prefix cache and its own 10 keys are attended without concatenating them."""
        pid_q = tl.program_id(0)
        pid_s = tl.program_id(1)
        rq = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
        rd = tl.arange(0, D)
        q = tl.load(q_ptr + rq[:, None] * stride_qr + rd[None, :], mask=rq[:, None] < R, other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
        m_i = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_Q, D), dtype=tl.float32)
        if pid_s < SPLITS1:
            kp, vp, n, sk, sv, lo = k_ptr, v_ptr, S, stride_ks, stride_vs, pid_s * KV_PER_SPLIT
        else:
            kp, vp, n, sk, sv, lo = k2_ptr, v2_ptr, S2, stride_k2s, stride_v2s, (pid_s - SPLITS1) * KV_PER_SPLIT
        # lo < n for every launched slice, so its first block has a key
        for i in range(0, KV_PER_SPLIT // BLOCK_KV):
            acc, m_i, l_i = _kv_block(acc, m_i, l_i, q, kp, vp, n, sk, sv, lo + i * BLOCK_KV,
                                      rd, qk_scale, BLOCK_KV, UPCAST)
        rows = pid_s * R + rq
        tl.store(part_ptr + rows[:, None] * D + rd[None, :], acc / l_i[:, None], mask=rq[:, None] < R)
        tl.store(lse_ptr + rows, m_i + tl.log2(l_i), mask=rq < R)

    @triton.jit
    def split_kv_combine_kernel(part_ptr, lse_ptr, o_ptr, R, NUM_SPLITS, stride_or, D: tl.constexpr,
                                BLOCK_R: tl.constexpr, MAX_SPLITS: tl.constexpr):
        pid = tl.program_id(0)
        rr = pid * BLOCK_R + tl.arange(0, BLOCK_R)
        rs = tl.arange(0, MAX_SPLITS)
        rd = tl.arange(0, D)
        live = (rs[:, None] < NUM_SPLITS) & (rr[None, :] < R)
        lse = tl.load(lse_ptr + rs[:, None] * R + rr[None, :], mask=live, other=float("-inf"))
        m = tl.max(lse, 0)
        total = tl.sum(tl.exp2(lse - m[None, :]), 0)
        acc = tl.zeros((BLOCK_R, D), dtype=tl.float32)
        for s in range(0, MAX_SPLITS):  # a compile-time bound (the interpreter needs one)
            if s < NUM_SPLITS:
                ok = rr < R
                w = tl.exp2(tl.load(lse_ptr + s * R + rr, mask=ok, other=float("-inf")) - m)
                part = tl.load(part_ptr + (s * R + rr)[:, None] * D + rd[None, :], mask=ok[:, None], other=0.0)
                acc += tl.where(ok[:, None], w[:, None] * part, 0.0)
        out = acc / total[:, None]
        tl.store(o_ptr + rr[:, None] * stride_or + rd[None, :], out.to(o_ptr.dtype.element_ty), mask=rr[:, None] < R)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: dict | None = None,
                     extra_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(D)) v for q [..., D] (all query rows, heads folded in) against one
    K/V head k, v [S, D] -- and, with `extra_kv` (k2, v2 [S2, D]), against the keys [k; k2]
    without building that concatenation. D a power of two >= 16. Returns q's shape and dtype."""
    k2, v2 = extra_kv if extra_kv is not None else (k, v)
    for kk, vv in ((k, v), (k2, v2)):
        if kk.dim() != 2 or vv.shape != kk.shape or q.shape[-1] != kk.shape[-1]:
            raise ValueError(f"need q [..., D] and k, v [S, D], got {tuple(q.shape)}, {tuple(kk.shape)}, {tuple(vv.shape)}")
    if len({q.dtype, k.dtype, v.dtype, k2.dtype, v2.dtype}) != 1 or q.dtype not in (torch.bfloat16, torch.float16):
        raise TypeError(f"q, k, v must share dtype bfloat16 or float16, got {q.dtype}, {k.dtype}, {v.dtype}")
    D = q.shape[-1]
    if D < 16 or D & (D - 1):
        raise ValueError(f"head_dim must be a power of two >= 16, got {D}")
    check_runnable(q.device)
    cfg = config or configs()[2]
    qr, k, v, k2, v2 = _rows(q.reshape(-1, D)), _rows(k), _rows(v), _rows(k2), _rows(v2)
    R, S = qr.shape[0], k.shape[0]
    S2 = k2.shape[0] if extra_kv is not None else 0
    splits1 = splits(cfg, S)
    n_split = splits1 + (splits(cfg, S2) if S2 else 0)
    part = torch.empty((n_split, R, D), device=q.device, dtype=torch.float32)
    lse = torch.empty((n_split, R), device=q.device, dtype=torch.float32)
    out = torch.empty((R, D), device=q.device, dtype=q.dtype)
    launch = {} if interpreting() else {"num_warps": cfg.get("num_warps", 4), "num_stages": cfg.get("num_stages", 2)}
    qk_scale = 1.4426950408889634 / math.sqrt(D)  # log2(e) / sqrt(D): exp2 of the scaled scores
    split_kv_kernel[(triton.cdiv(R, cfg["BLOCK_Q"]), n_split)](
        qr, k, v, k2, v2, part, lse, R, S, S2, splits1, qr.stride(0), k.stride(0), v.stride(0), k2.stride(0),
        v2.stride(0), qk_scale, D=D, BLOCK_Q=cfg["BLOCK_Q"], BLOCK_KV=cfg["BLOCK_KV"],
        KV_PER_SPLIT=cfg["KV_PER_SPLIT"], UPCAST=interpreting(), **launch)
    split_kv_combine_kernel[(triton.cdiv(R, 16),)](part, lse, out, R, n_split, out.stride(0), D=D, BLOCK_R=16,
                                                   MAX_SPLITS=triton.next_power_of_2(n_split), **({} if interpreting() else {"num_warps": 4}))
    return out.view(q.shape)


# `decode_attention` as an opaque op: torch.compile leaves the kernel alone (its fake is an empty
# tensor like q), and a CUDA graph captures its two launches.
@torch.library.custom_op("pi05perf::split_kv_attention", mutates_args=())
def split_kv_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k2: torch.Tensor,
                       v2: torch.Tensor) -> torch.Tensor:
    """q [R, D] against the keys [k; k2] and values [v; v2] (each [S, D], [S2, D])."""
    return decode_attention(q, k, v, extra_kv=(k2, v2))


@split_kv_attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k2: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(q)


def attend_split_kv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    prefix_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """`model.attend_joint`'s contract (q [B, H, T, D] against [prefix K/V; k, v], each
    [B, Hkv, S, D]) through the split-KV kernel where it applies -- batch 1, one K/V head and a
    prefix cache (the expert's denoise step) -- and `model.attend_joint` otherwise. The prefix
    cache and the step's own keys are two sources of slices: nothing is concatenated. Set as
    `Attention.attend` on the expert's layers."""
    from ..model import attend_joint

    B, H, T, D = q.shape
    if B != 1 or k.shape[1] != 1 or prefix_kv is None:
        return attend_joint(q, k, v, prefix_kv)
    pk, pv = prefix_kv
    return split_kv_attention(q.reshape(H * T, D), pk[0, 0], pv[0, 0], k[0, 0], v[0, 0]).view(B, H, T, D)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The model's path (`model.attend` with one K/V head): the library's fused attention."""
    D = q.shape[-1]
    return F.scaled_dot_product_attention(q.reshape(1, 1, -1, D), k.view(1, 1, -1, D), v.view(1, 1, -1, D)).view(q.shape)


def random_inputs(rows: int, keys: int, head_dim: int, device, dtype=torch.bfloat16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, head_dim, generator=g) for n in (rows, keys, keys))
    return q.to(device=device, dtype=dtype), k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)


def check(cases: Iterable[tuple[int, int, int]], device, cfgs: Iterable[dict] | None = None, seed: int = 0,
          rtol: float = 1e-2) -> pd.DataFrame:
    """Per (rows, keys, head_dim) and config: the kernel against float32 on fresh random inputs;
    an exception is recorded in `error`, not raised."""
    from ..check import relative_error

    rows = []
    for i, (R, S, D) in enumerate(cases):
        q, k, v = random_inputs(R, S, D, device, seed=seed + i)
        ref = reference(q, k, v)
        for cfg in (cfgs or configs()[:1]):
            err, rel = None, float("nan")
            try:
                rel = relative_error(decode_attention(q, k, v, cfg), ref)
            except Exception as e:
                err = f"{type(e).__name__}: {str(e)[:300]}"
            rows.append({"rows": R, "keys": S, "head_dim": D, "config": describe(cfg), "rel_err": rel,
                         "ok": bool(rel < rtol), "error": err})
    return pd.DataFrame(rows)


def bench(rows: int, keys: int, head_dim: int, device, repeats: int, copy_gbps: float, seed: int = 0,
          log=progress) -> pd.DataFrame:
    """SDPA (the model's path) and the split-KV kernel in each of `configs()`: each checked
    against float32 on these inputs and on fresh ones, then timed with `time_on_copies` over
    copies of the KV cache (not served from L2). A failure is a row with `error` and no time.
    byte_floor_ms: q, k, v and the output once over `copy_gbps`."""
    from ..check import relative_error

    device = torch.device(device)
    q, k, v = random_inputs(rows, keys, head_dim, device, seed=seed)
    ref = reference(q, k, v)
    moved = 2 * q.nbytes + k.nbytes + v.nbytes
    out = []
    for impl, cfg in [("SDPA", None)] + [("Triton split-KV", c) for c in configs()]:
        row = {"impl": impl, "config": describe(cfg), "programs_count": programs(cfg, rows, keys) if cfg else None,
               "byte_floor_ms": moved / (copy_gbps * 1e9) * 1e3}
        fn = sdpa if cfg is None else (lambda q, k, v, cfg=cfg: decode_attention(q, k, v, cfg))
        try:
            t0 = time.perf_counter()
            row["rel_err_vs_fp32"] = relative_error(fn(q, k, v), ref)
            row["compile_s"] = time.perf_counter() - t0
            if not row["rel_err_vs_fp32"] < 1e-2:
                raise AssertionError(f"relative error {row['rel_err_vs_fp32']:.2e} against float32")
            if cfg is not None:
                fresh = check([(rows, keys, head_dim)], device, [cfg], seed=seed + 1)
                if not fresh.ok.all():
                    raise AssertionError(f"wrong on fresh inputs: {fresh.to_dict('records')}")
            t = time_on_copies(lambda k, v, fn=fn: fn(q, k, v), (k, v), device, repeats)
            row.update(t.as_dict(), achieved_gbps=moved / (t.median_ms * 1e-3) / 1e9)
            log(f"  attention {impl} {row['config']}: {t.median_ms * 1e3:.2f} us (floor {row['byte_floor_ms'] * 1e3:.2f} us)")
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            log(f"  attention {impl} {row['config']}: FAILED {row['error']}")
        out.append(row)
    return pd.DataFrame(out)


def best_vs_sdpa(table: pd.DataFrame) -> float | None:
    """Fastest timed split-KV config over SDPA's time (> 1: slower); None if either is missing."""
    if table is None or table.empty or "median_ms" not in table:
        return None
    sd = table[table.impl == "SDPA"].median_ms.dropna()
    tr = table[table.impl != "SDPA"].median_ms.dropna()
    return None if sd.empty or tr.empty else float(tr.min() / sd.iloc[0])


__all__ = ["decode_attention", "sdpa", "reference", "configs", "describe", "check", "bench", "best_vs_sdpa", "splits",
           "programs",
           "random_inputs"]
