"""Chapter 5's low-bit measurements in words: what each fault's signature at layer, MLP and model
level says about the seed's cos ≈ 0, and the seed's INT4 / FP4 / INT8 claims judged (the
side-by-side rows and the verdict text).

Every function reads the tables of `lowbit_bench` and `precision_bench.precision_floors`;
figures are never kept here.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from .config import ACTION_HORIZON_LIBERO
from .lowbit_bench import ratio_text
from .reference import quoted
from .report import fmt, verdict
from .verdicts import int4_premise_status


#: The seed's three 4-bit runs on Thor (debug-mix-05): name, and the key prefix of its quoted time and cosine.
SEED_FP4_RUNS = (("Torch-TensorRT NVFP4", "fp4test_torch_trt_nvfp4"), ("PyTorch NVFP4", "fp4test_pytorch_nvfp4"),
                 ("W4A8", "fp4test_w4a8"))
#: Chapter 5's verdict table leaves the whole INT4 prefill out, and says why.
INT4_ROWS_NOTE = ("The whole INT4 prefill was timed only eagerly (section above): each time includes Python's dispatch of "
                  "every op (host overhead), so it is no GPU evidence and is left out here; the GPU evidence is the two "
                  "kernels' ratios on one MLP's matmuls.")


def seed_fp4_runs(floor_ms: float) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The seed's 4-bit runs (name, quoted ms) split by `floor_ms`, the least time a whole NVFP4
    prefill can take on Thor: those faster than that (they timed something smaller than the
    prefill), and those whose time allows a whole prefill."""
    runs = [(name, quoted(f"{key}_ms")) for name, key in SEED_FP4_RUNS]
    return [r for r in runs if r[1] < floor_ms], [r for r in runs if r[1] >= floor_ms]


def _run_names(runs: list[tuple[str, float]]) -> str:
    """[("A", 1.0), ("B", 2.5)] -> "A and B runs (1 and 2.5 ms)"."""
    return (f"{' and '.join(n for n, _ in runs)} run{'s' if len(runs) > 1 else ''} "
            f"({' and '.join(f'{ms:g}' for _, ms in runs)} ms)")


def seed_levels_text(floor_ms: float) -> str:
    """At which level each of the seed's 4-bit runs can have measured, from its time against
    `floor_ms` (`seed_fp4_runs`), and which faults match cos ≈ 0 there."""
    short, whole = seed_fp4_runs(floor_ms)
    out = []
    if short:
        out.append(f"the seed's {_run_names(short)}, faster than a whole NVFP4 prefill can be on Thor "
                   f"({floor_ms:.2f} ms), measured something smaller (a layer or an MLP), where only a layout fault or a "
                   "format misreading, not dropped scales, gives cos ≈ 0")
    if whole:
        out.append(f"its {_run_names(whole)} took longer than that, so "
                   f"{'they may have been whole prefills' if len(whole) > 1 else 'it may have been a whole prefill'}, "
                   "where dropped scales, through every layer, give cos ≈ 0 too")
    return "; ".join(out)


