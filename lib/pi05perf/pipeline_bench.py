"""The whole pi0.5 inference, stage by stage: every path checked against float32, then timed.

One call is three stages, as in openpi's `sample_actions`:

``vision``   SigLIP over 1-3 camera images, plus the text embedding: the prefix embeddings.
``prefill``  the Gemma-2B pass over images + text (bidirectional) that writes every layer's K/V.
``denoise``  N Euler steps (t: 1 -> 0) of the action expert over the action horizon; each
             step's layer i attends to [prefix K/V of layer i, its own K/V].

Everything is built on `pi05perf.model.Pi05` with seeded random weights and a small vocabulary
(`VOCAB`: the embedding table is only gathered from, its size does not change latency).

Paths (`VARIANTS`); each is checked against the eager float32 model (TF32 off) on two fresh
random inputs before it is timed on a third -- actions, the actions' displacement from the
noise (the part the network computes), and where the stage has them the prefix embeddings and
the K/V cache:

==========================  ==============================================================
eager                       the model as written, in the run's dtype (bf16 on a GPU)
eager_fused                 fused q/k/v and gate/up projections + precomputed time conditioning
graph_denoise               eager_fused vision and prefill, one CUDA graph for the N steps
graph_no_precompute         fused projections, time MLP + adaRMS modulations recomputed every
                            step, one CUDA graph for the whole call (ablation)
graph                       eager_fused, one CUDA graph for the whole call
compile                     eager_fused with every transformer block torch.compile'd
                            ("regional": one compile per block kind, shared by all layers)
compile_graph               compile + one CUDA graph for the whole call
compile_autotune_graph      compile_graph with the expert's blocks in inductor's max-autotune
                            (Triton GEMM templates for the M = horizon GEMMs, epilogues fused)
compile_graph_splitkv       compile_graph with the expert's attention through the split-KV
                            Triton kernel (`kernels.decode_attention`, an opaque custom op)
fp8_graph                   graph with the LLM's projections in FP8 (`pi05perf.precision`,
                            per-tensor E4M3, dynamic activation scales)
fp8_all_graph               graph with every projection of SigLIP, the LLM and the expert in FP8
fp8_all_compile_graph       fp8_all_graph with every block compiled (as compile_graph)
fp8_static_compile_graph    fp8_all_compile_graph with static activation scales (calibrated once on
                            an input of its own, `precision.calibrate_static`: quantizing is then a
                            multiply and a cast the compiler fuses, not an amax per call) and the
                            expert's attention as in compile_graph_splitkv
==========================  ==============================================================

What each path is built from (the model, the time table, the Euler loop, the graphed call) is
`pi05perf.pipeline`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd
import torch

from .check import TOLERANCE, cosine, relative_error
from .model import Pi05
from .pipeline import Arch, Pipeline, Shape, TimeTable, build_pi05, compile_blocks, compiled_graph_count, shared_copy
from .prefill_bench import exact_fp32
from .timing import Graphed, standard_strides, time_fn
from .kernel_kinds import kernel_table
from .log import progress

#: variant -> (model kind, what is CUDA-graphed: None | "all" | "denoise")
VARIANTS: dict[str, tuple[str, str | None]] = {
    "eager": ("eager", None),
    "eager_fused": ("fast", None),
    "graph_denoise": ("fast", "denoise"),
    "graph_no_precompute": ("fused", "all"),
    "graph": ("fast", "all"),
    "compile": ("compiled", None),
    "compile_graph": ("compiled", "all"),
    "compile_autotune_graph": ("compiled_autotune", "all"),
    "compile_graph_splitkv": ("compiled_splitkv", "all"),
    "fp8_graph": ("fp8", "all"),
    "fp8_all_graph": ("fp8_all", "all"),
    "fp8_all_compile_graph": ("fp8_all_compiled", "all"),
    "fp8_static_compile_graph": ("fp8_static_compiled", "all"),
}
#: each FP8 path's bf16 counterpart: the same model, graph and attention in bf16
BF16_TWIN = {"fp8_graph": "graph", "fp8_all_graph": "graph", "fp8_all_compile_graph": "compile_graph",
             "fp8_static_compile_graph": "compile_graph_splitkv"}
SPLIT_KV_KINDS = ("compiled_splitkv", "fp8_static_compiled")  #: the expert attends through the Triton kernel
SPLIT_KV_VARIANTS = tuple(v for v, (kind, _) in VARIANTS.items() if kind in SPLIT_KV_KINDS)
CALIBRATION_SEED = 5_000  #: the input static FP8 scales are fitted on (the checks use others)
GRAPH_VARIANTS = tuple(v for v, (_, g) in VARIANTS.items() if g)
#: FP8 (per-tensor E4M3 weights and activations) is a different numeric format, not a
#: reordering of bf16 sums: it is held to a looser bound (relative L2 error against fp32).
FP8_TOLERANCE = 0.1


# ----------------------------------------------------------------------------- inputs, checks
def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return standard_strides(t.to(dtype)) if t.is_floating_point() else t


class Reference:
    """The eager float32 model (TF32 off): fresh random inputs for a stage and its reference
    outputs. Inputs are fp32 (ids int64); a variant casts what its stage consumes."""

    def __init__(self, a: Arch, device: torch.device, seed: int = 0):
        self.arch, self.device = a, torch.device(device)
        self.model = build_pi05(a, device, torch.float32, seed=seed)

    def inputs(self, stage: str, shape: Shape, seed: int) -> tuple[torch.Tensor, ...]:
        """Never zeros: images uniform in [-1, 1], N(0, 1) noise and prefix embeddings, K/V
        from the fp32 prefill of random embeddings, random token ids."""
        from .check import random_pi05_inputs

        g = torch.Generator().manual_seed(10_000 + seed)
        T = shape.prefix_tokens(self.arch)
        if stage in ("vision", "whole"):
            if shape.views < 1:
                raise ValueError(f"the {stage} stage needs at least one camera view")
            inp = random_pi05_inputs(self.model, 1, shape.views, shape.text_tokens, shape.horizon, seed,
                                     self.device)
            return ((inp["images"], inp["text_ids"]) if stage == "vision"
                    else (inp["images"], inp["text_ids"], inp["noise"]))
        prefix = torch.randn(1, T, self.arch.llm.width, generator=g).to(self.device)
        if stage == "prefill":
            return (prefix,)
        noise = torch.randn(1, shape.horizon, self.model.action_dim, generator=g).to(self.device)
        with torch.no_grad(), exact_fp32():
            kv = Pipeline(self.model, shape.steps).prefill(prefix)
        return (noise, *kv)

    def outputs(self, stage: str, shape: Shape, inputs: Sequence[torch.Tensor]) -> Any:
        with torch.no_grad(), exact_fp32():
            return Pipeline(self.model, shape.steps).stage(stage)(*inputs)


def named_outputs(stage: str, out: Any, inputs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """What is compared for each stage (all in fp32)."""
    if stage == "vision":
        return {"prefix": out.float()}
    if stage == "prefill":
        return {"kv": torch.cat([t.float().flatten() for t in out])}
    if stage == "denoise":
        return {"actions": out.float(), "displacement": out.float() - inputs[0].float()}
    actions, prefix, k_last = out
    return {"actions": actions.float(), "displacement": actions.float() - inputs[2].float(),
            "prefix": prefix.float(), "k_last": k_last.float()}


def compare(stage: str, out: Any, ref: Any, inputs: Sequence[torch.Tensor]) -> dict[str, float]:
    """Relative L2 error of each named output; and the cosine of the actions' displacement."""
    o, r = named_outputs(stage, out, inputs), named_outputs(stage, ref, inputs)
    errs = {f"rel_err_{k}": relative_error(o[k], r[k]) for k in r}
    key = "displacement" if "displacement" in r else next(iter(r))
    errs["cos_" + key] = cosine(o[key], r[key])
    if "actions" in r:
        errs["cos_actions"] = cosine(o["actions"], r["actions"])
    return errs


