"""A latency model of the pi0.5 pipeline, fitted on the unmodified model's measurements, and
the floor arithmetic of the fewest bytes and FLOPs.

The curve model below only RESCALES one device's measured stages (steps and layers of a
CUDA-graph replay, token counts inside the measured range): it checks that the roads' costs
add up on that device and says nothing about another. The model that is tested across
devices and on Thor's published figures is the per-kernel model (`kernel_model`, fitted in
`thor_fit`). The floors here (`floor_table`) are the fewest bytes and FLOPs of each stage.

The model (`fit`, `LatencyModel.predict`)
-----------------------------------------
Four stage costs, each measured on the *unmodified* model (same depth, bf16, CUDA graphs):

``vision(n)``    the vision stage against n = views x tokens per image, piecewise linear through
                 the calibration points and extrapolated along the end segments;
``prefill(T)``   the L0-layer prefill against prefix tokens T (one layer: prefill(T) / L0);
``step(T)``      one denoise step (the N0-step denoise / N0) against prefix tokens T (one
                 expert layer: step(T) / L0);
``glue``         the whole call minus the sum of its three stages at the reference configuration.

A configuration with V views of p tokens, L text tokens, N steps and L' layers is predicted as

    vision(V p) + L'/L0 prefill(V p + L) + N L'/L0 step(V p + L) + glue.

FP8 (`with_fp8`): the prefill's matmul part f (the share of the prefill spent in its layer's
projection GEMMs, from per-op timings) is divided by r, the measured FP8/bf16 speed ratio of
those GEMMs as `pi05perf.precision.FP8Linear` runs them (activation quantization included):
prefill' = prefill x (1 - f + f / r).

What the model assumes, and the modified-model measurements test: a layer costs the same
whatever the depth; denoise time is linear in steps with no fixed part; vision time depends
on the total image tokens only; every non-layer cost is either in a stage curve or in glue.

The floors (`floor_table`)
--------------------------
Each stage's floor from `flops.pipeline_cost`: FLOPs over the dense bf16 or FP8 rate, or the
fewest bytes an implementation must move over the bandwidth, whichever is larger (weights read
once per call, per step for the expert, whose adaRMS modulations and time MLP are excluded
because a fixed schedule makes them constants; the K/V cache written by the prefix and read by
every step). Projections to Thor live in `kernel_model`/`thor_fit`, tested on held-out anchors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd

from .config import (GEMMA_2B, GEMMA_300M, SIGLIP_SO400M, Hardware, TokenBudget,
                     TransformerConfig)


# ----------------------------------------------------------------------------- stage curves
@dataclass(frozen=True)
class Curve:
    """y(x) piecewise linear through the points, extrapolated along the first or last segment;
    through the origin when there is a single point."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.x or len(self.x) != len(self.y):
            raise ValueError("a curve needs one y per x and at least one point")
        if any(b <= a for a, b in zip(self.x, self.x[1:])):
            raise ValueError(f"x must be strictly increasing, got {self.x}")

    @classmethod
    def from_points(cls, xs: Sequence[float], ys: Sequence[float]) -> "Curve":
        pts: dict[float, list[float]] = {}
        for a, b in zip(xs, ys):
            pts.setdefault(float(a), []).append(float(b))
        keys = sorted(pts)
        return cls(tuple(keys), tuple(float(np.median(pts[k])) for k in keys))

    def __call__(self, v: float) -> float:
        x, y = self.x, self.y
        if len(x) == 1:
            return y[0] * v / x[0]
        if v <= x[0]:
            i = 0
        elif v >= x[-1]:
            i = len(x) - 2
        else:
            return float(np.interp(v, x, y))
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        return y[i] + slope * (v - x[i])


