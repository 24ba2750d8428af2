"""Fitting `kernel_model` to measurements: across two GPUs, and to published Thor figures
leave-one-out, then projecting Thor configurations with the spread of those fits.

Every Thor anchor is a quoted figure (`reference.quoted`) with the configuration it was
published for (`THOR_ANCHORS`, read from data/reference/thor_timings.csv: stack, stage, views,
the image slots the model encodes, prompt tokens, steps): each anchor is modelled at its own prefix
length (image slots x 256 + prompt tokens). A stack gives, per stage, the
precision, the fusion level and whether the expert's adaRMS modulations are precomputed:
what the publication says, or, where it says nothing, an assumption marked in `STACKS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from . import kernel_model as km
from .config import TOKENS_PER_IMAGE

if TYPE_CHECKING:
    from .config import Hardware, TransformerConfig

# ----------------------------------------------------------------------------- stacks, anchors
#: stack -> (description, {stage: (precision, fusion, precompute)}); "*" covers every stage
STACKS: dict[str, tuple[str, dict[str, tuple[str, str, bool]]]] = {
    "seed": ("the seed / TurboPi: TRT FP16 vision, PyTorch prefix with a TRT 'FP8' MLP that the seed says ran "
             "as FP16 (scales ignored), denoise as a CUDA graph", {"vision": ("bf16", "fused", False),
             "prefix": ("bf16", "eager", False), "denoise": ("bf16", "graph", False)}),
    "nvidia_compile": ("NVIDIA tutorial: PyTorch BF16 + torch.compile (no CUDA graphs assumed)",
                       {"*": ("bf16", "compiled", False)}),
    "nvidia_trt_fp8": ("NVIDIA tutorial: TensorRT FP8 engine", {"*": ("fp8", "fused", False)}),
    "nvidia_trt_nvfp4": ("NVIDIA tutorial: TensorRT FP8 + NVFP4 (MLP) engine", {"*": ("fp8+nvfp4", "fused", False)}),
    "flashrt_fp8": ("FlashRT FP8 (hand-written kernels)", {"*": ("fp8", "fused", True)}),
    "flashrt_nvfp4": ("FlashRT NVFP4 (README): NVFP4 only in the encoder (prefix) FFNs; SigLIP, attention and "
                      "the decoder FP8 (stated)", {"vision": ("fp8", "fused", True), "prefix": ("fp8+nvfp4", "fused", True),
                                                   "denoise": ("fp8", "fused", True)}),
    "flashrt_baseline": ("FlashRT's baseline engine: mlir-tensorrt + Myelin, FP8 with dynamic quantization at every "
                         "GEMM (stated; the quantization kernels are not modelled)", {"*": ("fp8", "fused", False)}),
    "host_as_shipped": ("a host as its authors ship it (eager, bf16 ASSUMED)", {"*": ("bf16", "eager", False)}),
    "flashrt_pypi": ("FlashRT on PyPI (precision not stated: FP8 ASSUMED)", {"*": ("fp8", "fused", True)}),
    "ours_best": ("chapter 7's best path: compiled + one CUDA graph, bf16", {"*": ("bf16", "compiled_graph", True)}),
    "fused_fp8_nvfp4": ("projection only: FP8 with NVFP4 MLP, fused, modulations precomputed",
                        {"*": ("fp8+nvfp4", "fused", True)}),
}


@dataclass(frozen=True)
class Anchor:
    key: str
    stack: str
    stage: str  # vision | prefix | denoise | whole
    views: int = 2  # camera views as published
    steps: int = 10
    note: str = ""
    image_slots: int = 2  # images the model encodes (openpi's pi05_libero: 3 slots for 2 cameras)
    text_tokens: int = 200  # prompt tokens of the prefix

    @property
    def prefix_tokens(self) -> int:
        return self.image_slots * TOKENS_PER_IMAGE + self.text_tokens


#: every published Thor timing of pi0.5 the model is fitted and tested on, with the configuration it
#: was published for: data/reference/thor_timings.csv (its precision and fusion columns restate
#: `STACKS` for the reader; tests/test_latency_model.py keeps the two in agreement)
THOR_TIMINGS = Path(__file__).resolve().parents[2] / "data" / "reference" / "thor_timings.csv"


def load_anchors(path: Path = THOR_TIMINGS) -> tuple[Anchor, ...]:
    df = pd.read_csv(path, keep_default_na=False)
    return tuple(Anchor(r.key, r.stack, r.stage, int(r.views), int(r.steps), r.note, int(r.image_slots),
                        int(r.text_tokens)) for r in df.itertuples())


THOR_ANCHORS: tuple[Anchor, ...] = load_anchors()


def stage_config(stack: str, stage: str, views: int = 2, steps: int = 10, layers: int = 18,
                 image_slots: int | None = None, text_tokens: int = 200) -> km.Config:
    """`stack`'s configuration of `stage`; the model encodes `image_slots` images (default: `views`)."""
    prec, fusion, pre = STACKS[stack][1].get(stage, STACKS[stack][1].get("*"))
    return km.Config(views=views if image_slots is None else image_slots, text_tokens=text_tokens, steps=steps,
                     layers=layers, precision=prec, fusion=fusion, precompute=pre)


