"""The book's key figures as data, for the intro's and the verdict's tables, and chapter links.

`HEADLINE_FIGURES` is the curated list a reader sees first: one row per figure (words and
unit), Thor as quoted (with source), each device with committed results as measured, chapter 8's
projections for Thor (its kernel model fitted to quoted Thor figures, and that model's held-out
error) in a column of their own, and the floor; `key_figures` adds the notes that say which
implementation and path each figure timed. Chapter numbers and links come from `_toc.yml`, so a
new chapter needs no edit here.
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
    projected: bool = False  # chapter 8's projection for Thor (or its error), computed in a device's run: not a measurement
    thor_unlike: str = ""  # why the quoted Thor figure is not like with like: shown as a dash, with this note
    impl: str = ""  # which implementation the measured figure times (a note under the table)
    path_table: str = ""  # the chapter's table whose `path_column` names the path that was timed
    path_column: str = "variant"
    path_where: tuple[tuple[str, Any], ...] = ()  # (column, value) filters on that table
    over_key: str | None = None  # the figure is key / over_key (both in `chapter`'s headline)

    def value(self, figures: "Figures", slug: str) -> float | None:
        """This figure in `slug`'s committed run (a ratio where `over_key` is set); None where missing."""
        v = figures.get(self.chapter, self.key, slug)
        if self.over_key is None or v is None:
            return v
        d = figures.get(self.chapter, self.over_key, slug)
        return v / d if d else None


