"""Low-precision benchmarks: the quantized prefill and its references (chapters 4 and 5), FP8 and TensorRT.

Built on `prefill_bench` and `precision`: every fast path is first checked against the float32
model (TF32 off) on fresh random inputs, then timed (medians and IQR, `timing.time_fn`).

* `quantized_prefill_variants`: the 18-layer prefill with some projections quantized (FP8,
  INT8, INT4, ...), eager or compiled, checked, timed, and its accuracy measured against the
  unquantized model: final hidden state and the whole KV cache.
* `precision_floors`: the prefill's roofline floor for each weight / compute precision.
* `memory_bound_fp8`: bf16 against FP8 where the device is memory-bound (few tokens), each
  compiled and CUDA-graphed, beside the speed-up the bytes predict.

The 4-bit benchmarks (faults, the low-bit matmul sweep) are in `lowbit_bench`.

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
import torch.nn.functional as F

from . import flops as fl
from . import precision as Q
from .check import TOLERANCE, cosine, relative_error
from .config import TransformerConfig
from .model import GemmaLM
from .prefill_bench import build_llm, check_and_time, exact_fp32, output_of
from .timing import Graphed, synchronize, time_fn
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


# ----------------------------------------------------------------------------- chapter 4
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


def geglu_qdq_check(mlp: nn.Module, x_cal: torch.Tensor, x: torch.Tensor, path: str, scheme: str = "fp8",
                    per_channel: bool = True) -> dict:
    """Export Gemma's MLP as a Q/DQ ONNX graph, run it in onnxruntime (CPU) on fresh input,
    compare with the torch meaning of the same graph and with the unquantized fp32 MLP."""
    info = Q.export_geglu_qdq_onnx(mlp, x_cal, path, scheme=scheme, per_channel=per_channel)
    scale_dtypes = Q.onnx_scale_dtypes(path)
    t0 = time.perf_counter()
    ort = torch.from_numpy(Q.run_onnxruntime(path, x))
    ort_s = time.perf_counter() - t0
    sim = Q.simulate_geglu_qdq(mlp, x, info)
    with torch.no_grad():
        ref = _geglu_fp32(mlp, x.detach().float().reshape(-1, x.shape[-1]).cpu())
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    ops = pd.Series([n.op_type for n in graph.node]).value_counts().to_dict()
    return {"scheme": scheme, "per_channel": per_channel, "path": path, "info": info,
            "scale_dtypes": scale_dtypes, "all_scales_float32": set(scale_dtypes.values()) == {"FLOAT"},
            "ops": ops, "ort_vs_torch": Q.accuracy(ort, sim), "ort_vs_fp32": Q.accuracy(ort, ref),
            "ort_wall_s": ort_s, "ort_out": ort, "torch_out": sim}


def _geglu_fp32(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from .precision.onnx_qdq import _geglu_weights

    gate, up, down = _geglu_weights(mlp)
    return (F.gelu(x @ gate.t(), approximate="tanh") * (x @ up.t())) @ down.t()


def tensorrt_mlp(path: str, x: torch.Tensor, expected: torch.Tensor, fp8: bool, repeats: int) -> dict:
    """Build a TensorRT engine from a Q/DQ ONNX file and time it (TensorRT's own event loop,
    no L2 flush); its output compared with the torch meaning of the graph. Needs
    `precision.tensorrt_available()`."""
    log: list[str] = []
    t0 = time.perf_counter()
    engine = Q.build_trt_engine(path, fp8=fp8, int8=not fp8, bf16=True, shapes=tuple(x.reshape(-1, x.shape[-1]).shape),
                                log=log)
    build_s = time.perf_counter() - t0
    res = Q.time_trt_engine(engine, x.reshape(-1, x.shape[-1]).float(), iters=max(10, repeats))
    out = next(iter(res["outputs"].values())).float().cpu()
    times = res["times_ms"]
    q = len(times) // 4
    return {"median_ms": res["median_ms"], "p25_ms": times[q], "p75_ms": times[-q - 1], "build_s": build_s,
            "vs_torch": Q.accuracy(out, expected), "version": Q.tensorrt_version(),
            "scale_warnings": [m for m in log if "SCALE" in m or "ignored" in m]}


def mlp_layer_timings(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
                      repeats: int, schemes: Iterable[str] = ("base", "fp8_tensor", "fp8_channel")) -> pd.DataFrame:
    """One Gemma MLP (fused gate_up + GeGLU + down) at `tokens`, eager, per scheme: beside a
    TensorRT engine of the same MLP."""
    one = cfg.with_depth(1)
    rows = []
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(99)).to(device)
    with exact_fp32(), torch.no_grad():
        ref = build_llm(one, device, torch.float32, fused=True).layers[0].mlp(x)
    for s in schemes:
        v = parse_variant(s if s == "base" else f"{s}/mlp", "eager")
        mlp = build_variant(one, v, device, dtype, fused=True).layers[0].mlp
        with torch.no_grad():
            y = mlp(x.to(dtype))
            t = time_fn(lambda: mlp(x.to(dtype)), device, repeats)
        rows.append({"mlp": f"torch {v.scheme} (eager)", **t.as_dict(), **Q.accuracy(y, ref)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- floors per precision
def precision_floors(cfg: TransformerConfig, tokens: int, devices: list[dict]) -> pd.DataFrame:
    """The prefill's roofline floor, max(FLOPs / peak of the compute precision, bytes /
    bandwidth), for each weight / compute precision. Bytes are the fewest any implementation
    must move (`flops.stack_cost`'s min_bytes: weights read once, the bf16 KV cache written, the
    stack's input and output; intermediate activations stay on chip), with the weight bytes
    scaled by the bits per weight (INT4 group 128 with bf16 scale and zero: 4.25 bits; NVFP4:
    4 bits + one E4M3 scale per 16 = 4.5). `memory_unfused_ms` counts every op's activations
    through memory as chapters 2 and 3 do. devices: dicts with name, bandwidth_gbps and
    peak TFLOP/s per compute precision ({"bf16": .., "fp8": .., "fp4": ..}; None where the
    device has no such tensor cores)."""
    cost = fl.stack_cost(cfg, tokens)
    other = cost["min_bytes"] - cost["weight_bytes"]
    cases = [("bf16 weights, bf16 compute", 16.0, "bf16"),
             ("INT4 weight-only (group 128), bf16 compute", 4.25, "bf16"),
             ("FP8 weights, FP8 compute", 8.0, "fp8"),
             ("NVFP4 weights, FP4 compute", 4.5, "fp4")]
    rows = []
    for d in devices:
        base_floor = None
        for label, bits, comp in cases:
            peak = d["tflops"].get(comp)
            wbytes = cost["weight_bytes"] * bits / 16
            memory_ms = (wbytes + other) / (d["bandwidth_gbps"] * 1e9) * 1e3
            unfused_ms = (wbytes + cost["act_bytes"] + cost["kv_bytes"]) / (d["bandwidth_gbps"] * 1e9) * 1e3
            compute_ms = cost["flops"] / (peak * 1e12) * 1e3 if peak else math.nan
            floor = max(compute_ms, memory_ms) if peak else math.nan
            if base_floor is None:
                base_floor = floor
            rows.append({"device": d["name"], "precision": label, "weight_bits": bits, "compute": comp,
                         "weight_gb": wbytes / 1e9, "memory_ms": memory_ms, "compute_ms": compute_ms,
                         "floor_ms": floor,
                         "bound": (None if not peak else "memory" if memory_ms >= compute_ms else "compute"),
                         "speedup_vs_bf16_floor": base_floor / floor if peak else math.nan,
                         "weight_traffic_ratio": 16 / bits, "memory_unfused_ms": unfused_ms})
    return pd.DataFrame(rows)


def ridge_tokens(cfg: TransformerConfig, copy_gbps: float, peak_tflops: float, max_tokens: int = 4096) -> int | None:
    """The smallest token count at which the stack's arithmetic intensity (FLOPs over its
    fewest bytes, `flops.stack_cost`) reaches the device's ridge (peak / bandwidth): below it
    the stack is memory-bound on that device. None if not reached by `max_tokens`."""
    ridge = peak_tflops * 1e12 / (copy_gbps * 1e9)
    t = 1
    while t <= max_tokens:
        c = fl.stack_cost(cfg, t)
        if c["flops"] / c["min_bytes"] >= ridge:
            return t
        t += 1 if t < 16 else 8
    return None


def memory_bound_fp8(shapes: dict[str, tuple[TransformerConfig, int]], device: torch.device, dtype: torch.dtype,
                     repeats: int, here: dict, fp8_variant: str = "fp8_channel/full/fast_accum",
                     scope: str = "layer_graph", log=progress) -> pd.DataFrame:
    """bf16 against FP8 where the stack is memory-bound: for each {label: (config, tokens)}
    the unquantized and the `fp8_variant` stack, built, checked against fp32 and timed by
    `quantized_prefill_variants` in `scope` (compiled + one CUDA graph on a GPU), beside the
    speed-up the roofline predicts from `precision_floors` on `here` (a `floor_devices` entry):
    the ratio of the two floors, which is the bytes ratio where both are memory-bound.
    A shape that fails (exception or failed check) is a row with its error, never a crash."""
    rows = []
    for label, (cfg, tokens) in shapes.items():
        fl_rows = precision_floors(cfg, tokens, [here])
        b16 = fl_rows[fl_rows.precision.str.startswith("bf16")].iloc[0]
        f8 = fl_rows[fl_rows.compute == "fp8"].iloc[0]
        row = {"case": label, "tokens": tokens, "bound": b16.bound,
               "predicted_speedup_ratio": b16.memory_ms / f8.memory_ms if b16.bound == "memory" else
               b16.floor_ms / f8.floor_ms, "bf16_floor_ms": b16.floor_ms}
        try:
            refs = references(cfg, tokens, device, dtype)
            var = quantized_prefill_variants(refs, repeats, ["base", fp8_variant], scope=scope, log=log)
            base, q = var.iloc[0], var.iloc[1]
            row.update(bf16_ms=base.median_ms, fp8_ms=q.median_ms, bf16_p25_ms=base.p25_ms, bf16_p75_ms=base.p75_ms,
                       fp8_p25_ms=q.p25_ms, fp8_p75_ms=q.p75_ms, method=q.method, fp8_kernels=q.kernels,
                       measured_speedup_ratio=base.median_ms / q.median_ms, fp8_vs_base_cos=q.vs_base_hidden_cos,
                       error=None)
        except Exception as e:  # noqa: BLE001 - a failed variant is a finding, recorded with its message
            log(f"  {label}: failed: {type(e).__name__}: {e}")
            row.update(bf16_ms=math.nan, fp8_ms=math.nan, measured_speedup_ratio=math.nan,
                       error=f"{type(e).__name__}: {str(e)[:300]}")
        rows.append(row)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def committed_fp8_pipeline(slug: str | None = None) -> dict | None:
    """Chapter 8's FP8 result from committed results (this device's `slug` if it has one,
    else the newest committed GPU run): the `fp8_graph` prefill and whole call and the bf16
    `graph` ones at the same shape (views, text, steps, layers, tokens per image), with the
    device and commit they ran at. None when no committed chapter 8 has both."""
    from .results import load_all

    shape = ["views", "text_tokens", "steps", "layers", "tokens_per_image"]
    docs = [d for d in load_all("ch08_roads_to_20hz") if d["source"] == "committed"]
    docs.sort(key=lambda d: (d["slug"] == slug, d["provenance"].get("date") or ""))
    for doc in reversed(docs):
        # older runs saved the timings as rows, newer ones as named tables
        tables = doc.get("tables") or {}
        r = pd.DataFrame((doc.get("rows") or []) + tables.get("predictions", []) + tables.get("calibration", []))
        if r.empty or not {"variant", "stage", "median_ms", *shape} <= set(r) or "fp8_graph" not in set(r.variant):
            continue
        f8 = r[r.variant == "fp8_graph"]
        same = (r[shape] == f8[shape].iloc[0]).all(axis=1) | (r[shape].isna() & f8[shape].iloc[0].isna()).all(axis=1)
        ref = r[same]
        pick = lambda v, st: ref[(ref.variant == v) & (ref.stage == st)].median_ms  # noqa: E731
        vals = {f"{v}_{st}_ms": float(pick(v, st).iloc[0]) for v in ("graph", "fp8_graph")
                for st in ("prefill", "whole") if len(pick(v, st))}
        if len(vals) == 4:
            pt = f8.prefix_tokens.iloc[0] if "prefix_tokens" in f8 else None
            return {"slug": doc["slug"], "device": doc["provenance"].get("device"),
                    "prefix_tokens": int(pt) if pt is not None and pt == pt else None,
                    "commit": (doc["provenance"].get("git_commit") or "")[:7],
                    "fp8_whole_speedup_ratio": vals["graph_whole_ms"] / vals["fp8_graph_whole_ms"], **vals}
    return None


def memory_bound_scope(cuda: bool) -> str:
    """How chapter 4 runs its memory-bound FP8 test: each layer compiled and the stack in one CUDA
    graph on a GPU (so that no launch gap hides the bytes it saves), eager on a CPU smoke run."""
    return "layer_graph" if cuda else "eager"


def floor_devices(run) -> list[dict]:
    """Thor from its spec (quoted) and this device from its measured ceilings, in the form
    `precision_floors` takes."""
    from . import ceilings
    from .reference import quoted

    ceil = ceilings.for_run(run)
    thor = {"name": "Thor (quoted)", "bandwidth_gbps": quoted("thor_bandwidth_gbps"),
            "tflops": {"bf16": quoted("thor_bf16_dense_tflops"), "fp8": quoted("thor_fp8_dense_tflops"),
                       "fp4": quoted("thor_fp4_dense_tflops")}}
    here = {"name": "this device (measured)", "bandwidth_gbps": ceil["copy_gbps"],
            "tflops": {"bf16": ceil["matmul_bf16_tflops"], "fp8": ceil.get("matmul_fp8_tflops"), "fp4": None}}
    return [thor, here]