@lru_cache(maxsize=None)
def _stage_kernels(stage: str, c: km.Config) -> tuple[km.Kernel, ...]:
    return tuple(km.stage_kernels(stage, c))


def stack_ms(stack: str, stage: str, dev: km.Device, p: km.Params, views: int = 2, steps: int = 10,
             layers: int = 18, image_slots: int | None = None, text_tokens: int = 200) -> float:
    """Predicted ms of `stage` (or 'whole': the sum of the three) of a stack."""
    stages = km.STAGES if stage == "whole" else (stage,)
    total = 0.0
    for s in stages:
        c = stage_config(stack, s, views, steps, layers, image_slots, text_tokens)
        host = bool(km.FUSION[c.fusion]["host"])
        t = sum(km.kernel_ms(k, dev, p, host)[2] * k.count for k in _stage_kernels(s, c))
        total += t * (steps if s == "denoise" else 1)
    return total


# ----------------------------------------------------------------------------- fitting
FREE = ("eff_compute", "eff_bw", "t_kernel_us", "t_launch_us")


def _to_params(x: np.ndarray, fixed: km.Params, free: Sequence[str]) -> km.Params:
    # efficiencies through a logistic (0, 1), times through exp (> 0): every parameter stays physical
    vals = fixed.as_dict()
    for name, v in zip(free, x):
        vals[name] = 1 / (1 + math.exp(-v)) if name.startswith("eff") else math.exp(v)
    return km.Params(**vals)


