"""Reading the Triton-vs-cuBLAS comparison (`triton_matmul.triton_vs_cublas`): what the
autotuner chose per shape and how it stands against the 1.15x target, and the contrast with
the seed's Triton figure on Thor. The measurement itself lives beside its kernel in
`triton_matmul`; these functions turn its tables into the rows and sentences chapter 6 shows."""
from __future__ import annotations

import pandas as pd
import torch

from . import reference
from . import triton_matmul as TM


def autotune_choices(timings: pd.DataFrame, device: torch.device | str, repeats: int, operand_dtypes: list[str],
                     allowed: dict[str, torch.dtype], full: bool) -> tuple[pd.DataFrame, dict[str, float], str]:
    """Per (dtype, gemm) of `timings`: the configuration the autotuner chose, its tiles against the
    SMs, its grid efficiency and Triton's time over cuBLAS's; and Triton's ratio on a large square
    product (`main_loop`, by dtype name), which times both kernels on whole waves of whole tiles.
    Returns (per_shape, main_loop, square), `square` naming the square product."""
    n_sq = 8192 if full else 256
    square = f"{n_sq}³"
    _, sq_timings = TM.triton_vs_cublas({square: (n_sq, n_sq, n_sq)}, device, repeats,
                                        [allowed[d] for d in operand_dtypes])
    main_loop = {d: r for d in operand_dtypes if (r := TM.triton_ratio(sq_timings, d))}
    tri = timings[timings.impl == "Triton"].set_index(["dtype", "gemm"])
    cub = timings[timings.impl == "cuBLAS"].set_index(["dtype", "gemm"])
    chosen = lambda r: ("not reported" if pd.isna(r.BLOCK_M) else  # noqa: E731
                        f"{r.BLOCK_M:.0f}×{r.BLOCK_N:.0f}×{r.BLOCK_K:.0f}, {r.num_stages:.0f} stages, {r.num_warps:.0f} warps")
    per_shape = pd.DataFrame({
        "chosen": [chosen(r) for r in tri.itertuples()],
        "tiles_count": tri.tiles_count, "sm_count": tri.sm_count,
        "grid_efficiency_pct": [100 * (TM.grid_efficiency(r._asdict(), r.M, r.N, r.sm_count) or float("nan"))
                                for r in tri.itertuples()],
        "triton_vs_cublas_ratio": tri.median_ms / cub.median_ms.reindex(tri.index)}, index=tri.index).reset_index()
    return per_shape, main_loop, square


def autotune_text(timings: pd.DataFrame, per_shape: pd.DataFrame, main_loop: dict[str, float], square: str,
                  target_ratio: float, large_gemms: list[str]) -> str:
    """Markdown on `autotune_choices`' table: autotuning time, the pairs over `target_ratio`, the
    configurations with fewer tiles than SMs, whether the bf16 `large_gemms` meet the target, what
    stands between each slow pair and it (`triton_matmul.limit_text`), and what the kernel lacks."""
    large = TM.triton_ratio(timings[timings.gemm.isin(large_gemms)], "bfloat16")  # the MLP's two GEMMs, bf16
    target_sentence = ("The bf16 MLP GEMMs were not both timed: the target is not judged here." if large is None else
                       f"**The target is {'met' if large <= target_ratio else 'not met'}**: on the prefill's two large "
                       f"GEMMs ({' and '.join(large_gemms)}, bf16, summed) Triton takes {large:.2f}× cuBLAS's time.")
    slow = per_shape[per_shape.triton_vs_cublas_ratio > target_ratio]
    few = per_shape[per_shape.tiles_count < per_shape.sm_count]
    over = ", ".join(f"{r.gemm} {r.dtype} ({r.triton_vs_cublas_ratio:.2f}×)" for r in slow.itertuples())
    idle = ", ".join(f"{r.gemm} {r.dtype}: {r.tiles_count:.0f}" for r in few.itertuples())
    return f"""Autotuning (and the checks that ran on its choice) took {timings.autotune_s.sum():.0f} s of wall time for
{len(per_shape)} shape/dtype pairs. {len(per_shape) - len(slow)} of {len(per_shape)} pairs are within {target_ratio}×
of cuBLAS{'.' if slow.empty else '; over it: ' + over + '.'}
{'' if few.empty else f'Some chosen configurations launch fewer tiles than the GPU has SMs ({idle}): part of the GPU idles for the whole matmul.'}

{target_sentence}

{TM.limit_text(per_shape, main_loop, target_ratio, square)}

What this kernel lacks that Hopper's library GEMMs (e.g. CUTLASS's sm90 kernels) use: TMA bulk
copies (its loads are per-thread `cp.async`), warp specialisation (some warps load while the others
multiply), a persistent grid that balances tiles over the SMs, and split-K or stream-K for shapes
with few output tiles. Each of those is a different kernel, not a configuration of this one."""


