"""Sweeps of the whole-inference bench (`pipeline_bench.PipelineBench`) over configurations:
which paths a run times, the grid of camera views x Euler steps, the table of the best call per
configuration, and the headline keys those figures are saved under. Chapter 7 runs them.
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch

from .pipeline import Arch, Shape


def check_parameters(variants: Sequence[str], fp8_variants: Sequence[str], compile_mode: str,
                     camera_views: Sequence[int], denoise_steps: Sequence[int], headline_views: int,
                     headline_steps: int) -> None:
    """Raise ValueError for a compile mode, path or headline configuration the sweep cannot run."""
    from .pipeline_bench import VARIANTS

    if compile_mode not in ("default", "max-autotune-no-cudagraphs"):
        raise ValueError(f"compile_mode={compile_mode!r}: allowed default | max-autotune-no-cudagraphs")
    unknown = [v for v in list(variants) + list(fp8_variants) if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants {unknown} unknown; allowed: {', '.join(VARIANTS)}")
    if headline_views not in camera_views or headline_steps not in denoise_steps:
        raise ValueError("headline_views and headline_steps must be among camera_views and denoise_steps")


def timed_variants(variants: Sequence[str], device: torch.device, full: bool) -> list[str]:
    """The requested paths this device can run, in the requested order; without the full profile
    the compiled ones are left out (compiling on a CPU would take most of the smoke budget, and
    the tests cover the plumbing)."""
    from .pipeline_bench import available_variants

    chosen = [v for v in variants if v in available_variants(device)]
    if not full:
        chosen = [v for v in chosen if not v.startswith("compile")]
    return chosen


def describe_text(a: Arch, shape: Shape) -> str:
    """The model's stacks and the headline configuration, as a Markdown paragraph."""
    hd = shape.describe(a)
    return f"""Model: SigLIP {a.vision.name} × {a.vision.depth} layers, LLM {a.llm.name} × {a.llm.depth},
expert {a.expert.name} × {a.expert.depth}; {a.tokens_per_image} tokens per image. Headline configuration:
{hd['views']} views and {hd['text_tokens']} text tokens ({hd['prefix_tokens']} prefix tokens), {hd['steps']} denoise steps,
an action horizon of {hd['horizon']} tokens, {hd['layers']} layers."""


def grid_paths(head_variants: Sequence[str], best_variant: str, stage_v: str, comp_v: str | None,
               gpu_only: bool) -> list[str]:
    """The paths timed at every step count of the headline views besides `stage_v`: `comp_v` and the
    headline's best path (so that the best call and its per-step cost are one path against itself),
    each only if it ran at the headline and, when `gpu_only`, only if it is GPU-timed."""
    from .pipeline_bench import gpu_timed

    return [v for v in dict.fromkeys((comp_v, best_variant)) if v and v != stage_v and v in set(head_variants)
            and (not gpu_only or gpu_timed(v))]