@dataclass(frozen=True)
class LatencyModel:
    vision: Curve  #: vision stage ms vs total image tokens
    prefill: Curve  #: prefill ms (all `layers`) vs prefix tokens
    step: Curve  #: one denoise step ms (all `layers`) vs prefix tokens
    layers: int
    glue_ms: float
    reference: dict[str, int] = field(default_factory=dict)
    fp8_matmul_share: float | None = None  #: f: share of the prefill in its projection GEMMs
    fp8_speedup: float | None = None  #: r: bf16 time / FP8 time of those GEMMs

    def predict(self, views: int, tokens_per_image: int, text_tokens: int, steps: int,
                layers: int | None = None, fp8: bool = False) -> dict[str, float]:
        """Predicted ms per stage and for the whole call."""
        L = self.layers if layers is None else layers
        img = views * tokens_per_image
        T = img + text_tokens
        vision = self.vision(img)
        prefill = self.prefill(T) * L / self.layers
        if fp8:
            if self.fp8_matmul_share is None or self.fp8_speedup is None:
                raise ValueError("no FP8 calibration: use with_fp8 first")
            f, r = self.fp8_matmul_share, self.fp8_speedup
            prefill *= (1 - f) + f / r
        denoise = steps * self.step(T) * L / self.layers
        return {"vision": vision, "prefill": prefill, "denoise": denoise,
                "whole": vision + prefill + denoise + self.glue_ms}

    def with_fp8(self, matmul_share: float, speedup: float) -> "LatencyModel":
        if not (0 < speedup and 0 <= matmul_share):
            raise ValueError(f"bad FP8 calibration: share {matmul_share}, speedup {speedup}")
        return replace(self, fp8_matmul_share=min(1.0, matmul_share), fp8_speedup=speedup)


def fit(calibration: pd.DataFrame) -> LatencyModel:
    """Fit on rows of `pipeline_bench` measurements of one unmodified model (columns stage,
    views, tokens_per_image, prefix_tokens, steps, layers, median_ms). The whole call must
    have been measured at one configuration whose three stages were measured too: that is
    the reference (glue = whole - stages there)."""
    df = calibration
    layers = df.layers.unique()
    if len(layers) != 1:
        raise ValueError(f"calibrate on one depth, got layers {sorted(layers)}")
    need = {"vision", "prefill", "denoise", "whole"}
    if not need <= set(df.stage):
        raise ValueError(f"calibration needs stages {sorted(need)}, has {sorted(set(df.stage))}")
    vis = df[df.stage == "vision"]
    pre = df[df.stage == "prefill"]
    den = df[df.stage == "denoise"]
    model = LatencyModel(
        vision=Curve.from_points(vis.views * vis.tokens_per_image, vis.median_ms),
        prefill=Curve.from_points(pre.prefix_tokens, pre.median_ms),
        step=Curve.from_points(den.prefix_tokens, den.median_ms / den.steps),
        layers=int(layers[0]), glue_ms=0.0)
    key = ["views", "tokens_per_image", "text_tokens", "steps", "horizon"]
    for _, w in df[df.stage == "whole"].iterrows():
        same = (df[key] == w[key]).all(axis=1)
        stages = {s: df[same & (df.stage == s)].median_ms for s in ("vision", "prefill", "denoise")}
        if all(len(v) for v in stages.values()):
            glue = w.median_ms - sum(float(v.iloc[0]) for v in stages.values())
            ref = {k: int(w[k]) for k in key}
            return replace(model, glue_ms=float(glue), reference=ref)
    raise ValueError("calibration needs the whole call and its three stages at one configuration")


def prediction_table(model: LatencyModel, measured: pd.DataFrame) -> pd.DataFrame:
    """For each measured (test, stage) row -- columns test, stage, views, tokens_per_image,
    text_tokens, steps, layers, fp8, median_ms, p25_ms, p75_ms -- the model's prediction, the
    error in percent, and whether the error is inside the measurement's IQR (noise)."""
    rows = []
    for _, r in measured.iterrows():
        p = model.predict(int(r.views), int(r.tokens_per_image), int(r.text_tokens), int(r.steps),
                          int(r.layers), bool(r.get("fp8", False)))[r.stage]
        err = p - r.median_ms
        rows.append({**r.to_dict(), "predicted_ms": p, "error_ms": err,
                     "error_pct": 100 * err / r.median_ms,
                     "within_iqr": r.p25_ms <= p <= r.p75_ms})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- FP8 calibration
