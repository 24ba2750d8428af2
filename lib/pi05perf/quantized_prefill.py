"""The quantized prefill (chapters 4 and 5): the 18-layer prefill with some projections quantized
(FP8, INT8, INT4, ...), eager or compiled, checked against the float32 model (TF32 off) on fresh
random inputs, timed (medians and IQR, `timing.time_fn`), and its accuracy measured against the
unquantized model: final hidden state and the whole KV cache.

Built on `prefill_bench` and `precision`. The floors per precision, the memory-bound FP8 test and
TensorRT are in `precision_bench`; the 4-bit benchmarks (faults, the low-bit matmul sweep) in
`lowbit_bench`.

Variants are named by a spec string, "<scheme>[/<coverage>][/fast_accum][/<scope>]":
scheme "base" (the unquantized model in the run's dtype) or a `precision` scheme (fp8_tensor,
fp8_channel, int8, int4wo, nvfp4_sim, each optionally "_noscale"); coverage mlp | attn | full
(default full); scope eager | layer | model | graph | layer_graph (default: the caller's). "layer" compiles one
Gemma layer with torch.compile and reuses it for all 18 (regional compilation: a fraction of
a whole-model compile's time); "model" compiles the whole prefill as chapter 3 did.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import pandas as pd
import torch
import torch.nn as nn

from . import precision as Q
from .check import TOLERANCE, cosine, relative_error
from .config import TransformerConfig
from .model import GemmaLM
from .prefill_bench import build_llm, check_and_time, exact_fp32, output_of
from .timing import Graphed, synchronize
from .log import progress

# Relative error of (final hidden, last layer's K) against the fp32 model that a variant must
# stay under before it is timed. A gate against broken kernels, not an accuracy claim: FP8
# E4M3 keeps 3 mantissa bits (about 3% per element), 4-bit formats about 10%; a dropped scale
# gives errors of 1 to 1e5, a wrong layout about sqrt(2).
GATE: dict[str, float] = {"fp8": 0.08, "int8": 0.05, "int4": 0.2, "nvfp4": 0.2}

COVERAGE: dict[str, Callable[[str], bool]] = {"mlp": Q.MLP_ONLY, "attn": Q.ATTN_ONLY, "full": Q.FULL_COVERAGE}
# graph: the whole prefill compiled, inside one CUDA graph; layer_graph: one compiled layer
# reused by all 18, the prefill inside one CUDA graph (compiled + graphed at a layer's compile cost)
SCOPES = ("eager", "layer", "model", "graph", "layer_graph")
_FLAGS = ("fast_accum",)


# ----------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    scheme: str  # "base" or one of precision.ALL_SCHEMES
    coverage: str  # "none" for base, else mlp | attn | full
    scope: str  # eager | layer | model
    fast_accum: bool = False

    @property
    def name(self) -> str:
        parts = [self.scheme] + ([self.coverage] if self.scheme != "base" else [])
        return "/".join(parts + (["fast_accum"] if self.fast_accum else []) + [self.scope])

    @property
    def family(self) -> str:
        s = self.scheme
        return ("base" if s == "base" else "fp8" if s.startswith("fp8") else "int8" if s.startswith("int8")
                else "int4" if s.startswith("int4") else "nvfp4")

    @property
    def scale_ignored(self) -> bool:
        return self.scheme.endswith(Q.NOSCALE)


def parse_variant(spec: str, scope: str = "layer") -> Variant:
    """'fp8_channel/full/fast_accum' -> Variant; `scope` is the default compile scope."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    parts = [p for p in spec.strip().split("/") if p]
    if not parts:
        raise ValueError("empty variant spec")
    scheme, coverage, fast = parts[0], None, False
    if scheme != "base" and scheme not in Q.ALL_SCHEMES:
        raise ValueError(f"variant {spec!r}: scheme must be 'base' or one of {Q.ALL_SCHEMES}")
    for p in parts[1:]:
        if p in COVERAGE:
            coverage = p
        elif p in SCOPES:
            scope = p
        elif p == "fast_accum":
            fast = True
        else:
            raise ValueError(f"variant {spec!r}: unknown part {p!r} (coverage {tuple(COVERAGE)}, "
                             f"scope {SCOPES}, flags {_FLAGS})")
    if scheme == "base":
        if coverage is not None or fast:
            raise ValueError(f"variant {spec!r}: 'base' is the unquantized model (no coverage, no flags)")
        coverage = "none"
    if fast and not scheme.startswith("fp8"):
        raise ValueError(f"variant {spec!r}: fast_accum applies to FP8 only")
    return Variant(scheme, coverage or "full", scope, fast)


def default_backend(device: torch.device) -> str:
    """"native" on CUDA (a kernel that fails raises: never a silent simulation), "auto" on CPU
    (CPU kernels where torch has them, else the exact simulation)."""
    return "native" if torch.device(device).type == "cuda" else "auto"


