"""Kernel profiles of whole-inference paths (`pipeline_bench.PipelineBench.kernels`): the best
call and its denoise stage, and each FP8 call beside its bf16 twin. These run on a CUDA GPU only
(chapter 7's full profile); the tables they read are built by `kernel_kinds`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import pandas as pd

from .kernel_kinds import twin_shifts
from .pipeline import Shape

if TYPE_CHECKING:
    from .pipeline_bench import PipelineBench


def profile_best(bench: "PipelineBench", best_variant: str, den_v: str, headline_shape: Shape,
                 profile_runs: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str | None]:
    """`kernel_table`s of the whole call of `best_variant` and of the denoise stage of `den_v`,
    and None for the error; (None, None, the error) when the profiler or a check fails."""
    from .pipeline_bench import error_line

    kernel_error = None
    try:
        whole_kernels = bench.kernels(best_variant, "whole", headline_shape, profile_runs)
        step_kernels = bench.kernels(den_v, "denoise", headline_shape, profile_runs)
    except Exception as e:  # noqa: BLE001 - a profiler or check failure is reported, the chapter goes on
        whole_kernels = step_kernels = None
        kernel_error = error_line(e)[:300]
    return whole_kernels, step_kernels, kernel_error


def timeline_text(best_variant: str, whole_kernels: pd.DataFrame, best_ms: float, den_v: str,
                  per_step: pd.DataFrame, kernels_per_step: float) -> str:
    """The best call's kernel count and kernel time against its measured time, then one denoise
    step's kernels class by class against their floors (`per_step`: `kernel_kinds.path_classes`)."""
    return f"""The best call (`{best_variant}`) runs {whole_kernels['count'].sum():.0f} kernels, {whole_kernels.total_ms.sum():.2f} ms
of kernel time against {best_ms:.2f} ms measured (the rest is gaps between kernels). One denoise step (`{den_v}`) is
**{kernels_per_step:.0f} kernels** and {per_step.time_ms.sum():.3f} ms of kernel time: GEMMs {per_step.time_ms['GEMM']:.3f} ms against
their floor of {per_step.floor_ms['GEMM']:.3f} ms, attention {per_step.time_ms['attention']:.3f} ms against {per_step.floor_ms['attention']:.4f} ms,
and {per_step.time_ms['elementwise/fused'] + per_step.time_ms['other']:.3f} ms in elementwise and other kernels whose traffic a
fused implementation would keep on chip."""


def show_fp8_twins(bench: "PipelineBench", fp8_variants: Iterable[str], best_variant: str, whole_kernels: pd.DataFrame,
                   headline_shape: Shape, profile_runs: int) -> pd.DataFrame | None:
    """Profile each FP8 call and its bf16 twin (the best call's profile, `whole_kernels`, is reused)
    and show their kernels by kind and where each FP8 call's time goes against its twin's.
    Returns the by-kind table, or None when a profile failed (said in the page)."""
    from .pipeline_bench import BF16_TWIN, error_line
    from .report import md, show

    fp8_by_kind = None
    try:
        twins = {f"FP8 {v}": f"bf16 {BF16_TWIN[v]}" for v in fp8_variants}
        profiled = {f"bf16 {best_variant}": whole_kernels}
        for name in [*twins.values(), *twins]:
            if name not in profiled:
                profiled[name] = bench.kernels(name.split(" ", 1)[1], "whole", headline_shape, profile_runs)
        fp8_by_kind, shifts = twin_shifts(profiled, twins)
        show(fp8_by_kind[["kind", *(c for c in fp8_by_kind.columns if c.endswith("time_ms"))]])  # counts: below
        show(md("\n\n".join(shifts)))
    except Exception as e:  # noqa: BLE001 - the timings above stand without their profiles
        show(md(f"No kernel profile of the FP8 calls: {error_line(e)}"))
    return fp8_by_kind
