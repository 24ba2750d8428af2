"""Chapter 4's FP8 prefill measurements in words: the fastest FP8 variants picked against the
accuracy target, what they show beside bf16, its floor and chapter 3, and the seed's FP8 claims
judged from them (the side-by-side rows and the verdict text).

Every function reads the rows of `quantized_prefill.quantized_prefill_variants` (and, for the
memory-bound claim, one row of `precision_bench.memory_bound_fp8`); figures are never kept here.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from . import flops
from .claims import fp8_memory_bound_status
from .config import TransformerConfig
from .fp8_paths import fp8_path_words, fp8_tried, scale_split_words
from .reference import quoted
from .report import cos, num, verdict
from .timing import iqr_overlap

QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")


# ----------------------------------------------------------------------------- the fastest variants
def fastest_fp8(var: pd.DataFrame, coverage: str, target_cos: float) -> pd.Series | None:
    """Fastest timed FP8 variant on `coverage` meeting the accuracy target; else the fastest timed one."""
    c = var[var.scheme.str.startswith("fp8") & (var.coverage == coverage) & var.median_ms.notna()]
    if c.empty:
        return None
    good = c[(c.vs_base_hidden_cos >= target_cos) & (c.vs_base_kv_cos >= target_cos)]
    return (good if not good.empty else c).sort_values("median_ms").iloc[0]


def first_fp8(var: pd.DataFrame, coverage: str) -> pd.Series | None:
    """Accuracy row of the first FP8 variant on `coverage` (also where nothing could be timed)."""
    c = var[var.scheme.str.startswith("fp8") & (var.coverage == coverage)]
    return None if c.empty else c.iloc[0]


def prefill_text(var: pd.DataFrame, base: pd.Series | None, mlp_best: pd.Series | None, full_best: pd.Series | None,
                 full_acc: pd.Series | None, *, dtype: torch.dtype, scope: str, target_ratio: float, target_cos: float,
                 fp8_floor_ms: float | None, ch03_best: float | None) -> str:
    """The measured FP8 prefill in words: the fastest full-coverage variant against `base` (the
    unquantized model, same run) and the target, what was tried and not, against this device's
    FP8 floor and chapter 3's best bf16 prefill, MLP-only against full coverage (noise-aware), and
    the eager variant; only the accuracy of `full_acc` where nothing could be timed. The variant rows
    are rows of `var` (`fastest_fp8`, `first_fp8`), found there by their index label."""
    lines = []
    if full_best is not None and base is not None:
        ratio = full_best.median_ms / base.median_ms
        cos_ok = full_best.vs_base_hidden_cos >= target_cos and full_best.vs_base_kv_cos >= target_cos
        met = ratio <= target_ratio and cos_ok
        lines.append(f"The fastest full-coverage FP8 variant, **{full_best.variant}**, runs the prefill in "
                     f"**{full_best.median_ms:.2f} ms** against {base.median_ms:.2f} ms for the unquantized model "
                     f"({str(dtype).removeprefix('torch.')}, {'compiled the same way' if base.scope != 'eager' else 'eager'}) "
                     f"on the same run: **{ratio:.2f}×** the bf16 time ({base.median_ms / full_best.median_ms:.2f}× faster), "
                     f"cosine to bf16 {full_best.vs_base_hidden_cos:.5f} (final hidden state) and "
                     f"{full_best.vs_base_kv_cos:.5f} (KV cache).")
        lines.append(f"**Target** (≤ {target_ratio}× the bf16 time with cos ≥ {target_cos}): "
                     f"**{'met' if met else 'not met'}** on this run"
                     + ("" if cos_ok else f" (accuracy short of {target_cos})") + ".")
        tried, untried = fp8_tried(var)
        lines.append("Tried on this run: " + "; ".join(tried) + "."
                     + (f" The fastest FP8 prefill is {full_best.median_ms / fp8_floor_ms:.2f}× this device's FP8 floor "
                        f"({fp8_floor_ms:.2f} ms)." if fp8_floor_ms == fp8_floor_ms and fp8_floor_ms else "")
                     + ("" if met else " Not tried here: " + "; ".join(untried) + "."))
        if ch03_best is not None:
            lines.append(f"Against chapter 3's best bf16 prefill on this device ({ch03_best:.2f} ms, committed results, "
                         f"whole prefill compiled) the ratio is {full_best.median_ms / ch03_best:.2f}×: target "
                         f"{'met' if full_best.median_ms <= target_ratio * ch03_best and cos_ok else 'not met'} by that yardstick.")
        if mlp_best is not None:
            gain = mlp_best.median_ms / full_best.median_ms
            noise = iqr_overlap(var, mlp_best.name, full_best.name)
            lines.append(f"FP8 on the MLP only: {mlp_best.median_ms:.2f} ms ({mlp_best.variant}); adding QKV and O makes "
                         f"the prefill {gain:.3f}× as fast{' — within the noise' if noise else ''}.")
        eager = var[(var.scope == "eager") & var.scheme.str.startswith("fp8") & var.median_ms.notna()]
        if not eager.empty and scope != "eager":
            e = eager.iloc[0]
            lines.append(f"Without compiling, {e.variant} takes {e.median_ms:.2f} ms: the dynamic activation quantization "
                         f"as separate eager kernels costs more than FP8 saves.")
    elif full_acc is not None:
        lines.append(f"FP8 could not be timed here; accuracy of {full_acc.variant} (simulated): cosine to the unquantized "
                     f"model {full_acc.vs_base_hidden_cos:.5f} (final hidden state), {full_acc.vs_base_kv_cos:.5f} (KV cache).")
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------- the memory-bound test
def realised_share(measured: float, predicted: float) -> float:
    """Share of a predicted speed-up realised: (measured - 1) / (predicted - 1); negative where the
    measured path is slower than its baseline, NaN where nothing was predicted (predicted <= 1)."""
    return (measured - 1) / (predicted - 1) if predicted > 1 else float("nan")


def memory_bound_text(mb: pd.DataFrame) -> str:
    """Each timed row of `precision_bench.memory_bound_fp8` in words: FP8 against bf16, the share
    of the bytes' predicted gain realised (none where FP8 is slower), and how far bf16 itself is
    from its floor (a path far above its floor is not set by its bytes)."""
    out = []
    for r in mb[mb.measured_speedup_ratio.notna()].itertuples():
        m, p = r.measured_speedup_ratio, r.predicted_speedup_ratio
        share = realised_share(m, p)
        gain = (f"FP8 is slower: it takes {1 / m:.2f}× the bf16 time where the bytes predict {p:.2f}× faster, so none "
                "of the predicted gain is realised" if share <= 0 else
                f"FP8 runs {m:.2f}× as fast as bf16, the bytes predict {p:.2f}× ({share:.0%} of the predicted gain "
                "realised)" if share == share else f"FP8 runs {m:.2f}× as fast as bf16 (no gain predicted)")
        over = r.bf16_ms / r.bf16_floor_ms if getattr(r, "bf16_floor_ms", None) else float("nan")
        floor = ("" if over != over else f" bf16 on this path takes {over:.1f}× its floor ({r.bf16_floor_ms:.3f} ms)"
                 + (": far from bandwidth-limited as run, so its bytes do not set its time." if over >= 2 else "."))
        out.append(f"**{r.case}**: {gain}.{floor}")
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- the FP8 GEMM alone (chapters 5 and 6)
FP8_KERNEL = "fp8 _scaled_mm kernel"  # chapter 5's bare FP8 GEMM (`lowbit_bench.lowbit_sweep`)


def memory_bound_tokens(mb: pd.DataFrame | None) -> int | None:
    """The most prefill tokens chapter 4's memory-bound test (its `memory_bound` table) finds
    memory-bound on its device; None without such a row."""
    if mb is None or "bound" not in mb or "case" not in mb:
        return None
    rows = mb[(mb.bound == "memory") & mb.case.str.startswith("prefill")]
    return int(rows.tokens.max()) if not rows.empty else None


def committed_kernel_sweep(slug: str) -> pd.DataFrame | None:
    """Chapter 5's one-projection sweep (`lowbit_bench.lowbit_sweep` rows, table `sweep`) from the
    committed run of this device `slug`; None where it has none (no other device's run is used)."""
    from .results import committed_docs, run_table

    sweep = run_table(committed_docs("ch05_int4_fp4").get(slug), "sweep")
    return sweep if sweep is not None and not sweep.empty else None


def fp8_kernel_words(sweep: pd.DataFrame | None, max_tokens: int | None, gemv_ratio: float | None = None,
                     variant: str | None = None, source: str = "this run's results") -> str | None:
    """Chapter 5's bare FP8 GEMM (rowwise `torch._scaled_mm` on pre-quantized operands, default
    accumulation: no scale computation) against bf16 `F.linear` at the token counts <= `max_tokens`
    (memory-bound here), per GEMM and summed over the MLP (`lowbit_bench.sweep_ratios`), and chapter
    6's tensorwise cuBLASLt FP8 GEMM over cuBLAS bf16 on the action expert's shapes (`gemv_ratio`);
    `variant` is chapter 4's FP8 path (its accumulation is named where it differs), `source` where the
    figures come from. None without the sweep."""
    from .lowbit_bench import sweep_ratios
    from .quantized_prefill import parse_variant

    if sweep is None or max_tokens is None:
        return None
    s = sweep[sweep.impl.isin([FP8_KERNEL, "bf16"]) & (sweep.tokens <= max_tokens) & sweep.median_ms.notna()]
    both = s.groupby(["gemm", "tokens"]).impl.nunique().eq(2)
    s = s[[both.get((g, t), False) for g, t in zip(s.gemm, s.tokens)]]
    if s.empty:
        return None
    toks = sorted(int(t) for t in s.tokens.unique())
    span = f"{toks[0]}–{toks[-1]} tokens" if len(toks) > 1 else f"{toks[0]} tokens"
    per = []
    for gemm, g in s.groupby("gemm", sort=False):
        f8, b16 = g[g.impl == FP8_KERNEL].median_ms.median(), g[g.impl == "bf16"].median_ms.median()
        gbps = g[g.impl == FP8_KERNEL].weight_gbps.median() if "weight_gbps" in g else float("nan")
        per.append(f"{gemm} {f8 * 1e3:.1f} µs against bf16's {b16 * 1e3:.1f} µs ({f8 / b16:.2f}×"
                   + (f", {gbps:,.0f} GB/s of FP8 weights" if f8 > b16 and gbps == gbps else "") + ")")
    mlp = sweep_ratios(s)
    mlp = mlp[mlp.impl == FP8_KERNEL].vs_bf16_ratio.median()
    fast = variant is not None and parse_variant(variant).fast_accum
    realised = "does not realise" if mlp > 0.75 else "realises all of" if mlp <= 0.5 else "realises only part of"
    text = ("Chapter 5 times an FP8 GEMM of the same family alone (rowwise `torch._scaled_mm` on operands quantized "
            "beforehand, so no scale computation, with default accumulation"
            + (", where chapter 4's path uses fast accumulation" if fast else "")
            + f"; L2 flushed; {source}): at {span} (medians) " + "; ".join(per)
            + f"; the MLP's GEMMs together {mlp:.2f}× bf16's time. The FP8 GEMM itself {realised} the halved bytes at "
            "these sizes, with no quantization in the way")
    if gemv_ratio is not None and gemv_ratio == gemv_ratio:
        text += (f"; chapter 6's cuBLASLt FP8 GEMM with one scale per tensor (rows padded to 16) takes {gemv_ratio:.2f}× "
                 "cuBLAS bf16's time on the action expert's projections at 10 rows")
    return text + "."


def committed_kernel_evidence(slug: str, max_tokens: int | None, variant: str | None = None) -> str | None:
    """`fp8_kernel_words` from this device's committed chapters 5 and 6, naming the commit they ran
    at where it is not the one this tree runs at (None without chapter 5's sweep)."""
    from .results import committed_docs, git_commit

    docs = {c: committed_docs(c).get(slug) for c in ("ch05_int4_fp4", "ch06_triton")}
    here = (git_commit() or "")[:7]
    at = {c: ((d or {}).get("provenance", {}).get("git_commit") or "")[:7] for c, d in docs.items()}
    older = [f"chapter {c[2:4].lstrip('0')} at commit {at[c] or 'unknown'}" for c, d in docs.items()
             if d is not None and (not here or at[c] != here)]
    source = (f"committed results of this device from an earlier run: {', '.join(older)}, not this run" if older else
              "committed results of this device at this commit")
    gemv = ((docs["ch06_triton"] or {}).get("headline") or {}).get("gemv_cublaslt_fp8_vs_cublas_ratio")
    return fp8_kernel_words(committed_kernel_sweep(slug), max_tokens, gemv, variant, source)


# ----------------------------------------------------------------------------- the seed's claims
def full_coverage_bound(cfg: TransformerConfig, tokens: int) -> tuple[float, float]:
    """(share of a layer's FLOPs in the Q, K, V and O projections, the most adding them to an
    MLP-only FP8 prefill can gain): making that share twice as fast (the FP8 / bf16 peak ratio)
    bounds the gain at 1 / (1 - share / 2)."""
    attn_share = sum(o.flops for o in flops.layer_ops(cfg, tokens)
                     if o.name in QKVO) / flops.stack_cost(cfg.with_depth(1), tokens)["flops"]
    return attn_share, 1 / (1 - attn_share / 2)


def claims_rows(tokens: int, gain_here: float | None, bound_full: float, speed_here: float | None,
                fp8_floor_speedup: float | None, full_acc: pd.Series | None) -> list[dict[str, Any]]:
    """The seed's and NVIDIA's FP8 figures on Thor (quoted) beside this run's, for `report.side_by_side`."""
    seed_full = quoted("trt_full_coverage_speedup_ratio")
    nv_bf16, nv_fp8 = quoted("nvidia_thor_pytorch_bf16_compile_ms"), quoted("nvidia_thor_trt_fp8_ms")
    return [
        {"quantity": "full coverage (QKV+O+MLP) over MLP-only FP8", "unit": "× faster", "thor_quoted": seed_full,
         "thor_source": "seed (TensorRT FP8, debug-08)", "measured": gain_here, "floor": bound_full},
        {"quantity": f"FP8 full coverage over bf16, {tokens}-token prefill", "unit": "× faster",
         "thor_quoted": quoted("fp8_thor_speedup_ratio"), "thor_source": "seed (claims no speedup: scales ignored, runs FP16)",
         "measured": speed_here, "floor": fp8_floor_speedup},
        {"quantity": "whole pi0.5 inference, TensorRT FP8 vs PyTorch bf16 + compile", "unit": "× faster",
         "thor_quoted": nv_bf16 / nv_fp8, "thor_source": f"NVIDIA Jetson AI Lab ({nv_bf16:.0f} ms → {nv_fp8:.0f} ms)"},
        # two rows, not one: NVIDIA's is the trained policy's actions, this run's a random-weight hidden state
        {"quantity": "FP8 cosine to PyTorch, actions of the trained policy", "unit": "cos",
         "thor_quoted": f"~{num(quoted('nvidia_thor_fp8_cos'), 4)}", "thor_source": "NVIDIA Jetson AI Lab (approximate)"},
        {"quantity": "FP8 cosine to bf16, final hidden state, random weights", "unit": "cos",
         "measured": cos(full_acc.vs_base_hidden_cos) if full_acc is not None else None},
    ]


def claims_text(prefix_tokens: int, attn_share: float, bound_full: float, gain_here: float | None,
                speed_here: float | None, mb_head: pd.Series | None, memory_bound_variant: str, mb_scope: str,
                thor_fp8_floor_speedup: float, scale_split: dict | None = None, kernels: str | None = None) -> str:
    """The verdict on the seed's three FP8 claims (full coverage adds little; FP8 cannot speed up
    a memory-bound prefill; on Thor FP8 runs as FP16), from the measured gains, the first row of
    the memory-bound test (`mb_head`, None where it could not be timed) and Thor's floors.
    `scale_split` is `fp8_paths.dynamic_scale_split` (chapter 7's kernel kinds timed apart), or None;
    `kernels` is `fp8_kernel_words` (chapter 5's bare FP8 GEMM against bf16), or None."""
    seed_full = quoted("trt_full_coverage_speedup_ratio")
    nv_bf16, nv_fp8 = quoted("nvidia_thor_pytorch_bf16_compile_ms"), quoted("nvidia_thor_trt_fp8_ms")
    if mb_head is not None:
        mb_status = fp8_memory_bound_status(float(mb_head.measured_speedup_ratio))
        mb_text = (f"At {int(mb_head.tokens)} tokens ({mb_head.bound}-bound here by the floors) FP8 runs the prefill "
                   f"{mb_head.measured_speedup_ratio:.2f}× as fast as "
                   f"bf16 against {mb_head.predicted_speedup_ratio:.2f}× predicted by the bytes"
                   + ("." if mb_head.measured_speedup_ratio > 1.1 else
                      f": this FP8 path ({fp8_path_words(memory_bound_variant, mb_scope)}) does not realise the halved "
                      "bytes. Its per-call activation quantization (an amax, a division and a cast before every GEMM, in "
                      f"{'eager' if mb_scope == 'eager' else 'compiled'} kernels outside the GEMM) is not timed apart "
                      "from its GEMMs in this test"
                      + (f"; chapter 7's kernel profile times them apart in the whole call ({scale_split_words(scale_split)})"
                         if scale_split is not None else "")
                      + (". " + kernels.removesuffix(".") if kernels else "")
                      + ". This is a result about this implementation, not about bandwidth; static activation scales "
                      "(chapter 7) remove the amax."))
        over = mb_head.bf16_ms / mb_head.bf16_floor_ms if "bf16_floor_ms" in mb_head and mb_head.bf16_floor_ms else None
        if over is not None and over == over:
            mb_text += f" bf16 itself takes {over:.2f}× its floor there: more than the bytes sets the time of both paths."
    else:
        mb_status, mb_text = "not testable here", "The memory-bound test could not be timed on this device."
    # held when the measured gain stays within the FLOP-share bound (plus the timing spread): a small gain, as the seed saw
    full_status = "not testable here" if gain_here is None else ("held" if gain_here <= bound_full * 1.05 else "not held")
    return f"""**"Full coverage only adds {seed_full:.2f}×" — {verdict(full_status)}.** The Q, K, V and O projections are
{100 * attn_share:.1f}% of a layer's FLOPs at {prefix_tokens} tokens, so even making them twice as fast (the FP8 / bf16 peak ratio) can gain at most
{bound_full:.3f}×; {'this device measured ' + f'{gain_here:.3f}×' if gain_here is not None else 'nothing could be timed here'}.
{"The seed's small gain is what the FLOP count predicts, not evidence about memory." if seed_full <= bound_full * 1.05 else "The seed's gain exceeds what the FLOP count allows."}

**"FP8 cannot speed up a memory-bound prefill" — {verdict(mb_status)}.** Judged where this device is memory-bound
(the table above), not at {prefix_tokens} tokens, where it is compute-bound
({f'there FP8 makes the compiled prefill {speed_here:.2f}× faster, a compute-bound result' if speed_here is not None else 'nothing timed there'}).
{mb_text}
*Analytic (Thor's spec, no measurement):* FP8 halves the weight bytes, so even a purely memory-bound Thor prefill has a
floor {thor_fp8_floor_speedup:.2f}× lower in FP8. On Thor, NVIDIA's own TensorRT FP8 build of pi0.5 (Jetson AI Lab
tutorial) runs the whole inference {nv_bf16 / nv_fp8:.1f}× faster than PyTorch bf16 (quoted, whole pipeline).

**"On Thor FP8 runs, but its scales are ignored: it is really FP16" — {verdict('not testable here')}** (no Thor, no
TensorRT here). It is consistent with the open TensorRT issue #4590 (FP8/FP4 builder flags silently building
higher-precision engines on Thor, TensorRT {quoted('thor_tensorrt_version_jetpack70')}) — a toolchain fault, which is what the seed measured, not a limit of FP8."""
