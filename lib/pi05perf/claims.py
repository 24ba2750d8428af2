"""The book's key figures as data, for the intro's and the verdict's tables, and chapter links.

`HEADLINE_FIGURES` is the curated list a reader sees first: one row per figure (words and
unit), Thor as quoted (with source), each device with committed results as measured, the
figures projected for Thor from a device's measurements (and that projection's error) in a
column of their own, and the floor. Chapter numbers and links come from `_toc.yml`, so a new
chapter needs no edit here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

NOT_MEASURED = "not measured in this run"


@dataclass(frozen=True)
class Figure:
    """One key figure: `key` in `chapter`'s headline; `thor_key` in data/reference; `floor_key`
    the headline (same chapter) holding the physical floor of the same quantity."""

    label: str
    unit: str
    chapter: str
    key: str
    thor_key: str | None = None
    thor_source: str = ""
    floor_key: str | None = None
    invert_thor: bool = False  # the quoted figure is the reciprocal of what `key` measures
    projected: bool = False  # a model's projection for Thor from a device's run (or its error), not a measurement


HEADLINE_FIGURES: list[Figure] = [
    Figure("copy bandwidth (read + write)", "GB/s", "ch02_roofline", "copy_gbps", "hw_avg_bandwidth_gbps",
           "seed, measured on Thor"),
    Figure("dense bf16 matmul rate", "TFLOP/s", "ch02_roofline", "matmul_bf16_tflops", "thor_bf16_dense_tflops",
           "NVIDIA spec"),  # a ceiling: the floors divide by it, it has none of its own
    Figure("FP8 matmul rate", "TFLOP/s", "ch02_roofline", "matmul_fp8_tflops", "thor_fp8_dense_tflops", "NVIDIA spec"),
    Figure("712-token prefill, best path", "ms", "ch03_prefill_breakdown", "prefill712_best_ms",
           "kv_prefill_standalone_ms", "seed, standalone benchmark", "prefill712_floor_ms"),
    Figure("MLP share of the profiled best prefill", "%", "ch03_prefill_breakdown", "profiled_best_mlp_share_pct",
           "kv_mlp_share_claim_pct", "seed, Phase 0"),
    Figure("712-token prefill, FP8 on every projection", "ms", "ch04_fp8_tensorrt", "fp8_prefill712_full_ms",
           "turbopi_trt_fp8_10step_prefix_ms",
           "TurboPi's in-pipeline prefix (seed): PyTorch, its TRT 'FP8' MLP ran as FP16 — not FP8"),
    Figure("Triton / cuBLAS time, bf16 prefill matmuls, graphed", "×", "ch06_triton",
           "triton_vs_cublas_bf16_graphed_ratio", "triton_vs_cublas_ratio", "seed, FP16, shape unknown", invert_thor=True),
    Figure("vision, 2 views", "ms", "ch07_pipeline", "vision_2view_ms", "pipeline_baseline_vision_ms", "seed"),
    Figure("prefix prefill in the pipeline", "ms", "ch07_pipeline", "prefix_prefill_ms", "pipeline_baseline_kv_ms",
           "seed"),
    Figure("one denoise step", "ms", "ch07_pipeline", "denoise_step_best_ms", None, "", "denoise_step_floor_ms"),
    Figure("whole inference, 2 views, 10 steps", "ms", "ch07_pipeline", "pipeline_2view_steps10_best_ms",
           "pipeline_baseline_total_ms", "seed", "pipeline_2view_steps10_floor_ms"),
    Figure("inference rate, 2 views, 10 steps", "Hz", "ch07_pipeline", "pipeline_2view_steps10_hz", "best_10step_hz",
           "seed"),
    Figure("whole inference, FP8, 2 views, 10 steps", "ms", "ch07_pipeline", "pipeline_fp8_2view_steps10_ms",
           "flashrt_fp8_2view_ms", "FlashRT, FP8"),
    Figure("18 → 12 layers: speed-up of the whole call", "×", "ch08_roads_to_20hz", "layers12_speedup_ratio",
           "opt_fewer_layers_speedup_ratio", "seed, expected"),
    Figure("Thor projection, best path, 10 steps", "ms", "ch08_roads_to_20hz", "thor_projected_best_steps10_ms",
           projected=True),
    Figure("latency model: largest error on held-out Thor figures", "%", "ch08_roads_to_20hz",
           "thor_heldout_max_error_pct", projected=True),
    Figure("ours over LeRobot (compiled), 2 views, 10 steps", "×", "ch09_peers",
           "ours_vs_lerobot_compiled_speedup_ratio"),
]


# ----------------------------------------------------------------------------- chapters
def toc_chapters() -> list[str]:
    """Numbered chapters (`chNN_*`) in _toc.yml order."""
    from .book import toc_order

    return [n for n in toc_order() if n.startswith("ch")]


def fp8_memory_bound_status(measured_speedup: float | None) -> str:
    """The verdict on "FP8 cannot speed up a memory-bound prefill" (chapter 4 and the verdict page):
    FP8 weights halve the bytes, so the claim's reason is wrong whatever is measured; a measured
    gain where the pass is memory-bound makes it "not held", a path that does not realise the
    halved bytes leaves it "partly held" (never "held": that would read an implementation's
    overhead as a law of bandwidth)."""
    if measured_speedup is None:
        return "partly held"
    return "not held" if measured_speedup > 1.1 else "partly held"


def chapter_number(chapter: str) -> int | None:
    names = toc_chapters()
    return names.index(chapter) + 1 if chapter in names else None


def chapter_link(chapter: str) -> str:
    """A MyST link to a chapter page (`[chapter 3](ch03_prefill_breakdown.ipynb)`); plain text
    for a chapter not in the table of contents."""
    n = chapter_number(chapter)
    return f"[chapter {n}]({chapter}.ipynb)" if n else chapter


# ----------------------------------------------------------------------------- figures
def number(v: Any) -> float | None:
    """A stored figure as a float; None for a missing or NaN one."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class Figures:
    """Headline figures of committed runs. `get` returns None for a chapter or key a run lacks
    (an older run, a chapter not run yet): pages say "not measured in this run", never crash."""

    def __init__(self, heads: pd.DataFrame | None = None):
        from .results import headlines

        heads = headlines() if heads is None else heads
        self.heads = heads[heads.source == "committed"]

    def get(self, chapter: str, key: str, slug: str) -> float | None:
        hit = self.heads[(self.heads.slug == slug) & (self.heads.chapter == chapter) & (self.heads.key == key)]
        return None if hit.empty else number(hit.value.iloc[-1])

    def has_chapter(self, chapter: str, slug: str) -> bool:
        return bool(((self.heads.slug == slug) & (self.heads.chapter == chapter)).any())