def seed_rows(ratios: dict[str, float | None], seed_speed: float, seed_cublas: float,
              seed_triton: float) -> list[dict]:
    """Rows for `report.side_by_side`: Triton time over cuBLAS time per operand dtype (`ratios`, by
    dtype name), beside the seed's FP16 figure on Thor (its speed ratio and its two times, in ms).
    A dtype this run did not time (and the seed did not quote) has no row: it would be all dashes."""
    bf = ratios.get("bfloat16")
    rows = [
        {"quantity": "Triton time / cuBLAS time, bf16, the four prefill matmuls summed", "unit": "ratio",
         "thor_quoted": 1 / seed_speed, "thor_source": f"seed: FP16, one unknown shape ({seed_triton} ms / {seed_cublas} ms)",
         "measured": bf},
        {"quantity": "same, FP8", "unit": "ratio", "measured": ratios.get("float8_e4m3fn")},
        {"quantity": "same, FP16", "unit": "ratio", "measured": ratios.get("float16")},
    ]
    return [r for r in rows if r.get("measured") is not None or r.get("thor_quoted") is not None]  # no all-dash row


def seed_contrast(timings: pd.DataFrame | None, bf: float | None, seed_speed: float, seed_cublas: float,
                  name: str, tv: str | None, device: torch.device | str, cuda: bool, width: int) -> list[str]:
    """Markdown paragraphs that set this device's bf16 ratio `bf` (None when nothing was timed)
    beside the seed's Thor figure, and list what differs between the two measurements (platform,
    dtype, shape, kernel), `name` and `tv` naming this device and its triton version and `width`
    the prefill's model width."""
    lines = []
    if bf is not None:
        per = timings[timings.dtype == "bfloat16"].pivot(index="gemm", columns="impl", values="median_ms")
        per = per.Triton / per.cuBLAS
        lines.append(f"On {name} (triton {tv}) the autotuned Triton kernel takes **{bf:.2f}×** the cuBLAS time over the four "
                     f"bf16 prefill matmuls ({1 / bf:.2f}× the speed; per shape from {per.min():.2f}× on "
                     f"{per.idxmin()} to {per.max():.2f}× on {per.idxmax()}). The seed's figure on Thor, "
                     f"{seed_speed:.2f}× the *speed*, is {1 / seed_speed:.2f}× the *time*.")
    thor_cc = reference.quoted("thor_compute_capability")
    thor_bf16 = reference.quoted("thor_bf16_dense_tflops")
    here_cc = ("sm_%d%d" % torch.cuda.get_device_capability(device)) if cuda else None
    here_txt = (f"{name} is {here_cc} with triton {tv}" + (", where Triton's Hopper tensor-core paths (wgmma, TMA) have been "
                "in place for several releases" if here_cc == "sm_90" else "")) if here_cc else "this run has no GPU"
    lines.append(f"""What differs between the two measurements, so that neither transfers to the other:
* **the platform**: Thor is sm_{round(thor_cc * 10)} (quoted), an architecture that was new to Triton when the seed ran the
  Triton release it lists; {here_txt}. A young backend's gap says little about a mature one, and the reverse.
* **the dtype**: the seed timed FP16; the prefill runs bf16 (and FP8 here where the device has it).
* **the shape**: the seed's shape is not stated. In the {seed_cublas} ms cuBLAS took, Thor's dense 16-bit peak (quoted
  spec, {thor_bf16:.0f} TFLOP/s) does at most {seed_cublas * 1e-3 * thor_bf16 * 1e12 / 1e9:.0f} GFLOP; whether the
  matmul had few output tiles (as the prefill's N = {width} projections do) or many changes which kernel wins.
* **the kernel**: a tutorial-structured kernel with a {len(TM.autotune_configs())}-configuration search, not a
  persistent, warp-specialized one: its speed relative to cuBLAS is a lower bound on what Triton can reach on
  this device (its time over cuBLAS's an upper bound).""")
    return lines
