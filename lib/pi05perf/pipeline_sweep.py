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


def views_steps_grid(bench: Any, camera_views: Sequence[int], denoise_steps: Sequence[int], text: int,
                     horizon: int, headline_shape: Shape, long_horizon: int, stage_v: str,
                     comp_v: str | None) -> list[dict[str, Any]]:
    """Rows of `bench.attempt` for every (views, steps) but the headline's: the whole call with
    `stage_v`, plus the stages where they add something (vision and prefill once per new view
    count, the denoise stage at the headline views), `comp_v` at the headline views; then
    `stage_v` at the headline configuration with `long_horizon` actions."""
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
            if comp_v and n_views == headline_views:
                grid_rows += bench.attempt(comp_v, ("whole",), shape)
    long_shape = Shape(headline_views, text, headline_shape.steps, long_horizon)
    grid_rows += bench.attempt(stage_v, ("whole", "denoise"), long_shape)
    return grid_rows


def rate_table(allrows: pd.DataFrame, gpu_only: bool, horizon: int, text: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole-call rows at `horizon` and `text` tokens (GPU-timed paths only when `gpu_only`),
    and their pivot by (views, steps) with the best path's ms and its rate (1000 / ms)."""
    from .pipeline_bench import path_kind

    graphed = allrows[allrows.variant.map(path_kind).str.startswith("GPU")] if gpu_only else allrows
    whole_grid = graphed[(graphed.stage == "whole") & (graphed.horizon == horizon) & (graphed.text_tokens == text)]
    rate = whole_grid.pivot_table(index=["views", "steps"], columns="variant", values="median_ms")
    rate["best_ms"] = rate.min(axis=1)
    rate["best_hz"] = 1e3 / rate.best_ms
    return whole_grid, rate


def latency_keys(n_views: int, n_steps: int, one: int, stage_best: pd.Series, best_ms: float,
                 best_ms_by_shape: pd.Series) -> dict[str, float]:
    """Headline keys of the stages, the best call and its rate at `n_views` views and `n_steps`
    steps, and the best call at `one` step (`best_ms_by_shape`: indexed by (views, steps))."""
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