HEADLINE_FIGURES: list[Figure] = [
    Figure("copy bandwidth (read + write)", "GB/s", "ch02_roofline", "copy_gbps", "hw_avg_bandwidth_gbps",
           "seed, measured on Thor"),
    Figure("dense bf16 matmul rate", "TFLOP/s", "ch02_roofline", "matmul_bf16_tflops", "thor_bf16_dense_tflops",
           "NVIDIA spec"),  # a ceiling: the floors divide by it, it has none of its own
    Figure("FP8 matmul rate", "TFLOP/s", "ch02_roofline", "matmul_fp8_tflops", "thor_fp8_dense_tflops", "NVIDIA spec"),
    Figure("712-token prefill, chapter 3's standalone stack, fastest variant", "ms", "ch03_prefill_breakdown",
           "prefill712_best_ms", "kv_prefill_standalone_ms", "seed, standalone benchmark", "prefill712_floor_ms",
           impl="the 18 Gemma-2B layers alone (prefill_bench) on a random 712-token input",
           path_table="variants"),
    Figure("MLP share of chapter 3's profiled fastest prefill", "%", "ch03_prefill_breakdown", "profiled_best_mlp_share_pct",
           "kv_mlp_share_claim_pct", "seed, Phase 0"),
    Figure("712-token prefill, FP8 on every projection", "ms", "ch04_fp8_tensorrt", "fp8_prefill712_full_ms",
           "turbopi_trt_fp8_10step_prefix_ms",
           "TurboPi's in-pipeline prefix (seed): PyTorch, its TRT 'FP8' MLP ran as FP16 — not FP8",
           thor_unlike="an in-pipeline PyTorch prefix whose TensorRT 'FP8' MLP ran as FP16 (the seed says so): not an FP8 "
                       "prefill, so it is not set beside one"),
    Figure("Triton / cuBLAS time, bf16 prefill matmuls, graphed", "×", "ch06_triton",
           "triton_vs_cublas_bf16_graphed_ratio", "triton_vs_cublas_ratio", "seed, FP16, shape unknown", invert_thor=True),
    Figure("vision, 2 views", "ms", "ch07_pipeline", "vision_2view_ms", "pipeline_baseline_vision_ms", "seed"),
    Figure("712-token prefix prefill inside chapter 7's pipeline, fastest path", "ms", "ch07_pipeline",
           "prefix_prefill_ms", "pipeline_baseline_kv_ms", "seed",
           impl="the prefill stage of chapter 7's whole pi0.5 model (pipeline_bench): the same 712 tokens and bf16 as "
                "chapter 3's stack, in another implementation", path_table="latency", path_where=(("stage", "prefill"),)),
    Figure("one denoise step", "ms", "ch07_pipeline", "denoise_step_best_ms", None, "", "denoise_step_floor_ms"),
    Figure("whole inference, 2 views, 10 steps", "ms", "ch07_pipeline", "pipeline_2view_steps10_best_ms",
           "pipeline_baseline_total_ms", "seed", "pipeline_2view_steps10_floor_ms",
           impl="the whole pi0.5 call of chapter 7, on its fastest path", path_table="budget"),
    Figure("inference rate, 2 views, 10 steps", "Hz", "ch07_pipeline", "pipeline_2view_steps10_hz", "best_10step_hz",
           "seed"),
    Figure("whole inference, FP8, 2 views, 10 steps", "ms", "ch07_pipeline", "pipeline_fp8_2view_steps10_ms",
           "flashrt_fp8_2view_ms", "FlashRT, FP8, prompt unpadded (~10 tokens)",
           impl="chapter 7's whole call on its fastest FP8 path, at the seed's 200 prompt tokens; FlashRT's quoted "
                "figure runs its prompt unpadded, a shorter prefix"),
    Figure("18 → 12 layers: speed-up of the whole call", "×", "ch08_roads_to_20hz", "layers12_speedup_ratio",
           "opt_fewer_layers_speedup_ratio", "seed, expected",
           impl="both models on the one path chapter 8 times for every configuration, not on chapter 7's fastest path",
           path_table="predictions", path_where=(("test", "12 layers"), ("stage", "whole"))),
    Figure("Thor projection, chapter 7's compiled + graphed structure, bf16, 10 steps", "ms", "ch08_roads_to_20hz", "thor_projected_best_steps10_ms",
           projected=True),
    Figure("latency model: largest error on held-out Thor figures", "%", "ch08_roads_to_20hz",
           "thor_heldout_max_error_pct", projected=True),
    Figure("LeRobot (compiled) over ours, GPU kernel time, 2 views, 10 steps", "×", "ch09_peers",
           "lerobot_compiled_2view_steps10_kernels_ms", over_key="ours_best_2view_steps10_kernels_ms",
           impl="one call of each profiled in chapter 9's run, kernel durations summed (ours on its fastest path): the same "
                "network and shapes, with different precision placement and attention. Their wall-time ratio is left out: "
                "LeRobot's compiled call launches its kernels from Python and is host-bound, so that ratio is mostly host "
                "overhead"),
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


def measured_column(device: dict[str, Any]) -> str:
    """The heading of a device's column of measured figures: `device (commit)`."""
    return f"{device['device']} ({device['commit'] or 'commit unknown'})"


def projected_column(device: dict[str, Any]) -> str:
    """The heading of a device's column of projected figures: never a 'measured' column. Chapter 8
    fits its kernel model's Thor parameters to quoted Thor figures; the device only names the run
    that computed the projection."""
    return (f"Thor, projected (model fitted to quoted Thor figures; {device['device']} run, "
            f"{device['commit'] or 'commit unknown'})")


def figure_table(devices: list[dict[str, Any]], figures: Figures | None = None,
                 rows: list[Figure] | None = None, floor_slug: str | None = None) -> pd.DataFrame:
    """The curated headline table: figure (unit) · Thor (quoted) · quoted from · one column per
    device (`device (commit)`, its measurements) · one column per device with projected figures
    (`projected_column`: chapter 8's kernel model fitted to quoted Thor figures, computed in that
    device's run, and its error; only where the device has any) · floor (on `floor_slug`, default the first device). A
    projected figure never sits in a measured column; a quoted figure that is not like with like
    (`Figure.thor_unlike`) is left out (None). Values stay numbers (None where missing) so
    `report.table` formats them."""
    from . import reference

    figures = figures or Figures()
    rows = rows or HEADLINE_FIGURES
    floor_slug = floor_slug or (devices[0]["slug"] if devices else None)
    projecting = [d for d in devices
                  if any(figures.get(f.chapter, f.key, d["slug"]) is not None for f in rows if f.projected)]
    out = []
    for f in rows:
        thor = reference.quoted(f.thor_key) if f.thor_key and not f.thor_unlike else None
        if thor is not None and f.invert_thor:
            thor = 1 / thor
        source = f"{f.thor_source}; left out, see the note" if f.thor_unlike else f.thor_source
        row: dict[str, Any] = {"figure": f"{f.label} ({f.unit})", "Thor (quoted)": thor, "quoted from": source or None}
        for d in devices:
            row[measured_column(d)] = None if f.projected else f.value(figures, d["slug"])
        for d in projecting:
            row[projected_column(d)] = f.value(figures, d["slug"]) if f.projected else None
        row["floor"] = figures.get(f.chapter, f.floor_key, floor_slug) if f.floor_key and floor_slug else None
        out.append(row)
    return pd.DataFrame(out)


def unmeasured_figures(devices: list[dict[str, Any]], figures: Figures | None = None) -> list[str]:
    """The key figures (`HEADLINE_FIGURES`) that no committed run of `devices` holds, each as
    "label (chapter link)": what the intro lists as not measured yet."""
    figures = figures or Figures()
    return [f"{f.label} ({chapter_link(f.chapter)})" for f in HEADLINE_FIGURES
            if all(f.value(figures, d["slug"]) is None for d in devices)]


def timed_path(f: Figure, table: pd.DataFrame | None, value: float | None) -> str | None:
    """The path a figure timed: in `table` (filtered by `f.path_where`), the `f.path_column` of
    the row whose median is `value`, else the one path all those rows share. None where neither."""
    from .verdicts import path_of

    if table is None or table.empty or f.path_column not in table:
        return None
    for col, want in f.path_where:
        table = table[table[col] == want] if col in table else table.iloc[0:0]
    hit = path_of(table, value, name=f.path_column)
    paths = set(table[f.path_column].dropna())
    return hit or (str(paths.pop()) if len(paths) == 1 else None)


def figure_notes(devices: list[dict[str, Any]], figures: Figures | None = None,
                 rows: list[Figure] | None = None) -> list[str]:
    """The notes under the key-figures table: for each figure with `impl`, which implementation it
    times and the path each device's run timed (read from that run's table); for each quoted
    figure left out (`thor_unlike`), the figure and why."""
    from . import reference
    from .results import committed_docs, run_table

    figures = figures or Figures()
    notes = []
    for f in rows or HEADLINE_FIGURES:
        if f.thor_unlike and f.thor_key:
            notes.append(f"{f.label}: Thor's quoted {reference.quoted(f.thor_key):g} {f.unit} is left out (dash): "
                         f"{f.thor_unlike}.")
        if not f.impl:
            continue
        docs = committed_docs(f.chapter) if f.path_table else {}
        paths = []
        for d in devices:
            path = timed_path(f, run_table(docs.get(d["slug"]), f.path_table), f.value(figures, d["slug"]))
            if path:
                paths.append(f"{path} on {d['device']}")
        notes.append(f"{f.label}: {f.impl}" + (f"; path timed: {', '.join(paths)}" if paths else "") + ".")
    return notes + matmul_method_notes(devices)


def matmul_method_words(ceilings: pd.DataFrame | None, what: str) -> tuple[str, str]:
    """How one run measured its `what` matmul rate ("fp8", "bfloat16"), from its chapter 2
    `ceilings` table: (the method: how many candidates and shapes, whether fast accumulation is one,
    the clock; the best candidate: its stack and shape, empty where there is no table). A run without
    that table (chapter 2 before it timed candidates) timed one 8192³ product per call between CUDA
    events, L2 flushed, with torch's default (FP8: not fast) accumulation."""
    rows = None if ceilings is None or "ceiling" not in ceilings else ceilings[ceilings.ceiling.str.startswith(what)]
    if rows is None or rows.empty:
        return ("one 8192³ product per call, timed between CUDA events with the L2 flushed, default accumulation "
                "(chapter 2 as it was then)"), ""
    best = rows[rows.used.fillna("").str.startswith("best")] if "used" in rows else rows.iloc[0:0]
    best = best.iloc[0] if not best.empty else rows.loc[rows.value.idxmax()]
    fast = rows["stack"].str.contains("fast accumulation").any()
    return (f"the best of {len(rows)} candidates ({rows['size'].nunique()} shapes"
            + (", with and without fast accumulation" if fast else "") + f") read from {best.timed_by}",
            f"{best['stack']} at {best['size']}")


def matmul_method_notes(devices: list[dict[str, Any]]) -> list[str]:
    """A note under the key figures where the devices' FP8 matmul rates were measured by different
    methods (`matmul_method_words`, read from each run's chapter 2): not like with like. Each run's
    best candidate is named beside its method; a different best alone is no different method."""
    from .results import committed_docs, run_table

    docs = committed_docs("ch02_roofline")
    words = {measured_column(d): matmul_method_words(run_table(docs[d["slug"]], "ceilings"), "fp8")
             for d in devices if d["slug"] in docs}
    if len({method for method, _ in words.values()}) < 2:
        return []
    return ["FP8 matmul rate: measured by different methods, so the devices' figures are not like with like: "
            + "; ".join(f"{dev}, {method}" + (f" (best: {best})" if best else "") for dev, (method, best) in words.items())
            + "."]


def key_figures(devices: list[dict[str, Any]], floor_slug: str | None = None) -> Any:
    """The key-figures table as the intro and the verdict show it: `figure_table` with its notes."""
    from .report import table

    figures = Figures()
    return table(figure_table(devices, figures, floor_slug=floor_slug), footnotes=figure_notes(devices, figures))