def span(values: pd.Series, spec: str = ".2f", show: Callable[[float], str] | None = None) -> str:
    """"lo to hi" of `values` formatted with `spec` (or `show`, a value -> str function); one value
    where both ends print the same, "n/a" where there are none."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    lo, hi = (show(x) if show else format(x, spec) for x in (v.min(), v.max()))
    return lo if lo == hi else f"{lo} to {hi}"


def fault_levels_text(levels: pd.DataFrame, prefix_tokens: int, thor_nvfp4: pd.Series, thor_gbps: float) -> str:
    """What `lowbit_bench.fault_levels` shows: which faults give cos ≈ 0 at layer, MLP and model
    level, how dropped scales differ from layout faults (magnitude against direction), and
    whether the seed's quoted NVFP4 time can have been a whole prefill (`thor_nvfp4`: Thor's
    NVFP4 row of `precision_floors`, `thor_gbps` its quoted bandwidth)."""
    lv = levels.set_index("fault")
    near0 = levels[levels.layer_cos.abs() < 0.1]
    drops = levels[levels.fault.str.contains("scales dropped|scale dropped")]
    seed_trt_ms = quoted("fp4test_torch_trt_nvfp4_ms")
    fault_min = float(levels.layer_cos.min())
    near0_mlp = levels[levels.mlp_cos.abs() < 0.1]
    nvfp4_weights_ms = thor_nvfp4.weight_gb / thor_gbps * 1e3  # the weights' bytes alone over Thor's bandwidth
    whole = seed_fp4_runs(thor_nvfp4.memory_ms)[1]
    longer = (f" The seed's {_run_names(whole)} took longer than that floor, so "
              f"{'their times do' if len(whole) > 1 else 'its time does'} not rule out a whole prefill." if whole else "")
    return f"""The seed's Torch-TensorRT NVFP4 run took {seed_trt_ms:g} ms (quoted); the {prefix_tokens}-token prefill's NVFP4
weights alone ({thor_nvfp4.weight_gb:.2f} GB) take at least {nvfp4_weights_ms:.2f} ms to read at Thor's quoted
{thor_gbps:.0f} GB/s ({thor_nvfp4.memory_ms:.2f} ms with the KV cache written and the input and output): that run
timed something smaller than the prefill.{longer}

**What gives cos ≈ 0 at layer and MLP level** (where the faster run measured). At one layer, only layout faults do:
{', '.join(near0.fault)} (layer |cos| ≤ {near0.layer_cos.abs().max():.3f}, MLP |cos| ≤ {near0.mlp_cos.abs().max():.3f}), each
with the output's size about right (norm ratio {span(near0.layer_norm_ratio)}).
At MLP level, where the GeGLU multiplies two faulty projections, cos ≈ 0 comes from
{', '.join(near0_mlp.fault) if not near0_mlp.empty else 'the same faults'} (MLP |cos| ≤
{near0_mlp.mlp_cos.abs().max() if not near0_mlp.empty else float('nan'):.3f}, norm ratio
{span(near0_mlp.mlp_norm_ratio)}).
Through the whole prefill the layout faults leave the final hidden state at cos
{span(near0.model_cos)}: the residual stream still carries the input, and each faulty branch adds noise of about its
own size (the final norm hides magnitudes, so `model_cos` is the model-level signature).
Dropped scales keep the direction at layer level (cos {span(drops.layer_cos, '.3f')}) and blow up the
magnitude (norm ratio {span(drops.layer_norm_ratio, show=ratio_text)}); they reach cos ≈ 0 only through
many layers (model cos {span(drops.model_cos, '+.3f')}). E2M1 codes read as integers give a
|cos| near {lv.layer_cos.filter(like='E2M1').abs().mean():.2f}, and block scales in the wrong layout bend the direction a
little (cos {lv.layer_cos.filter(like='scales transposed').min():.3f}). The lowest layer-level cosine among the faults tried
is **{fault_min:+.3f}**.

**How to tell them apart on Thor.** Measure the output's *magnitude* beside its cosine: a layer whose output is
≈ 1/scale (10² for 4-bit) too large lost its scales; one of the right size pointing elsewhere reads its codes in the
wrong order. The seed reported cosines only.