def projected_column(device: dict[str, Any]) -> str:
    """The heading of a device's column of projected figures: never a 'measured' column."""
    return f"Thor, projected from {device['device']}'s measurements ({device['commit'] or 'commit unknown'})"


def figure_table(devices: list[dict[str, Any]], figures: Figures | None = None,
                 rows: list[Figure] | None = None, floor_slug: str | None = None) -> pd.DataFrame:
    """The curated headline table: figure (unit) · Thor (quoted) · quoted from · one column per
    device (`device (commit)`, its measurements) · one column per device with projected figures
    (`projected_column`: chapter 8's latency model on Thor from that device's run, and its error;
    only where the device has any) · floor (on `floor_slug`, default the first device). A
    projected figure never sits in a measured column. Values stay numbers (None where missing)
    so `report.table` formats them."""
    from . import reference

    figures = figures or Figures()
    rows = rows or HEADLINE_FIGURES
    floor_slug = floor_slug or (devices[0]["slug"] if devices else None)
    projecting = [d for d in devices
                  if any(figures.get(f.chapter, f.key, d["slug"]) is not None for f in rows if f.projected)]
    out = []
    for f in rows:
        thor = reference.quoted(f.thor_key) if f.thor_key else None
        if thor is not None and f.invert_thor:
            thor = 1 / thor
        row: dict[str, Any] = {"figure": f"{f.label} ({f.unit})", "Thor (quoted)": thor,
                               "quoted from": f.thor_source or None}
        for d in devices:
            row[f"{d['device']} ({d['commit'] or 'commit unknown'})"] = (
                None if f.projected else figures.get(f.chapter, f.key, d["slug"]))
        for d in projecting:
            row[projected_column(d)] = figures.get(f.chapter, f.key, d["slug"]) if f.projected else None
        row["floor"] = figures.get(f.chapter, f.floor_key, floor_slug) if f.floor_key and floor_slug else None
        out.append(row)
    return pd.DataFrame(out)


def unmeasured_figures(devices: list[dict[str, Any]], figures: Figures | None = None) -> list[str]:
    """The key figures (`HEADLINE_FIGURES`) that no committed run of `devices` holds, each as
    "label (chapter link)": what the intro lists as not measured yet."""
    figures = figures or Figures()
    return [f"{f.label} ({chapter_link(f.chapter)})" for f in HEADLINE_FIGURES
            if all(figures.get(f.chapter, f.key, d["slug"]) is None for d in devices)]