def build_variant(cfg: TransformerConfig, v: Variant, device: torch.device, dtype: torch.dtype,
                  backend: str | None = None, fused: bool = True, seed: int = 0, **opts) -> GemmaLM:
    """The seeded model of `prefill_bench.build_llm` with v's projections quantized from its
    fp32 weights (the same weights every variant and the references start from), then cast
    to `dtype` (quantized codes and scales keep their dtypes)."""
    if v.scheme == "base":
        return build_llm(cfg, device, dtype, fused=fused, seed=seed)
    model = build_llm(cfg, device, torch.float32, fused=fused, seed=seed)
    if v.fast_accum:
        opts["fast_accum"] = True
    backend = backend or default_backend(device)
    if v.family == "nvfp4":
        backend = "simulate"  # torch has no FP4 matmul: NVFP4 is always the exact simulation
    Q.quantize_model(model, v.scheme, COVERAGE[v.coverage], backend=backend, **opts)
    return model.to(dtype).eval().requires_grad_(False)


def kernels_used(model: nn.Module) -> set[str]:
    """{'native', 'simulate'} as run by the quantized layers' last eager forward."""
    return {m.backend_used or "not run" for m in model.modules() if isinstance(m, Q.QuantLinear)}


# ----------------------------------------------------------------------------- prefill outputs
PrefillOut = tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]


def prefill_callable(model: GemmaLM, scope: str, backend: str = "inductor") -> Callable[[torch.Tensor], PrefillOut]:
    """model.prefill as run in `scope`. Compiling resets Dynamo first, so each variant's
    compile starts clean (and stays under the recompile limit). `backend` is torch.compile's
    (tests pass "eager": Dynamo's tracing and guards without Inductor's code generation)."""
    if scope == "eager":
        return model.prefill
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    torch._dynamo.reset()
    if scope in ("layer", "layer_graph"):
        for layer in model.layers:
            layer.compile(backend=backend, fullgraph=True, dynamic=False)
        if scope == "layer_graph" and next(model.parameters()).is_cuda:
            return _graph_on_first_call(model.prefill)
        return model.prefill
    compiled = torch.compile(model.prefill, backend=backend, fullgraph=True, dynamic=False)
    if scope == "graph" and next(model.parameters()).is_cuda:
        return _graph_on_first_call(compiled)
    return compiled


def _graph_on_first_call(fn: Callable[[torch.Tensor], PrefillOut]) -> Callable[[torch.Tensor], PrefillOut]:
    """Capture `fn` in one CUDA graph at the first call's shape (timing.Graphed);
    later calls copy their input in and replay."""
    graphed: dict[tuple, Callable] = {}

    def call(x: torch.Tensor) -> PrefillOut:
        key = (tuple(x.shape), x.dtype)
        if key not in graphed:
            graphed[key] = Graphed(fn, [x])
        return graphed[key](x)
    return call


def flat(out: PrefillOut) -> torch.Tensor:
    """What prefill_bench.output_of returns: final hidden and the last layer's K, flattened."""
    hidden, kv = out
    return torch.cat([hidden.flatten(), kv[-1][0].flatten()])


def output_accuracy(out: PrefillOut, ref: PrefillOut, prefix: str = "") -> dict:
    """cos and relative error of the final hidden state and of the whole KV cache (every
    layer's K and V), plus the worst and the first / last layer's KV cosine."""
    (h, kv), (h0, kv0) = out, ref
    layer = [cosine(torch.cat([k.flatten(), v.flatten()]), torch.cat([k0.flatten(), v0.flatten()]))
             for (k, v), (k0, v0) in zip(kv, kv0)]
    cache = torch.cat([t.flatten() for pair in kv for t in pair])
    cache0 = torch.cat([t.flatten() for pair in kv0 for t in pair])
    return {f"{prefix}hidden_cos": cosine(h, h0), f"{prefix}hidden_rel_err": relative_error(h, h0),
            f"{prefix}kv_cos": cosine(cache, cache0), f"{prefix}kv_rel_err": relative_error(cache, cache0),
            f"{prefix}kv_cos_worst_layer": min(layer), f"{prefix}kv_cos_first_layer": layer[0],
            f"{prefix}kv_cos_last_layer": layer[-1]}


def layer_kv_cosines(out: PrefillOut, ref: PrefillOut) -> list[float]:
    return [cosine(torch.cat([k.flatten(), v.flatten()]), torch.cat([k0.flatten(), v0.flatten()]))
            for (k, v), (k0, v0) in zip(out[1], ref[1])]


def detach_outputs(out: PrefillOut) -> PrefillOut:
    hidden, kv = out
    return hidden.detach().clone(), [(k.detach().clone(), v.detach().clone()) for k, v in kv]