**What the log line shows.** `[DEQUANTIZE] [SCALE] has invalid precision FP4, ignored` says TensorRT ignored a
*precision* set on the scale input of a DequantizeLinear layer (FP4 is not a valid type for a scale; scales are FP8 or
FP32). It does not say the scale values were dropped: the builder may have kept the scale at its real type, or run
the layer at another precision (TensorRT issue #4590: FP8/FP4 requests silently building higher-precision engines on
Thor). Which one happened needs the built engine's layer information (`IEngineInspector`) or the magnitude test above;
the seed's log alone does not decide between scale dropping and a layout fault. By their times,
{seed_levels_text(thor_nvfp4.memory_ms)}."""


def int4_claims_rows(prefix_tokens: int, hi: int, i4_hi: float | None, w4_tokens: int, w4_ratio: float | None,
                     i8_hi: float | None, thor_int4_bound: float, here_int4_bound: float, i4: pd.Series | None,
                     i4x: pd.Series | None) -> list[dict[str, Any]]:
    """The seed's and NVIDIA's 4-bit and INT8 figures on Thor (quoted) beside this run's, for
    `report.side_by_side` (show it with `INT4_ROWS_NOTE`): `i4_hi` / `i8_hi` are time over bf16
    at `hi` tokens (tinygemm, `_int_mm`), `w4_ratio` the Triton W4A16 kernel's at `w4_tokens`,
    `i4` / `i4x` the INT4 prefill with and without its scales (`lowbit_bench.fault_injection`
    rows). The whole INT4 prefill's time is not a row: it was timed only eager (host overhead)."""
    seed_x = quoted("int4proj_int4_speedup_ratio")
    nv8, nv4 = quoted("nvidia_thor_trt_fp8_ms"), quoted("nvidia_thor_trt_fp8_nvfp4_ms")
    return [
        {"quantity": f"INT4 weight-only speedup over bf16, {prefix_tokens}-token prefill", "unit": "×",
         "thor_quoted": seed_x, "thor_source": "seed (projection: weight bytes only)", "floor": here_int4_bound},
        {"quantity": f"same, one MLP's matmuls ({hi} tokens), tinygemm (decode kernel)", "unit": "×",
         "measured": (1 / i4_hi) if i4_hi else None},
        {"quantity": f"same, one MLP's matmuls ({w4_tokens} tokens), Triton W4A16 (prefill kernel)", "unit": "×",
         "measured": (1 / w4_ratio) if w4_ratio else None},
        {"quantity": "same, Thor roofline (quoted spec)", "unit": "×", "thor_quoted": thor_int4_bound,
         "thor_source": "bound from Thor's spec (no measurement)"},
        {"quantity": "4-bit cosine to bf16, scales ignored", "unit": "cos", "thor_quoted": quoted("fp4_failure_cos"),
         "thor_source": "seed (TensorRT / PyTorch NVFP4, W4A8)", "measured": i4x.vs_base_hidden_cos if i4x is not None else None},
        # two rows, not one (as chapter 4's FP8): NVIDIA's is the trained policy's actions, this run's an INT4
        # random-weight hidden state
        {"quantity": "FP8+NVFP4 cosine to PyTorch, actions of the trained policy", "unit": "cos",
         "thor_quoted": f"~{quoted('nvidia_thor_nvfp4_cos'):g}", "thor_source": "NVIDIA Jetson AI Lab (approximate)"},
        {"quantity": "INT4 cosine to bf16, with scales, final hidden state, random weights", "unit": "cos",
         "measured": i4.vs_base_hidden_cos if i4 is not None else None},
        {"quantity": f"torch._int_mm speed relative to bf16 ({hi} tokens here)", "unit": "× speed",
         "thor_quoted": quoted("quantlib_torch_int_mm_speed_ratio"), "thor_source": "seed",
         "measured": (1 / i8_hi) if i8_hi else None},
        {"quantity": "whole inference, TensorRT FP8+NVFP4 over FP8", "unit": "× faster", "thor_quoted": nv8 / nv4,
         "thor_source": f"NVIDIA Jetson AI Lab ({nv8:.0f} → {nv4:.0f} ms)"},
    ]