def views_steps_grid(bench: Any, camera_views: Sequence[int], denoise_steps: Sequence[int], text: int,
                     horizon: int, headline_shape: Shape, long_horizon: int, stage_v: str,
                     step_paths: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of `bench.attempt` for every (views, steps) but the headline's: the whole call with
    `stage_v`, plus the stages where they add something (vision and prefill once per new view
    count, the denoise stage at the headline views); the whole call of each of `step_paths` at the
    headline views only (another view count would be another compilation); then `stage_v` at the
    headline configuration with `long_horizon` actions."""
    grid_rows: list[dict[str, Any]] = []
    headline_views = headline_shape.views
    for n_views in camera_views:
        for n_steps in denoise_steps:
            shape = Shape(n_views, text, n_steps, horizon)
            if shape == headline_shape:
                continue
            new_views = n_steps == denoise_steps[0] and n_views != headline_views
            stages = ("whole", "vision", "prefill", "denoise") if new_views else (
                ("whole", "denoise") if n_views == headline_views else ("whole",))  # denoise per step: headline views
            grid_rows += bench.attempt(stage_v, stages, shape)
            if n_views == headline_views:
                for v in step_paths:
                    grid_rows += bench.attempt(v, ("whole",), shape)
    long_shape = Shape(headline_views, text, headline_shape.steps, long_horizon)
    grid_rows += bench.attempt(stage_v, ("whole", "denoise"), long_shape)
    return grid_rows


def rate_table(allrows: pd.DataFrame, gpu_only: bool, horizon: int, text: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole-call rows at `horizon` and `text` tokens (GPU-timed paths only when `gpu_only`),
    and their pivot by (views, steps): one column of median ms per path, NaN where that path was
    not timed. No column takes the fastest across paths: they were timed at different
    configurations, so such a column would set one path against another from row to row."""
    from .pipeline_bench import gpu_timed

    graphed = allrows[allrows.variant.map(gpu_timed)] if gpu_only else allrows
    whole_grid = graphed[(graphed.stage == "whole") & (graphed.horizon == horizon) & (graphed.text_tokens == text)]
    per_path = whole_grid.pivot_table(index=["views", "steps"], columns="variant", values="median_ms")
    per_path.columns.name = None
    return whole_grid, per_path


def covering_path(per_path: pd.DataFrame, configs: Sequence[tuple[int, int]], prefer: Sequence[str] = ()) -> str | None:
    """A path of `per_path` (`rate_table`) timed at every (views, steps) in `configs`: the first of
    `prefer` that is, else the fastest over them (summed ms); None when no path covers them all."""
    have = [v for v in per_path.columns if all(c in per_path.index and pd.notna(per_path.at[c, v]) for c in configs)]
    for v in prefer:
        if v in have:
            return v
    return min(have, key=lambda v: float(per_path.loc[list(configs), v].sum())) if have else None


def per_step_ms(per_path: pd.DataFrame, views: int, many: int, few: int) -> pd.Series:
    """Each path's whole-call cost per added Euler step at `views` views, from its own times at
    `many` and `few` steps (paths timed at both only), fastest first."""
    if (views, many) not in per_path.index or (views, few) not in per_path.index:
        return pd.Series(dtype=float)
    return ((per_path.loc[(views, many)] - per_path.loc[(views, few)]) / (many - few)).dropna().sort_values()


def _where(timed: Sequence[tuple[int, int]], every: int, headline: tuple[int, int]) -> str:
    """Where one path was timed, in words."""
    if len(timed) == every:
        return "every configuration"
    if list(timed) == [headline]:
        return "the headline configuration only"
    if {v for v, _ in timed} == {headline[0]}:
        return f"{headline[0]} views only"
    return ", ".join(f"{v} views × {s} steps" for v, s in timed)


def grid_table(per_path: pd.DataFrame, headline: tuple[int, int]) -> Any:
    """`per_path` (`rate_table`) as the page's table: one ms column per path, those timed at more
    configurations first, the rate (1000 / ms) of a path timed at every configuration, and a
    footnote saying where each path was timed."""
    from .report import table

    order = sorted(per_path.columns, key=lambda v: (-int(per_path[v].notna().sum()), float(per_path[v].mean())))
    df = per_path[order].rename(columns=lambda v: f"{v}_ms")
    full = [v for v in order if per_path[v].notna().all()]
    if full:
        df[f"{full[0]}_hz"] = 1e3 / per_path[full[0]]
    where: dict[str, list[str]] = {}
    for v in order:
        where.setdefault(_where(list(per_path[v].dropna().index), len(per_path), headline), []).append(v)
    note = "Timed: " + "; ".join(f"{', '.join(paths)} at {w}" for w, paths in where.items()) + "."
    if len(where) > 1:
        why = (" torch.compile runs at the headline's views only (another view count is another compilation, left"
               " out to save device time)," if any(v.startswith("compile") for v in order) else "")
        note += (why + " so" if why else " So") + " the fastest path timed differs from row to row: read one path down its column."
    return table(df.reset_index(), footnotes=[note])


def latency_keys(n_views: int, n_steps: int, one: int, stage_best: pd.Series, best_ms: float,
                 best_ms_by_shape: pd.Series) -> dict[str, float]:
    """Headline keys of the stages, the best call and its rate at `n_views` views and `n_steps`
    steps, and the call at `one` step (`best_ms_by_shape`: one path's ms indexed by (views, steps);
    the chapter passes the best call's own path, so that both calls are of one path)."""
    return {
        f"vision_{n_views}view_ms": float(stage_best["vision"]),
        "prefix_prefill_ms": float(stage_best["prefill"]),
        f"denoise_steps{n_steps}_ms": float(stage_best["denoise"]),
        f"pipeline_{n_views}view_steps{n_steps}_best_ms": best_ms,
        f"pipeline_{n_views}view_steps{n_steps}_hz": 1e3 / best_ms,
        f"pipeline_{n_views}view_steps{one}_best_ms": float(best_ms_by_shape.get((n_views, one), float("nan"))),
    }


def budget_keys(budget_ms: dict[tuple[int, int], float], n_views: int, text: int) -> dict[str, float]:
    """Headline keys of the token budgets other than the headline's (`budget_ms`: (views or image
    slots, text tokens) -> ms); a count other than the headline's is of openpi's image slots."""
    out = {}
    for (slots, txt), ms in budget_ms.items():
        if (slots, txt) != (n_views, text):
            out[f"pipeline_{slots}{'view' if slots == n_views else 'slot'}_text{txt}_ms"] = ms
    return out