def projection_gemms(cfg: TransformerConfig, tokens: int) -> dict[str, tuple[int, int, int]]:
    """(M, N, K) of one Gemma layer's projections with fused q/k/v and gate/up."""
    return {"qkv_proj": (tokens, cfg.q_dim + 2 * cfg.kv_dim, cfg.width),
            "o_proj": (tokens, cfg.width, cfg.q_dim),
            "gate_up_proj": (tokens, 2 * cfg.mlp_dim, cfg.width),
            "down_proj": (tokens, cfg.width, cfg.mlp_dim)}


def fp8_gemm_costs(cfg: TransformerConfig, tokens: int, device, repeats: int,
                   backend: str = "native") -> pd.DataFrame:
    """Each projection of one layer timed as a bf16 nn.Linear and as `precision.FP8Linear`
    (per-tensor E4M3; activation quantization included), each as a CUDA graph replay on the
    GPU; both checked against fp32 first. Columns gemm, M, N, K, bf16_ms, fp8_ms, rel_err."""
    import torch
    import torch.nn as nn

    from .check import relative_error
    from .prefill_bench import exact_fp32
    from .precision import quantize_linear
    from .timing import time_fn

    rows = []
    g = torch.Generator(device=device).manual_seed(7)
    for name, (M, N, K) in projection_gemms(cfg, tokens).items():
        lin = nn.Linear(K, N, bias=False, device=device)
        with torch.no_grad():
            lin.weight.normal_(0, 1 / math.sqrt(K), generator=g)
        x = torch.randn(M, K, device=device, generator=g)
        with torch.no_grad(), exact_fp32():
            ref = lin(x)
        bf = nn.Linear(K, N, bias=False, device=device, dtype=torch.bfloat16)
        with torch.no_grad():
            bf.weight.copy_(lin.weight)
        q = quantize_linear(lin, "fp8_tensor", backend=backend)
        xb = x.to(torch.bfloat16)
        cuda = torch.device(device).type == "cuda"
        out = {}
        with torch.no_grad():
            for label, mod in (("bf16", bf), ("fp8", q)):
                err = relative_error(mod(xb), ref)
                if not err <= (2e-2 if label == "bf16" else 0.1):
                    raise AssertionError(f"{name} {label}: relative error {err:.2e} against fp32")
                t = time_fn(lambda: mod(xb), device, repeats, cuda_graph=cuda)
                out[label] = (t, err)
        rows.append({"gemm": name, "M": M, "N": N, "K": K, "bf16_ms": out["bf16"][0].median_ms,
                     "bf16_p25_ms": out["bf16"][0].p25_ms, "bf16_p75_ms": out["bf16"][0].p75_ms,
                     "fp8_ms": out["fp8"][0].median_ms, "fp8_p25_ms": out["fp8"][0].p25_ms,
                     "fp8_p75_ms": out["fp8"][0].p75_ms, "rel_err_fp8": out["fp8"][1]})
    return pd.DataFrame(rows)


def fp8_calibration(gemms: pd.DataFrame, prefill_ms: float, layers: int) -> tuple[float, float]:
    """(f, r): the share of the measured prefill spent in its projection GEMMs (per-op bf16
    times x layers / prefill), and the bf16/FP8 time ratio of those GEMMs."""
    bf = float(gemms.bf16_ms.sum())
    return layers * bf / prefill_ms, bf / float(gemms.fp8_ms.sum())