def int4_claims_text(prefix_tokens: int, hi: int, thor_int4_bound: float, i4_hi: float | None,
                     w4_ratio: float | None, i8_hi: float | None, reproduced: bool, kept_cos: float,
                     device_name: str, tao: str | None, thor_nvfp4_floor_ms: float) -> str:
    """The verdict on the seed's INT4 premise (Thor's own roofline bound against the claimed
    speed-up, and the GPU kernels' ratios: tinygemm `i4_hi`, Triton W4A16 `w4_ratio`; the eager
    whole prefill is host overhead and not used), on "INT4/FP4 is unusable on Thor" (`reproduced`:
    dropped scales gave cos ≈ 0 here; `kept_cos`: the lowest cosine with the scales kept;
    `thor_nvfp4_floor_ms`: the least time of a whole NVFP4 prefill on Thor, `seed_levels_text`)
    and on cuBLAS INT8; `tao` is torchao's version, None where it is absent (its timings here are
    uncompiled: host overhead, no verdict)."""
    seed_x = quoted("int4proj_int4_speedup_ratio")
    nv8, nv4 = quoted("nvidia_thor_trt_fp8_ms"), quoted("nvidia_thor_trt_fp8_nvfp4_ms")
    # the premise judged by Thor's own roofline (a bound no kernel can beat) and, where measured, this device
    thor_bound = float(thor_int4_bound)
    premise = int4_premise_status(thor_bound, seed_x)
    measured_txt = ""
    if i4_hi:
        measured_txt += (f"; measured here kernel by kernel, one MLP's matmuls run at {1 / i4_hi:.2f}× the speed "
                         f"of bf16 at {hi} tokens through tinygemm (a decode kernel)")
    if w4_ratio:
        measured_txt += f", and through a prefill-class W4A16 kernel (Triton) at {1 / w4_ratio:.2f}× the speed of bf16"
    return f"""**"INT4 ⇒ {seed_x:.0f}× less weight traffic ⇒ {seed_x:.0f}× faster prefill" — {verdict(premise)}.** Weight-only INT4 removes weight
bytes, not arithmetic: at {prefix_tokens} tokens the prefill does {prefix_tokens} FLOPs per weight byte in bf16, and
with the bytes gone the bf16 compute floor remains. Thor's own spec bounds INT4 weight-only at
{thor_int4_bound:.2f}×{measured_txt}. (The whole INT4 prefill was timed only eagerly: host overhead, not used here.)
Low-bit weights pay off at a few tokens (decode, or the action expert's {ACTION_HORIZON_LIBERO}-token steps); a
{prefix_tokens}-token prefill needs FP8 or NVFP4 *tensor cores*, which is what NVIDIA's Thor build uses
(FP8 {nv8:.0f} ms, FP8+NVFP4 {nv4:.0f} ms for the whole inference, quoted: NVFP4 adds {nv8 / nv4:.2f}× over FP8).

**"INT4/FP4 is unusable on Thor (cos ≈ 0)" — {verdict('partly held' if reproduced else 'not testable here')}.** The
cos ≈ 0 is what a misread weight produces: dropped scales give it only through many layers
({'reproduced above' if reproduced else 'not reproduced here'}), a layout fault (nibble order, major order) already at one
layer or MLP. By their times, {seed_levels_text(thor_nvfp4_floor_ms)}. The seed's log line shows a precision setting
ignored, not which of these happened. With
their scales and layout right, the same 4-bit codes give cos
{kept_cos:.3f} or better here and NVIDIA reaches {quoted('nvidia_thor_nvfp4_cos')} on Thor. It held
for the seed's toolchain at the time, not for 4-bit arithmetic.

**"cuBLAS INT8 gives no speedup (torch._int_mm {quoted('quantlib_torch_int_mm_speed_ratio')}×)" — {verdict('not testable here')}** on Thor; on {device_name} the bare kernel
runs at {fmt(1 / i8_hi if i8_hi else None)}× the speed of bf16 at {hi} tokens. torchao's INT8 / INT4 results:
{'not re-run (torchao absent)' if tao is None else 'see the torchao table (uncompiled: host overhead, so no verdict rests on it)'}."""