def _expert_split_kv(m: Pi05) -> Pi05:
    """`m` with the expert's attention through the split-KV kernel (`kernels.decode_attention`)."""
    from .kernels.decode_attention import attend_split_kv

    for layer in m.expert.layers:
        layer.attn.attend = attend_split_kv
    return m


# ----------------------------------------------------------------------------- the bench
class PipelineBench:
    """Models of one architecture (built lazily, weights shared where possible) and the fp32
    reference; `measure` checks one (variant, stage, shape) and times it.

    Model kinds: eager (unfused), fused, fast (fused + `TimeTable` for `step_counts`),
    compiled (fast with `compile_blocks`), fp8 (fast with the LLM's projections in FP8)."""

    def __init__(self, a: Arch, device: torch.device, dtype: torch.dtype, repeats: int,
                 step_counts: Sequence[int], *, eager_repeats: int | None = None,
                 compile_mode: str = "default", compile_backend: str = "inductor",
                 fp8_backend: str = "native", tolerance: float | None = None, log=progress):
        self.arch, self.device, self.dtype = a, torch.device(device), dtype
        self.repeats, self.eager_repeats = repeats, eager_repeats or repeats
        self.step_counts = tuple(sorted(set(step_counts)))
        self.compile_mode, self.compile_backend, self.fp8_backend = compile_mode, compile_backend, fp8_backend
        self.tolerance = TOLERANCE[dtype] if tolerance is None else tolerance
        self.log = log
        self.ref = Reference(a, device)
        self._models: dict[str, Pi05] = {}
        self._tables: dict[str, TimeTable] = {}
        self._refs: dict[tuple, list] = {}
        self.compile_graphs = 0
        self.failed: dict[str, str] = {}  #: variant -> the error that stopped it (`attempt`)
        self._reported: set[str] = set()
        self.last_callable: Callable[..., Any] | None = None

    # -- models
    def model(self, kind: str) -> Pi05:
        if kind in self._models:
            return self._models[kind]
        if kind == "eager":
            m = build_pi05(self.arch, self.device, self.dtype)
        elif kind == "fused":
            m = build_pi05(self.arch, self.device, self.dtype, fused=True)
        elif kind == "fast":
            m = shared_copy(self.model("fused"))
            self._tables[kind] = TimeTable(m, self.step_counts)
        elif kind == "compiled":
            m = compile_blocks(shared_copy(self.model("fast")), self.compile_mode, self.compile_backend)
            self._tables[kind] = self._tables["fast"]
        elif kind == "compiled_autotune":
            m = compile_blocks(shared_copy(self.model("fast")), self.compile_mode, self.compile_backend,
                               expert_mode="max-autotune-no-cudagraphs")
            self._tables[kind] = self._tables["fast"]
        elif kind == "compiled_splitkv":
            m = compile_blocks(_expert_split_kv(shared_copy(self.model("fast"))), self.compile_mode, self.compile_backend)
            self._tables[kind] = self._tables["fast"]
        elif kind == "fp8":
            from .precision import FULL_COVERAGE, quantize_model

            m = shared_copy(self.model("fast"))
            quantize_model(m.llm, "fp8_tensor", FULL_COVERAGE, backend=self.fp8_backend)
            self._tables[kind] = self._tables["fast"]
        elif kind in ("fp8_all", "fp8_static"):  # every projection of the three stacks (not the stems, not the time MLP)
            from .precision import FULL_COVERAGE, quantize_model

            m = shared_copy(self.model("fast"))
            act = {"act": "static"} if kind == "fp8_static" else {}
            for stack in (m.vision, m.llm, m.expert):
                quantize_model(stack, "fp8_tensor", lambda n: FULL_COVERAGE(n) or n.rsplit(".", 1)[-1] in ("fc1", "fc2"),
                               backend=self.fp8_backend, **act)
            self._tables[kind] = self._tables["fast"]
        elif kind == "fp8_all_compiled":
            m = compile_blocks(shared_copy(self.model("fp8_all")), self.compile_mode, self.compile_backend)
            self._tables[kind] = self._tables["fast"]
        elif kind == "fp8_static_compiled":  # built after `calibrate` (the copy keeps the calibrated flags)
            m = compile_blocks(_expert_split_kv(shared_copy(self.model("fp8_static"))), self.compile_mode,
                               self.compile_backend)
            self._tables[kind] = self._tables["fast"]
        else:
            raise ValueError(f"unknown model kind {kind!r}")
        self._models[kind] = m
        return m

    def pipeline(self, variant: str, steps: int) -> Pipeline:
        kind = VARIANTS[variant][0]
        m = self.model(kind)
        return Pipeline(m, steps, self._tables.get(kind))

    def release(self, *kinds: str) -> None:
        for k in kinds:
            self._models.pop(k, None)
            self._tables.pop(k, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- one variant, one stage, one shape
    def callable(self, variant: str, stage: str, shape: Shape, example: Sequence[torch.Tensor]):
        """The function to check and time (and the graphs it holds, to keep them alive)."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        graphed = VARIANTS[variant][1]
        if graphed and self.device.type != "cuda":
            raise RuntimeError(f"{variant}: CUDA graphs need a CUDA device, not {self.device}")
        if VARIANTS[variant][0].startswith("fp8_static"):
            self.calibrate(shape)
        pipe = self.pipeline(variant, shape.steps)
        if graphed == "all":
            return Graphed(pipe.stage(stage), example)
        if graphed == "denoise":
            if stage != "whole":
                raise ValueError(f"{variant} is defined for the whole call only")
            noise = example[2]
            with torch.no_grad():
                kv = pipe.prefill(pipe.vision(*example[:2]))
            den = Graphed(pipe.denoise, (noise, *kv))

            def call(images, text_ids, noise):
                prefix = pipe.vision(images, text_ids)
                kv = pipe.prefill(prefix)
                return den(noise, *kv), prefix, kv[-2]
            call.graph = den
            return call
        return pipe.stage(stage)

    def calibrate(self, shape: Shape) -> None:
        """Static FP8 activation scales (`precision.calibrate_static`), once: the uncompiled static
        model runs the whole call eagerly on the input of `CALIBRATION_SEED`, never one the checks
        or timings use."""
        from .precision import calibrate_static

        m = self.model("fp8_static")
        if getattr(m, "calibrated_on", None) is not None:
            return
        x = self.ref.inputs("whole", shape, CALIBRATION_SEED)
        with torch.no_grad():
            calibrate_static(m, lambda: Pipeline(m, shape.steps, self._tables["fp8_static"]).stage("whole")(*x))
        m.calibrated_on = shape

    def reference(self, stage: str, shape: Shape, n: int = 2) -> list[tuple]:
        key = (stage, shape)
        if key not in self._refs:
            base = 1 + 100 * len(self._refs)
            items = []
            for i in range(n):
                x = self.ref.inputs(stage, shape, base + i)
                items.append((x, self.ref.outputs(stage, shape, x)))
            self._refs[key] = items
        return self._refs[key]

    def measure(self, variant: str, stage: str, shape: Shape, repeats: int | None = None,
                tolerance: float | None = None) -> dict[str, Any]:
        """Check `variant` on two fresh inputs against fp32 (AssertionError if any output is
        off by more than the tolerance), then time it on a third input. One row."""
        if tolerance is None:
            tolerance = FP8_TOLERANCE if variant.startswith("fp8") else self.tolerance
        refs = self.reference(stage, shape)
        cast = self._caster(stage)
        before = compiled_graph_count()
        fn = self.callable(variant, stage, shape, cast(refs[0][0]))
        worst: dict[str, float] = {}
        with torch.no_grad():
            for x, ref in refs:
                out = fn(*cast(x))
                errs = compare(stage, out, ref, x)
                for k, v in errs.items():
                    worst[k] = (min if k.startswith("cos_") else max)(worst.get(k, v), v)
        bad = {k: v for k, v in worst.items() if k.startswith("rel_err_") and not v <= tolerance}
        where = f"{variant} / {stage} / {shape.describe(self.arch)}"
        if bad:
            raise AssertionError(f"{where}: relative error against fp32 above {tolerance:g}: "
                                 + ", ".join(f"{k[8:]} {v:.3e}" for k, v in bad.items()))
        if VARIANTS[variant][0] == "compiled":
            self.compile_graphs += compiled_graph_count() - before
        self.last_callable = fn  # what `kernel_table` profiles
        x = cast(self.ref.inputs(stage, shape, 9_999))
        reps = repeats or (self.repeats if VARIANTS[variant][1] else self.eager_repeats)
        with torch.no_grad():
            t = time_fn(lambda: fn(*x), self.device, reps)
        row = {"variant": variant, "stage": stage, **shape.describe(self.arch), **t.as_dict(),
               "max_rel_err": max(v for k, v in worst.items() if k.startswith("rel_err_")), **worst}
        self.log(f"  {variant:>20} {stage:>8} {shape.views}v {shape.steps:>2} steps H{shape.horizon} "
                 f"L{self.arch.layers}: {t.median_ms:8.3f} ms (IQR {t.p25_ms:.3f}-{t.p75_ms:.3f}), "
                 f"max rel err {row['max_rel_err']:.2e}")
        return row

    def _caster(self, stage: str):
        dtype = self.dtype

        def cast(xs):
            if stage in ("prefill", "denoise"):  # embeddings, K/V: the model's dtype (noise stays fp32)
                return tuple(x if (stage == "denoise" and i == 0) else _cast(x, dtype) for i, x in enumerate(xs))
            return tuple(xs)  # images and noise go in as fp32, as openpi feeds them
        return cast

    def measure_many(self, variant: str, stages: Sequence[str], shape: Shape, **kw) -> list[dict[str, Any]]:
        return [self.measure(variant, s, shape, **kw) for s in stages]

    def new_failures(self) -> str | None:
        """Markdown listing the failures not yet reported (None if there are none)."""
        new = {k: v for k, v in self.failed.items() if k not in self._reported}
        self._reported |= set(new)
        if not new:
            return None
        return ("**Paths that could not run here** (not timed, not in any comparison): "
                + "; ".join(f"`{k}` — {v}" for k, v in new.items()))

    def kernels(self, variant: str, stage: str, shape: Shape, runs: int = 3) -> pd.DataFrame:
        """`kernel_table` of one (variant, stage, shape) on a fresh random input, after the same
        check `measure` makes (a path that fails it is never profiled)."""
        self.measure(variant, stage, shape, repeats=1)
        fn, x = self.last_callable, self._caster(stage)(self.ref.inputs(stage, shape, 9_998))
        with torch.no_grad():
            return kernel_table(lambda: fn(*x), self.device, runs)

    def attempt(self, variant: str, stages: Sequence[str], shape: Shape, *, strict: bool = False,
                **kw) -> list[dict[str, Any]]:
        """`measure_many` for a path that may not run on this stack (a compile, capture or FP8
        error, or -- unless `strict` -- a failed check): the error is kept in `failed[variant]`
        for the page and later attempts of that variant are skipped. With `strict`, a wrong
        result (AssertionError) still stops the chapter."""
        if variant in self.failed:
            return []
        try:
            return self.measure_many(variant, stages, shape, **kw)
        except AssertionError as e:
            if strict:
                raise
            self.failed[variant] = f"failed its check against fp32: {str(e).splitlines()[0]}"[:400]
        except Exception as e:  # noqa: BLE001 - reported in the page, never hidden
            self.failed[variant] = error_line(e)[:400]
        self.log(f"!! {variant} could not run: {self.failed[variant]}")
        return []


def available_variants(device: torch.device, fp8: bool = False) -> list[str]:
    """Variants that can run on `device`: CUDA graphs need CUDA; fp8_graph needs FP8 matmuls;
    the split-KV kernel needs Triton there."""
    from .kernels import runnable
    from .precision import fp8_supported

    device = torch.device(device)
    out = [v for v, (_, g) in VARIANTS.items() if not g or device.type == "cuda"]
    if not runnable(device):
        out = [v for v in out if v not in SPLIT_KV_VARIANTS]
    if not (fp8 and fp8_supported(device)):
        out = [v for v in out if not v.startswith("fp8")]
    return out


def best(rows: pd.DataFrame, stage: str = "whole") -> pd.Series:
    """The fastest checked row of `stage` (rows that reached the table passed their check)."""
    sub = rows[rows.stage == stage]
    return sub.loc[sub.median_ms.idxmin()]


def speedup(slow: pd.Series, fast: pd.Series) -> tuple[float, float, float]:
    """Ratio of two timed rows' medians (slow / fast) and its spread: the ratio of the
    interquartile bounds that make it smallest and largest."""
    return (float(slow.median_ms / fast.median_ms), float(slow.p25_ms / fast.p75_ms),
            float(slow.p75_ms / fast.p25_ms))


def path_kind(variant: str) -> str:
    """What a path's timing measures: a path without a CUDA graph launches every kernel from
    Python, so its time is host overhead, not GPU behaviour, and stays out of GPU verdicts."""
    graphed = VARIANTS[variant][1]
    if graphed == "denoise":
        return "partly host overhead (vision, prefill eager)"
    return "GPU (CUDA graph)" if graphed else "host overhead (eager launches)"


def gpu_timed(variant: str) -> bool:
    """Whether a path's time is GPU behaviour (`path_kind` "GPU"): the whole call in one CUDA graph."""
    return VARIANTS[variant][1] == "all"


def error_line(e: BaseException) -> str:
    """An error for the page in one line: its type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def modulation_bytes(a: Arch, dtype_bytes: int = 2) -> dict[str, int]:
    """Weight bytes one denoise step reads in the expert: all of them, and those of the time
    MLP + adaRMS modulations that `TimeTable` makes constant."""
    from .flops import layer_ops, stem_ops

    W = a.expert.width
    layer = layer_ops(a.expert, 10, dtype_bytes=dtype_bytes)
    total = a.expert.depth * sum(o.weight_bytes for o in layer) + sum(o.weight_bytes for o in stem_ops(a.expert, 10, dtype_bytes))
    mod = a.expert.depth * sum(o.weight_bytes for o in layer if o.name.endswith("_mod"))
    mod += sum(o.weight_bytes for o in stem_ops(a.expert, 10, dtype_bytes) if o.name.endswith("_mod"))
    time_mlp = 2 * (W * W + W) * dtype_bytes
    return {"expert_step_weight_bytes": total + time_mlp, "precomputable_bytes": mod + time_mlp}
