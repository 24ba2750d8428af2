"""A call's kernels by kind: GEMM, attention, elementwise/fused, other. Chapter 7 profiles its
paths with `kernel_table`, sets several side by side (`kernels_by_kind`) and says where one path
spends what another does not (`shift_text`, `twin_shifts`).
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch


KERNEL_CLASSES = ("GEMM", "attention", "elementwise/fused", "other")
_CLASS_OF_GROUP = {"matmul": "GEMM", "attention": "attention", "elementwise": "elementwise/fused"}


def classify_kernel(name: str) -> str:
    """GEMM, attention, elementwise/fused or other: `profiling.classify_by_name` in chapter 7's words."""
    from .profiling import classify_by_name

    return _CLASS_OF_GROUP.get(classify_by_name(name), "other")


def kernel_table(fn: Callable[[], Any], device: torch.device | str, runs: int = 3) -> pd.DataFrame:
    """Per kernel of one call of `fn` (`profiling.kernel_profile`, averaged over `runs` profiled
    calls after one warm-up): kernel, kind (`classify_kernel`: under CUDA-graph replay the
    launching ops are gone, so kernels are told apart by name), count and total_ms per call."""
    from .profiling import kernel_profile

    prof = kernel_profile(fn, device, runs, classify=lambda kernel, ops: classify_kernel(kernel))
    out = pd.DataFrame({"kernel": prof.kernel, "kind": prof.group, "count": prof.calls_per_run,
                        "total_ms": prof.total_ms})
    out = out[~out.kernel.str.lower().str.startswith(("memcpy", "memset"))]  # input copies into the graph
    if out.empty:  # e.g. a profiler that does not trace kernels inside CUDA-graph replays
        raise RuntimeError("the profiler saw no kernels in the profiled calls")
    return out.sort_values("total_ms", ascending=False, ignore_index=True)


def kernels_by_kind(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Kernel count and time per kind (`classify_kernel`) of several `kernel_table`s side by side,
    one pair of columns per name (e.g. the bf16 and the FP8 call): where one path spends what the
    other does not."""
    cols = {}
    for name, t in tables.items():
        g = t.groupby("kind").agg(count=("count", "sum"), ms=("total_ms", "sum"))
        cols[f"{name} kernels_count"], cols[f"{name} time_ms"] = g["count"].round(), g["ms"]
    out = pd.DataFrame(cols).reindex(KERNEL_CLASSES).fillna(0.0)
    return out.rename_axis("kind").reset_index()


def shift_text(by_kind: pd.DataFrame, before: str, after: str) -> str:
    """Where `after` spends more or less than `before`, kind by kind, from a `kernels_by_kind`
    table of the two: time and kernel count of each kind either ran."""
    t = by_kind.set_index("kind")
    parts = []
    for kind in t.index:
        b_ms, a_ms = t.loc[kind, f"{before} time_ms"], t.loc[kind, f"{after} time_ms"]
        if b_ms == 0 and a_ms == 0:
            continue
        b_n, a_n = t.loc[kind, f"{before} kernels_count"], t.loc[kind, f"{after} kernels_count"]
        parts.append(f"{kind} {a_ms - b_ms:+.2f} ms ({b_ms:.2f} → {a_ms:.2f} ms, {b_n:.0f} → {a_n:.0f} kernels)")
    total = sum(t[f"{after} time_ms"]) - sum(t[f"{before} time_ms"])
    return (f"Kernel time of `{after.split(' ', 1)[-1]}` against `{before.split(' ', 1)[-1]}`, kind by kind: "
            + "; ".join(parts) + f". In all, {total:+.2f} ms of kernel time.")


def twin_shifts(kernels: dict[str, pd.DataFrame], twins: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """`kernels_by_kind` of every profiled path (`kernels`: name -> `kernel_table`) and, for each
    (path -> its twin) in `twins` with both profiled, `shift_text` of the path against its twin."""
    by_kind = kernels_by_kind(kernels)
    return by_kind, [shift_text(by_kind, twin, path) for path, twin in twins.items()
                     if path in kernels and twin in kernels]


def share_by_kind(table: pd.DataFrame) -> pd.DataFrame:
    """Kernel count, time and share of the total per kind of one `kernel_table`, indexed by kind."""
    by_kind = table.groupby("kind").agg(kernels_count=("count", "sum"), time_ms=("total_ms", "sum"))
    by_kind["share_pct"] = 100 * by_kind.time_ms / by_kind.time_ms.sum()
    return by_kind


def classes_per_step(tables: dict[str, pd.DataFrame], steps: int, floors: dict[str, float]) -> pd.DataFrame:
    """`kernels_by_kind` of denoise-stage profiles (`tables`: name -> `kernel_table` of `steps`
    steps) per denoise step, with each class's floor_ms (`floors`: class -> ms)."""
    by_class = kernels_by_kind(tables)
    numeric = by_class.columns.drop("kind")
    by_class[numeric] = by_class[numeric] / steps
    by_class["floor_ms"] = by_class.kind.map(floors)
    return by_class


def with_paths(by_class: pd.DataFrame, tables: dict[str, pd.DataFrame], steps: int,
               floors: dict[str, float]) -> pd.DataFrame:
    """A `classes_per_step` table with the classes of more profiles (`tables`) as its first
    columns, so that a profile already reduced is not reduced again."""
    first = classes_per_step(tables, steps, floors).drop(columns="floor_ms")
    return first.merge(by_class, on="kind")


def path_classes(by_class: pd.DataFrame, path: str) -> pd.DataFrame:
    """One path's columns of a `classes_per_step` table, indexed by kind: kernels_count, time_ms,
    floor_ms and x_floor_ratio (empty where the floor is 0)."""
    t = by_class.set_index("kind")
    per_step = pd.DataFrame({"kernels_count": t[f"{path} kernels_count"], "time_ms": t[f"{path} time_ms"],
                             "floor_ms": t["floor_ms"]})
    per_step["x_floor_ratio"] = per_step.time_ms / per_step.floor_ms.where(per_step.floor_ms > 0)
    return per_step