@dataclass
class References:
    """The fp32 model (TF32 off) as the gate before timing, and the unquantized model in the
    run's dtype plus fp32 outputs on one fixed fresh input for the accuracy columns."""
    cfg: TransformerConfig
    tokens: int
    device: torch.device
    dtype: torch.dtype
    fused: bool
    fp32_model: GemmaLM
    fp32_fn: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    fp32_out: PrefillOut
    base_out: PrefillOut
    make_input: Callable[[], torch.Tensor]


def references(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
               fused: bool = True, seed: int = 1234) -> References:
    gen = torch.Generator(device=device).manual_seed(seed)
    make_input = lambda: torch.randn(1, tokens, cfg.width, device=device, generator=gen)  # noqa: E731
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    with exact_fp32():
        ref_model = build_llm(cfg, device, torch.float32, fused=fused)
        with torch.no_grad():
            fp32_out = detach_outputs(ref_model.prefill(x))
    base = build_llm(cfg, device, dtype, fused=fused)
    with torch.no_grad():
        base_out = detach_outputs(base.prefill(x.to(dtype)))
    del base
    return References(cfg, tokens, device, dtype, fused, ref_model, output_of(ref_model), x, fp32_out, base_out,
                      make_input)


# ----------------------------------------------------------------------------- the variants, checked and timed
def quantized_prefill_variants(refs: References, repeats: int, specs: Iterable[str], scope: str = "layer",
                               backend: str | None = None, time_simulated: bool = False,
                               compile_backend: str = "inductor", log=progress) -> pd.DataFrame:
    """Each variant: build, one eager forward (which kernels ran: on CUDA every quantized layer
    must have run natively), compile in its scope (time to first output reported as
    compile_s), check against fp32 on two fresh inputs, time, and measure accuracy against the
    unquantized model ("_vs_base") and fp32 ("_vs_fp32") on one more fresh input.

    Variants whose layers ran the *simulation* (FP8 on a CPU) are checked and measured but
    not timed unless `time_simulated` (a simulation's time says nothing about a kernel).
    While a compiled variant is checked and timed, any recompilation raises: every layer
    reuses the one compiled graph, or the chapter stops."""
    cfg, device, dtype = refs.cfg, refs.device, refs.dtype
    rows = []
    for spec in specs:
        v = parse_variant(spec, scope)
        model = build_variant(cfg, v, device, dtype, backend, fused=refs.fused)
        with torch.no_grad():
            model.prefill(refs.make_input().to(dtype))
        used = kernels_used(model)
        if device.type == "cuda" and used - {"native"}:
            raise RuntimeError(f"{v.name}: quantized layers ran {used} on CUDA; every one must run its kernel")
        simulated = "simulate" in used
        pf = prefill_callable(model, v.scope, compile_backend)
        fn = lambda x, pf=pf: flat(pf(x))  # noqa: E731
        guard = torch._dynamo.config.patch(error_on_recompile=True) if v.scope != "eager" else contextlib.nullcontext()
        with guard:
            t0 = time.perf_counter()
            try:
                with torch.no_grad():
                    fn(refs.make_input().to(dtype))
            except Exception as e:
                if v.scope in ("layer", "layer_graph") and "ecompil" in f"{type(e).__name__} {e}":
                    raise RuntimeError(f"{v.name}: a Gemma layer recompiled instead of reusing layer 0's compiled graph, "
                                       "so the timing would mix compiled and recompiled (or eager) layers; rerun with "
                                       "compile scope 'model'") from e
                raise
            synchronize(device)
            first_s = time.perf_counter() - t0
            tol = TOLERANCE[dtype] if v.family == "base" else GATE[v.family]
            log(f"checking {'and timing ' if time_simulated or not simulated else ''}{v.name} ...")
            row = check_and_time(v.name, fn, refs.fp32_fn, refs.make_input, device, dtype,
                                 1 if simulated and not time_simulated else repeats, tol)
            with torch.no_grad():
                out = detach_outputs(pf(refs.x.to(dtype)))
        if simulated and not time_simulated:
            row.update(median_ms=math.nan, p25_ms=math.nan, p75_ms=math.nan, n=0,
                       method="not timed: simulated (no FP8 kernel on this device)")
        row.update(scheme=v.scheme, coverage=v.coverage, scope=v.scope, fast_accum=v.fast_accum,
                   kernels="simulated" if simulated else ("native" if used else "torch"),
                   compile_s=first_s if v.scope != "eager" else 0.0,
                   weight_bytes=Q.model_weight_bytes(model), tolerance=tol,
                   **output_accuracy(out, refs.base_out, "vs_base_"), **output_accuracy(out, refs.fp32_out, "vs_fp32_"))
        if row["kernels"] != "simulated":
            log(f"  {v.name}: {row['median_ms']:.3f} ms, hidden cos vs base {row['vs_base_hidden_cos']:.6f}, "
                f"first call {first_s:.1f} s")
        rows.append(row)
        del model, pf, fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    torch._dynamo.reset()  # frees the compiled graphs with the models
    return pd.DataFrame(rows)