def _from_params(p: km.Params, free: Sequence[str]) -> np.ndarray:
    d = p.as_dict()
    return np.array([math.log(d[n] / (1 - d[n])) if n.startswith("eff") else math.log(d[n]) for n in free])


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, iters: int = 400, step: float = 0.7) -> np.ndarray:
    """A plain Nelder-Mead minimiser (no scipy in the book's environment)."""
    n = len(x0)
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    vals = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(vals)
        simplex, vals = [simplex[i] for i in order], [vals[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centroid + 2 * (centroid - simplex[-1])
            fe = f(xe)
            simplex[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            simplex[-1], vals[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(xc)
            if fc < vals[-1]:
                simplex[-1], vals[-1] = xc, fc
            else:  # shrink towards the best point
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (x - simplex[0]) for x in simplex[1:]]
                vals = [vals[0]] + [f(x) for x in simplex[1:]]
        if max(vals) - min(vals) < 1e-10:
            break
    return simplex[int(np.argmin(vals))]


def fit(predictors: Sequence[Callable[[km.Params], float]], observed: Sequence[float],
        free: Sequence[str] = FREE, start: km.Params | None = None) -> km.Params:
    """Parameters minimising the squared log errors of `predictors` against `observed` ms."""
    if not predictors:
        raise ValueError("nothing to fit on")
    start = start or km.Params()
    obs = np.log(np.asarray(observed, dtype=float))

    def loss(x: np.ndarray) -> float:
        p = _to_params(x, start, free)
        pred = np.log([max(fn(p), 1e-9) for fn in predictors])
        return float(np.sum((pred - obs) ** 2))

    return _to_params(nelder_mead(loss, _from_params(start, free)), start, free)


def leave_one_out(predictors: Sequence[Callable[[km.Params], float]], observed: Sequence[float],
                  free: Sequence[str] = FREE, fitter: Callable = None) -> list[tuple[km.Params, float]]:
    """For each i: (parameters fitted WITHOUT point i, the prediction of point i)."""
    fitter = fitter or fit
    out = []
    for i in range(len(predictors)):
        rest = [j for j in range(len(predictors)) if j != i]
        p = fitter([predictors[j] for j in rest], [observed[j] for j in rest], free)
        out.append((p, predictors[i](p)))
    return out


# ----------------------------------------------------------------------------- Thor
def thor_device(bandwidth_gbps: float, bf16_tflops: float, sms: int) -> km.Device:
    return km.Device("Jetson AGX Thor", bf16_tflops, bandwidth_gbps, sms)


def anchor_table(quoted: Callable[[str], float], anchors: Sequence[Anchor] = THOR_ANCHORS) -> pd.DataFrame:
    rows = [{"key": a.key, "stack": a.stack, "stage": a.stage, "views": a.views, "image_slots": a.image_slots,
             "text_tokens": a.text_tokens, "prefix_tokens": a.prefix_tokens, "steps": a.steps,
             "quoted_ms": quoted(a.key), "note": a.note} for a in anchors]
    return pd.DataFrame(rows)


def _anchor_ms(a, dev: km.Device, p: km.Params) -> float:
    """`stack_ms` of one row of `anchor_table`, at its own views, image slots, prompt and steps."""
    return stack_ms(a.stack, a.stage, dev, p, int(a.views), int(a.steps), image_slots=int(a.image_slots),
                    text_tokens=int(a.text_tokens))


def floors(anchors: pd.DataFrame, dev: km.Device) -> pd.Series:
    """Each anchor's floor on `dev`: every efficiency 1, no per-kernel cost."""
    ideal = km.Params(1.0, 1.0, 0.0, 0.0)
    return anchors.apply(lambda a: _anchor_ms(a, dev, ideal), axis=1)


def roofline_prefill_floor_ms(stack: str = "seed", hardware: "Hardware | None" = None) -> float:
    """The roofline floor of the WORK of `stack`'s prefix stage, as chapter 1 computes it
    (`flops.bound_table`: the LLM's FLOPs and fewest bytes at the stage's prefix tokens, on
    Thor's spec ceilings by default). Not `floors`, the kernel model's floor of the stack's own
    kernels (an unfused stack's intermediate bytes and partial waves included), which is higher."""
    from . import flops
    from .config import GEMMA_2B, THOR_SPEC

    c = stage_config(stack, "prefix")
    table = flops.bound_table(GEMMA_2B.with_depth(c.layers), c.prefix_tokens, [hardware or THOR_SPEC])
    return float(table.floor_ms.iloc[0])


def work_floor_ms(a, hardware: "Hardware") -> float:
    """The roofline floor of the WORK of anchor `a` (a row of `anchor_table`: its stage, image slots,
    prompt, steps) on `hardware`, counted as chapters 1 and 2 count it (`flops.pipeline_cost`'s
    floor: weights once per call of a stage, the K/V cache, each stage's input and output), at the
    anchor's stated precision (`STACKS`): every byte at its weight width and its FLOPs at that
    precision's peak (`peers.PRECISIONS`), so a lower floor than the work in bf16. Unlike `floors`
    it assumes nothing about how a stack fuses its kernels."""
    from .config import TokenBudget
    from .flops import pipeline_cost
    from .peers import PRECISIONS, precision_class

    budget = TokenBudget(num_images=int(a.image_slots), text_tokens=int(a.text_tokens))
    cost = pipeline_cost(budget, int(a.steps)).set_index("stage")
    total = 0.0
    for stage in (km.STAGES if a.stage == "whole" else (a.stage,)):
        wb, col, factor = PRECISIONS[precision_class(stage_config(a.stack, stage).precision)]
        peak = (hardware.fp8_tflops if col.startswith("fp8") else hardware.bf16_tflops) * factor
        r = cost.loc[stage]
        total += max(r.flops / (peak * 1e12), r.floor_bytes * wb / 2.0 / (hardware.bandwidth_gbps * 1e9))
    return total * 1e3


#: a fitted compute efficiency above this sits at the logistic's bound of 1: no anchor pins it
PINNED_EFF = 0.98
#: the seed's prefix anchor (its 10-step pipeline's KV-cache prefill)
SEED_PREFIX = "pipeline_baseline_kv_ms"
#: how far a timed op's traffic rate may sit from the bandwidth the board copies at and still be "about" it
TRAFFIC_TOL = 0.2


def traffic_reading(gbps: float, copy_gbps: float, tol: float = TRAFFIC_TOL) -> str:
    """Where an op's traffic rate (`flops.ops_traffic` bytes over its time) sits against the bandwidth
    the board copies at: "above", "about" (within `tol`) or "below" it."""
    return "above" if gbps > (1 + tol) * copy_gbps else "below" if gbps < (1 - tol) * copy_gbps else "about"


def traffic_limit_words(reading: str) -> str:
    """What the whole MLP's `traffic_reading` says about its limit: below the copy rate its bytes do
    not explain its time; about or above it, bandwidth and matmul efficiency both account for it."""
    if reading == "below":
        return ("Even with its activations counted it moved less than the board copies at, so its bytes do not explain "
                "its time; the matmuls' efficiency at these shapes (chapter 3) is the likelier limit.")
    return ("**The seed's timing cannot separate the two limits**: an unfused MLP moving its bytes at the bandwidth the "
            "board copies at and matmuls far from their peak both account for it; a kernel profile on Thor would tell "
            "them apart.")


def seed_fit_words(fit: dict | None) -> str:
    """Chapter 8's fit of the seed's prefix anchor in words (`fit`: fitted_ms, quoted_ms and, where
    known, eff_bw, eff_compute, spec_gbps; `seed_prefix_fit` or chapter 8's saved figures); empty without one."""
    if not fit or fit.get("fitted_ms") is None:
        return ""
    fusion = STACKS["seed"][1]["prefix"][1]
    text = (f" Chapter 8's kernel model, its Thor parameters fitted to the quoted Thor timings, puts the seed's prefix, "
            f"modelled as an {fusion} bf16 stack (every intermediate through DRAM), at {fit['fitted_ms']:.1f} ms against "
            f"{fit['quoted_ms']:g} ms quoted")
    if fit.get("eff_bw") is not None and fit.get("spec_gbps"):
        text += f", at {fit['eff_bw'] * fit['spec_gbps']:.0f} GB/s"
    eff = fit.get("eff_compute")
    if eff is not None:
        text += (" with its matmuls at full rate (the compute efficiency sits at its upper bound: no anchor pins it), so "
                 "it reads the time as bytes and kernel costs, one of the two readings, not a test between them"
                 if eff > PINNED_EFF else f" with its matmuls at {eff:.0%} of the bf16 peak")
    return text + ": a fit, not a measurement."


def seed_mlp_text(mlp_ms: float, seed_gbps: float, bf16_tflops: float, cfg: "TransformerConfig", tokens: int,
                  fit: dict | None = None) -> str:
    """What the seed's timed MLP (`mlp_ms` at `tokens`, run unfused) says about its limit: its bytes
    (`flops.ops_traffic`, weights and activations) and FLOPs over the time, against the bandwidth the seed
    copied at (`seed_gbps`, `traffic_reading`) and Thor's bf16 peak; then `seed_fit_words(fit)`."""
    from .flops import ops_traffic

    m, sec = ops_traffic(cfg, tokens), mlp_ms * 1e-3
    w_gbps, all_gbps, tflops = m["weight_bytes"] / sec / 1e9, m["bytes"] / sec / 1e9, m["flops"] / sec / 1e12
    reading = traffic_reading(all_gbps, seed_gbps)
    text = (f"More telling is the seed's own breakdown: the MLP took {mlp_ms:g} ms at {tokens} tokens. Its "
            f"{m['weight_bytes'] / 1e9:.2f} GB of weights alone give an effective {w_gbps:.0f} GB/s, but the seed ran the "
            "MLP unfused (its breakdown times the gate and up projections with their activation apart from the down "
            "projection), so the activations travel through DRAM too: the gate and up outputs written and read back by "
            "the activation kernel, its product written and read by the down projection, the MLP's input and output: "
            f"{m['activation_bytes'] / 1e9:.2f} GB more, {m['bytes'] / 1e9:.2f} GB in all over {cfg.depth} layers (as "
            f"chapter 1's op table counts them). That is **{all_gbps:.0f} GB/s**, {reading} the {seed_gbps:g} GB/s "
            f"the seed copied at, while the same matmuls ran at {tflops:.0f} of {bf16_tflops:.0f} TFLOP/s. ")
    return text + traffic_limit_words(reading) + seed_fit_words(fit)


def seed_prefix_fit(quoted: Callable[[str], float], dev: km.Device) -> dict | None:
    """Chapter 8's full fit on Thor `dev`, recomputed (arithmetic on quoted figures): on the anchors
    `fit_set` keeps, the seed's prefix anchor's fitted_ms and quoted_ms, and the fit's eff_bw,
    eff_compute and spec_gbps, for `seed_fit_words`. None where that anchor is not in the fit."""
    used = fit_set(anchor_table(quoted), dev)
    hit = used[used.key == SEED_PREFIX]
    if hit.empty:
        return None
    p = full_fit(used, dev)
    return {"fitted_ms": _anchor_ms(hit.iloc[0], dev, p), "quoted_ms": float(hit.quoted_ms.iloc[0]),
            "spec_gbps": dev.bandwidth_gbps, "eff_bw": p.eff_bw, "eff_compute": p.eff_compute}


def fit_set(anchors: pd.DataFrame, dev: km.Device) -> pd.DataFrame:
    """The anchors the Thor fit uses: those not faster than the kernel model's floor on `dev`'s spec
    (`floors`); a faster one is inconsistent as labelled."""
    return anchors[anchors.quoted_ms >= floors(anchors, dev)].reset_index(drop=True)


def full_fit(anchors: pd.DataFrame, dev: km.Device) -> km.Params:
    """The parameters fitted on every anchor of `anchors`."""
    return fit(thor_predictors(anchors, dev), anchors.quoted_ms.tolist())


def thor_predictors(anchors: pd.DataFrame, dev: km.Device) -> list[Callable[[km.Params], float]]:
    return [(lambda p, a=a: _anchor_ms(a, dev, p)) for a in anchors.itertuples()]


def thor_leave_one_out(anchors: pd.DataFrame, dev: km.Device) -> tuple[km.Params, pd.DataFrame, list[km.Params]]:
    """Fit on every anchor (the full fit) and leave-one-out; returns the full fit, the table of
    held-out predictions (heldout_ms, error_pct) and the parameters of every held-out fit."""
    preds = thor_predictors(anchors, dev)
    full = full_fit(anchors, dev)
    loo = leave_one_out(preds, anchors.quoted_ms.tolist())
    out = anchors.copy()
    out["fitted_ms"] = [fn(full) for fn in preds]
    out["heldout_ms"] = [v for _, v in loo]
    out["error_pct"] = 100 * (out.heldout_ms / out.quoted_ms - 1)
    return full, out, [p for p, _ in loo]


def project(configs: Sequence[tuple[str, str, dict]], dev: km.Device, full: km.Params,
            spread: Sequence[km.Params], error_pct: float = 0.0) -> pd.DataFrame:
    """Per (name, stack, kwargs of `stack_ms`): the whole call with the full fit, and the
    lowest and highest over the leave-one-out fits, each widened by `error_pct` (the typical
    held-out error: the parameters' spread alone ignores what the model gets wrong)."""
    rows = []
    for name, stack, kw in configs:
        vals = [stack_ms(stack, "whole", dev, p, **kw) for p in spread]
        rows.append({"configuration": name, "projected_ms": stack_ms(stack, "whole", dev, full, **kw),
                     "low_ms": min(vals) * (1 - error_pct / 100), "high_ms": max(vals) * (1 + error_pct / 100)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- GPUs measured here
CH07_VARIANTS = {"graph": "graph", "compile_graph": "compiled_graph"}  # chapter 7 variant -> fusion
CH07_STAGES = {"vision": "vision", "prefill": "prefix", "denoise": "denoise"}


def gpu_device(slug: str, ch02_headline: dict, sms: int = 132) -> km.Device | None:
    """A GPU's ceilings from its chapter 2 results (the floor figures when present)."""
    h = ch02_headline or {}
    tf = h.get("floor_peak_bf16_tflops") or h.get("matmul_bf16_tflops")
    bw = h.get("floor_copy_gbps") or h.get("copy_gbps")
    if not tf or not bw:
        return None
    return km.Device(slug, float(tf), float(bw), sms)


def gpu_stage_rows(ch07_rows: Sequence[dict]) -> pd.DataFrame:
    """Chapter 7's timed stages of the graph paths, as (fusion, stage, views, steps, ...)."""
    df = pd.DataFrame(list(ch07_rows or []))
    need = {"variant", "stage", "views", "steps", "median_ms"}
    if df.empty or not need <= set(df.columns):
        return pd.DataFrame(columns=["fusion", "stage", "views", "steps", "text_tokens", "horizon", "layers", "median_ms"])
    df = df[df.variant.isin(CH07_VARIANTS) & df.stage.isin(CH07_STAGES) & df.median_ms.notna()].copy()
    df["fusion"] = df.variant.map(CH07_VARIANTS)
    df["stage"] = df.stage.map(CH07_STAGES)
    for col, default in (("text_tokens", 200), ("horizon", 10), ("layers", 18)):
        df[col] = df[col].fillna(default) if col in df else default
    df = df.dropna(subset=["views", "steps"])
    df = df[df.views > 0]
    if "tokens_per_image" in df:  # the model's vision stage is the 224 px, 256-token image
        df = df[df.tokens_per_image.fillna(TOKENS_PER_IMAGE) == TOKENS_PER_IMAGE]
    return df[["fusion", "stage", "views", "steps", "text_tokens", "horizon", "layers", "median_ms"]].reset_index(drop=True)


def gpu_predictors(rows: pd.DataFrame, dev: km.Device) -> list[Callable[[km.Params], float]]:
    def one(r):
        c = km.Config(views=int(r.views), text_tokens=int(r.text_tokens), steps=int(r.steps), horizon=int(r.horizon),
                      layers=int(r.layers), precision="bf16", fusion=r.fusion, precompute=True)
        return lambda p: km.stage_ms(r.stage, c, dev, p)
    return [one(r) for r in rows.itertuples()]


GPU_FREE = ("eff_compute", "eff_bw", "t_kernel_us")  # graphs: no host launch to fit


def cross_device(a_rows: pd.DataFrame, a_dev: km.Device, b_rows: pd.DataFrame, b_dev: km.Device) -> tuple[km.Params, pd.DataFrame]:
    """Fit on device a's stages, predict device b's with b's ceilings: per row, error_pct."""
    p = fit(gpu_predictors(a_rows, a_dev), a_rows.median_ms.tolist(), GPU_FREE)
    out = b_rows.copy()
    out["predicted_ms"] = [fn(p) for fn in gpu_predictors(b_rows, b_dev)]
    out["error_pct"] = 100 * (out.predicted_ms / out.median_ms - 1)
    return p, out


def committed_gpus(load_all: Callable[[str], list[dict]]) -> dict[str, tuple[km.Device, pd.DataFrame]]:
    """slug -> (ceilings, chapter 7 stage rows) of every committed GPU run with chapters 2 and 7
    (`load_all` is `results.load_all`)."""
    ch02 = {d["slug"]: d.get("headline") for d in load_all("ch02_roofline") if d.get("source") == "committed"}
    out = {}
    for d in load_all("ch07_pipeline"):
        if d.get("source") != "committed" or d["slug"] not in ch02:
            continue
        sms = int((d.get("provenance") or {}).get("sm_count") or 132)  # older runs: H100/H200, 132 SMs
        dev, rows = gpu_device(d["slug"], ch02[d["slug"]], sms), gpu_stage_rows(d.get("rows"))
        if dev is not None and len(rows) >= 4:
            out[d["slug"]] = (dev, rows)
    return out


def path_label(fusion: str, views: int, steps: int, horizon: int) -> str:
    """A chapter 7 path in words, e.g. 'graph, 2 views, 10 steps, horizon 50'."""
    v, n, h = int(views), int(steps), int(horizon)
    return f"{fusion}, {v} view{'s' if v != 1 else ''}, {n} step{'s' if n != 1 else ''}, horizon {h}"


def cross_table(gpus: dict[str, tuple[km.Device, pd.DataFrame]]) -> pd.DataFrame:
    """Every ordered pair of GPUs: fitted on the first, predicting the second (column
    `direction`); with one GPU, each of its stages held out of its own fit instead."""
    names, parts = sorted(gpus), []
    for a in names:
        for b in names:
            if a != b:
                _, t = cross_device(gpus[a][1], gpus[a][0], gpus[b][1], gpus[b][0])
                parts.append(t.assign(direction=f"{a} → {b}"))
    if len(names) == 1:
        dev, rows = gpus[names[0]]
        loo = leave_one_out(gpu_predictors(rows, dev), rows.median_ms.tolist(), GPU_FREE)
        pred = [v for _, v in loo]
        parts.append(rows.assign(predicted_ms=pred, direction=f"{names[0]}, held out",
                                 error_pct=[100 * (v / m - 1) for v, m in zip(pred, rows.median_ms)]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def count_gap_text(assumed: int, counted: list[tuple[str, float]]) -> str:
    """How the model's assumed kernels per denoise step (`kernel_counts`, compiled_graph) compare
    with the counts chapter 7's profiler made on its compiled, graphed path ((device slug, count)
    pairs), and what a gap means for the fit."""
    gaps = ", ".join(f"{abs(100 * (assumed / n - 1)):.0f}% {'below' if assumed < n else 'above'} the count on {s}"
                     for s, n in counted)
    return (f"The compiled_graph assumption ({assumed}) is {gaps}. The per-layer counts are assumed, not fitted: where a stack "
            "runs more kernels than assumed, the fitted per-kernel cost t_k takes up the difference only in part, "
            "since one t_k serves every stack, whatever its fusion level; the fitted t_k is per *assumed* kernel.")


def kernel_counts(c: km.Config) -> dict[str, int]:
    """Kernels per call of each stage (denoise: per step) that the model assumes for `c`."""
    return {s: sum(k.count for k in km.stage_kernels(s, c)) for s in km.STAGES}