def ratio_words(ratio: float, digits: int = 2) -> str:
    """A time ratio (old time / new time) in words, by its direction: 0.53 -> '1.88× slower',
    1.25 -> '1.25× faster'; 'as fast' when it rounds to 1 at `digits`."""
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"a time ratio must be positive and finite, got {ratio}")
    x = ratio if ratio >= 1 else 1 / ratio
    if round(x, digits) == 1:
        return "as fast"
    return f"{x:.{digits}f}× {'faster' if ratio > 1 else 'slower'}"


def fp8_contrast(devices: dict[str, dict[str, float | None]]) -> pd.DataFrame:
    """Per device (name -> {'ch08_ratio': bf16 / FP8 whole-call time of chapter 8's FP8 path,
    'ch07_fp8_ms', 'ch07_bf16_ms': chapter 7's fastest FP8 call and best bf16 call}): both
    ratios as bf16 time / FP8 time with their direction in words; a missing figure is None.
    Columns are display names (units in the name)."""
    cols = ["device", "chapter 8 FP8 (LLM only, dynamic scales): bf16 time / FP8 time (×)", "chapter 8 FP8 is",
            "chapter 7 fastest FP8: bf16 time / FP8 time (×)", "chapter 7 FP8 is"]
    rows = []
    for name, v in devices.items():
        r8 = v.get("ch08_ratio")
        f7, b7 = v.get("ch07_fp8_ms"), v.get("ch07_bf16_ms")
        r7 = b7 / f7 if f7 and b7 else None
        rows.append(dict(zip(cols, [name, r8, ratio_words(r8) if r8 else None, r7, ratio_words(r7) if r7 else None])))
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- floors, Thor
@dataclass(frozen=True)
class Scenario:
    """One configuration projected: camera views, text tokens, Euler steps, action horizon,
    layers of the LLM and the expert, and the number format (bf16, or fp8 for every weight
    and activation)."""

    name: str
    views: int = 2
    text_tokens: int = 200
    steps: int = 10
    horizon: int = 10
    layers: int = 18
    fp8: bool = False


def floor_table(s: Scenario, hardware: Hardware) -> pd.DataFrame:
    """Per stage: FLOPs, the fewest bytes, compute/memory/floor ms on `hardware` (bf16 rate,
    or `hardware.fp8_tflops` and 1-byte values for an fp8 scenario)."""
    b = 1 if s.fp8 else 2
    tflops = hardware.fp8_tflops if s.fp8 else hardware.bf16_tflops
    if tflops is None:
        raise ValueError(f"{hardware.name} has no FP8 rate")
    llm, exp = GEMMA_2B.with_depth(s.layers), GEMMA_300M.with_depth(s.layers)
    budget = TokenBudget(s.views, s.text_tokens, s.horizon)
    cost = pipeline_cost_rows(budget, s.steps, b, llm, exp)
    T, We = budget.prefix_tokens, exp.width
    mods = (2 * exp.depth + 1) * (3 * We * We + 3 * We) + 2 * (We * We + We)  # adaRMS modulations + time MLP
    kv_reads = exp.depth * 2 * T * exp.kv_dim
    rows = []
    for _, r in cost.iterrows():
        nbytes = r.weight_bytes + r.kv_bytes
        if r.stage == "denoise":
            nbytes += s.steps * (kv_reads - mods) * b
        compute = r.flops / (tflops * 1e12) * 1e3
        memory = nbytes / (hardware.bandwidth_gbps * 1e9) * 1e3
        rows.append({"scenario": s.name, "stage": r.stage, "flops": r.flops, "floor_bytes": nbytes,
                     "compute_ms": compute, "memory_ms": memory, "floor_ms": max(compute, memory),
                     "bound": "memory" if memory > compute else "compute"})
    return pd.DataFrame(rows)


def pipeline_cost_rows(budget: TokenBudget, steps: int, dtype_bytes: int, llm: TransformerConfig,
                       expert: TransformerConfig) -> pd.DataFrame:
    from .flops import pipeline_cost

    return pipeline_cost(budget, steps, dtype_bytes, llm_cfg=llm, expert_cfg=expert, vision_cfg=SIGLIP_SO400M)
