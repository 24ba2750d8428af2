# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python (pi05perf)
#     language: python
#     name: pi05perf
# ---

# %% [markdown]
# # 4. FP8 and TensorRT
#
# The seed ran the prefill's MLP through TensorRT FP8 on Thor, extended FP8 to every
# projection ("full coverage": QKV + O + MLP) and gained only a few percent more (its figure
# is quoted in the verdict below). It explained this with the prefill being memory-bound ("FP8 reduces the computation, but the weights still have to
# be read from memory") and later wrote that on Thor FP8 "runs, but its scales are ignored:
# it is really FP16". This chapter runs the same experiment through torch's FP8 kernels
# (`torch._scaled_mm`, E4M3 weights and activations, per-tensor or per-channel weight scales,
# dynamic activation scales): the 18-layer prefill with FP8 on the MLP only and on every
# projection, each checked against the float32 model before it is timed and measured for
# accuracy against the bf16 model (final hidden state and the whole KV cache). Then the
# TensorRT path: the same quantization written as an explicit Q/DQ ONNX graph.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats, 0 for the profile default
prefix_tokens = 712  # 2 images x 256 + 200 text tokens
variants = ["base", "fp8_tensor/mlp/fast_accum", "fp8_channel/mlp/fast_accum", "fp8_tensor/full/fast_accum", "fp8_channel/full/fast_accum", "fp8_channel/full", "fp8_channel/full/layer", "fp8_channel/full/eager"]  # base is the unquantized model, others are scheme/coverage[/fast_accum][/scope]
compile_scope = "graph"  # graph (whole prefill compiled, in one CUDA graph, as chapter 3 best) | model (compiled, no graph) | layer (one compiled layer reused by all 18) | eager
target_ratio = 0.7  # FP8 full coverage must take at most this share of the bf16 time
target_cos = 0.998  # with at least this cosine to bf16 (final hidden state and KV cache)
onnx_tokens = 64  # tokens run through the exported Q/DQ MLP in onnxruntime
memory_bound_tokens = [16, 128]  # prefill token counts below this device's ridge (the memory-bound test)
memory_bound_variant = "fp8_channel/full/fast_accum"  # the FP8 variant timed against bf16 there

# %% tags=["hide-input"]
import importlib.util
import tempfile
from pathlib import Path

import altair as alt
import pandas as pd
import torch

import dataclasses

from pi05perf import ceilings, config, fp8_findings, fp8_paths as FP, precision as Q, precision_bench as PB, quantized_prefill, results
from pi05perf.report import fmt, md, show, side_by_side, start

say = lambda text: show(md(text))  # noqa: E731  (markdown from computed values, shown where it is built)
run = start("ch04_fp8_tensorrt", profile=profile, device=device, dtype=dtype, repeats=repeats,
            prefix_tokens=prefix_tokens, onnx_tokens=onnx_tokens, memory_bound_variant=memory_bound_variant)
if compile_scope not in quantized_prefill.SCOPES:
    raise ValueError(f"compile_scope={compile_scope!r} is not allowed; allowed values: {'|'.join(quantized_prefill.SCOPES)}")
if not (0 < target_ratio and 0 < target_cos <= 1):
    raise ValueError("target_ratio must be > 0 and target_cos in (0, 1]")
cfg = config.GEMMA_2B if run.full else config.tiny_config(config.GEMMA_2B, width=256, num_heads=4, head_dim=64)
tokens = prefix_tokens if run.full else min(prefix_tokens, 64)
fp8_here = Q.fp8_supported(run.device)
scope = compile_scope if run.cuda else "eager"
specs = list(dict.fromkeys(quantized_prefill.parse_variant(s, scope).name for s in variants))
key = "prefill712" if tokens == 712 else "prefill"
slug = results.device_slug(results.device_name(run.device))
if not fp8_here:
    print(f"{results.device_name(run.device)} has no FP8 matmul: FP8 layers run as an exact simulation "
          "(quantize, dequantize, fp32 matmul), checked and measured for accuracy but not timed")
if scope != compile_scope:
    print(f"on {run.device}: every variant runs eager (compiling needs a GPU here)")

# %% [markdown]
# ## What FP8 can do, on paper
# FP8 halves the weight bytes *and* raises the matrix units' peak. The prefill's floor for
# bf16 and for FP8: FLOPs over the peak of that precision, or the fewest bytes any
# implementation must move (weights once, the KV cache, input and output) over the copy
# bandwidth, whichever is larger. Thor from its spec (quoted, not measured), this device from
# its measured ceilings (chapter 2). `memory_unfused_ms` counts every op's activations through
# memory, as chapters 2 and 3 do.

# %% tags=["hide-input"]
thor, here = PB.floor_devices(run)
floors = PB.precision_floors(config.GEMMA_2B, prefix_tokens, [thor, here])
floors = floors[floors.precision.isin(["bf16 weights, bf16 compute", "FP8 weights, FP8 compute"])]
show(floors.assign(weight_bytes=floors.weight_gb * 1e9).rename(columns={"speedup_vs_bf16_floor": "floor_speedup_vs_bf16_ratio"})[
    ["device", "precision", "weight_bytes", "memory_ms", "compute_ms", "floor_ms", "bound", "floor_speedup_vs_bf16_ratio",
     "memory_unfused_ms"]])
fl_thor = floors[floors.device == "Thor (quoted)"].set_index("compute")
fl_here = floors[floors.device == "this device (measured)"].set_index("compute")
say(f"""On Thor's spec the bf16 prefill at {prefix_tokens} tokens is {fl_thor.bound['bf16']}-bound
(floor {fl_thor.floor_ms['bf16']:.1f} ms); FP8 weights and FP8 compute lower the floor to
{fl_thor.floor_ms['fp8']:.1f} ms, a {fl_thor.speedup_vs_bf16_floor['fp8']:.2f}× bound. "Memory-bound, so FP8 cannot
help" does not follow even on paper: FP8 weights are half the bytes. On this device
({results.device_name(run.device)}) the floors are {fl_here.floor_ms['bf16']:.2f} ms (bf16) and
{fmt(fl_here.floor_ms['fp8'], 'ms')} (FP8{'' if fp8_here else ': no FP8 matmul here'}).""")

# %% [markdown]
# ## The prefill with FP8, measured
# Each variant is built from the same seeded fp32 weights as chapter 3's model (fused QKV and
# gate-up projections), quantized, run once eagerly (on a GPU every quantized layer must have
# run its FP8 kernel, or the chapter stops), compiled, then checked against the fp32 model
# (TF32 off) on two fresh random inputs and timed (median and IQR, L2 flushed between runs).
# `base` is the unquantized model, compiled the same way, on the same run. Compiling
# (`torch.compile`) matters for FP8: a dynamic activation scale is an amax, a division and a
# cast — several small kernels eagerly, one kernel fused into the preceding norm compiled.
# `graph` scope compiles the whole prefill and replays it as one CUDA graph, as chapter 3's
# fastest bf16 variant does; `layer` scope compiles one Gemma layer and reuses it for all 18
# (any recompilation stops the chapter); `fast_accum` lets the FP8 tensor cores accumulate
# with fewer bits.

# %% tags=["hide-input"]
refs = quantized_prefill.references(cfg, tokens, run.device, run.dtype)
var = quantized_prefill.quantized_prefill_variants(refs, run.repeats, specs, scope=scope)
show(var[["variant", "kernels", "median_ms", "p25_ms", "p75_ms", "compile_s", "weight_bytes"]])
show(var[["variant", "rel_err_vs_fp32", "vs_base_hidden_cos", "vs_base_kv_cos", "vs_base_kv_cos_worst_layer"]])
base = var[var.scheme == "base"].iloc[0] if (var.scheme == "base").any() else None
timed = var[var.median_ms.notna()].copy()
if not timed.empty:
    timed["label"] = timed.variant
    bars = alt.Chart(timed).mark_bar().encode(
        x=alt.X("median_ms:Q", title="ms (median; whiskers: IQR)"), y=alt.Y("label:N", sort="x", title=None),
        color=alt.Color("coverage:N", title="FP8 on"),
        tooltip=["variant", "median_ms", "p25_ms", "p75_ms", "vs_base_hidden_cos", "vs_base_kv_cos"])
    whiskers = alt.Chart(timed).mark_rule().encode(x="p25_ms:Q", x2="p75_ms:Q", y=alt.Y("label:N", sort="x"))
    layers = [bars, whiskers]
    if base is not None and pd.notna(base.median_ms):
        target_df = pd.DataFrame([{"ms": target_ratio * base.median_ms, "what": f"target: {target_ratio}× base"}])
        layers.append(alt.Chart(target_df).mark_rule(color="black", strokeDash=[4, 3]).encode(x="ms:Q", tooltip=["what", "ms"]))
    show(alt.layer(*layers).properties(title=f"The {tokens}-token prefill, {cfg.depth} layers: FP8 variants"))
else:
    say("No variant was timed on this device (FP8 is simulated here); the accuracy columns above still hold.")

# %% tags=["hide-input"]
mlp_best = fp8_findings.fastest_fp8(var, "mlp", target_cos)
full_best = fp8_findings.fastest_fp8(var, "full", target_cos)
full_acc = full_best if full_best is not None else fp8_findings.first_fp8(var, "full")
ch03_best = results.measured("ch03_prefill_breakdown", "prefill712_best_ms", slug) if tokens == 712 else None
say(fp8_findings.prefill_text(var, base, mlp_best, full_best, full_acc, dtype=run.dtype, scope=scope,
                              target_ratio=target_ratio, target_cos=target_cos,
                              fp8_floor_ms=fl_here.floor_ms.get("fp8"), ch03_best=ch03_best))

# %% [markdown]
# ### Why FP8 "cannot help a memory-bound prefill" is the wrong reason
# The seed's argument was that FP8 only reduces the arithmetic while the weights still have to
# be read. The weights the kernels read, counted from the quantized layers themselves:

# %% tags=["hide-input"]
wb = var.drop_duplicates("coverage").set_index("coverage").weight_bytes
bytes_table = pd.DataFrame([{"model": f"{c} quantized" if c != "none" else "unquantized", "weights_bytes": wb[c],
                             "vs_unquantized_ratio": wb[c] / wb["none"] if "none" in wb else None} for c in wb.index])
show(bytes_table)
if "full" in wb and "none" in wb:
    say(f"""With every projection in FP8 the {cfg.depth}-layer stack reads {fmt(wb['full'], 'B')} of weights instead
of {fmt(wb['none'], 'B')} in {str(run.dtype).removeprefix('torch.')} ({wb['full'] / wb['none']:.2f}×): FP8 shrinks the
weight traffic *and* raises the matrix units' peak ({thor['tflops']['fp8'] / thor['tflops']['bf16']:.1f}× bf16 on Thor's
spec{f", {here['tflops']['fp8'] / here['tflops']['bf16']:.1f}× measured here" if here['tflops']['fp8'] else ''}). A memory-bound kernel
gets faster too.""")

# %% [markdown]
# ## FP8 where this device *is* memory-bound
# At 712 tokens a fast GPU's prefill is compute-bound, so the speed-up above says nothing about
# "memory-bound". The claim is tested where it is about: the same prefill at token counts below
# this device's ridge (its peak FLOP/s over its copy bandwidth), and the denoise step's shape
# (10 action tokens through the action expert's 18 layers: width 1024, MLP 4096; attending to
# its own 10 tokens only, and with plain RMSNorm instead of adaRMS: the linears are what FP8
# changes). bf16 and FP8 run the same way here (`layer_graph`): one Gemma layer compiled and reused
# by every layer, the whole stack replayed as one CUDA graph, each checked against fp32 before
# timing. That is like for like, but not by itself either's fastest path: on a GPU the fewest
# tokens are timed once more with the whole prefill in one graph (the `graph` scope of the
# 712-token table above), to show whether the scope changes the answer. The prediction is the
# roofline's: where both are memory-bound, the ratio of the bytes they must move; the
# `bf16_vs_floor` column says how close bf16 itself comes to its floor on this path.

# %% tags=["hide-input"]
ceil = ceilings.for_run(run)
ridge = ceil["matmul_bf16_tflops"] * 1e12 / (ceil["copy_gbps"] * 1e9)
ridge_t = PB.ridge_tokens(config.GEMMA_2B, ceil["copy_gbps"], ceil["matmul_bf16_tflops"])
expert = dataclasses.replace(config.GEMMA_300M, adaptive_norm=False)
mb_cfgs = {"prefill": cfg, "denoise step (expert)": expert if run.full else
           config.tiny_config(config.GEMMA_2B, width=128, num_heads=2, head_dim=64)}
mb_shapes = {f"prefill, {t} tokens": (mb_cfgs["prefill"], t) for t in memory_bound_tokens}
mb_shapes[f"denoise step, {config.ACTION_HORIZON_LIBERO} tokens"] = (mb_cfgs["denoise step (expert)"], config.ACTION_HORIZON_LIBERO)
mb_scope = PB.memory_bound_scope(run.cuda)
mb = PB.memory_bound_fp8(mb_shapes, run.device, run.dtype, run.repeats, here, memory_bound_variant, scope=mb_scope)
if run.cuda:  # the fewest tokens once more, the whole prefill in one graph: does the scope change the answer?
    (label, shape), = list(mb_shapes.items())[:1]
    mb = pd.concat([mb, PB.memory_bound_fp8({f"{label}, one graph": shape}, run.device, run.dtype, run.repeats,
                                            here, memory_bound_variant, scope="graph")], ignore_index=True)
say(f"The FP8 path here: {FP.fp8_path_words(memory_bound_variant, mb_scope)}; bf16 is run the same way.")
show(mb.assign(bf16_vs_floor_ratio=mb.bf16_ms / mb.bf16_floor_ms)[
    ["case", "scope", "bound", "bf16_ms", "fp8_ms", "measured_speedup_ratio", "predicted_speedup_ratio", "bf16_vs_floor_ratio"]])
if mb.error.notna().any():
    say("Failed here (recorded, not timed): " + "; ".join(f"{r.case}: `{r.error}`" for r in mb.itertuples() if isinstance(r.error, str)))
mb_ok = mb[mb.measured_speedup_ratio.notna() & mb.case.str.startswith("prefill") & (mb.scope == mb_scope)]
mb_ok = mb_ok[mb_ok.bound == "memory"] if (mb_ok.bound == "memory").any() else mb_ok  # memory-bound rows first
mb_head = mb_ok.sort_values("tokens").iloc[0] if not mb_ok.empty else None
say(f"""This device's ridge: {ridge:.0f} FLOP/B (measured peak {ceil['matmul_bf16_tflops']:.0f} TFLOP/s over
{ceil['copy_gbps']:.0f} GB/s, {ceil['source']}); the {config.GEMMA_2B.depth}-layer prefill reaches it at about
{ridge_t if ridge_t else 'more than 4096'} tokens, so the prefill at {', '.join(map(str, memory_bound_tokens))} tokens
{'is' if ridge_t and max(memory_bound_tokens) < ridge_t else 'may not all be'} memory-bound here (the `bound` column, from the floors).
""" + (fp8_findings.memory_bound_text(mb)
       or "FP8 could not be timed on this device (no FP8 matmul: simulated only), so the memory-bound test waits for a GPU run."))

# %% [markdown]
# ### FP8 through the whole call: chapters 7 and 8
# Chapters 7 and 8 put FP8 into the whole pi0.5 call, by different paths: chapter 8 the LLM's
# projections only, uncompiled, with dynamic (per-call) activation scales; chapter 7 all three
# stacks, compiled or not, with dynamic or with static (calibrated once) activation scales. Each FP8
# figure below is set against the bf16 path built and run the same way (its twin), from the
# committed results, beside this chapter's prefill:

# %% tags=["hide-input"]
c7, c8 = FP.committed_fp8_whole_call(slug), FP.committed_fp8_pipeline(slug)
c4 = None if full_best is None or base is None else {
    "variant": full_best.variant, "scope": full_best.scope, "fp8_ms": full_best.median_ms,
    "bf16_ms": base.median_ms, "device": results.device_name(run.device), "tokens": tokens}
paths = FP.fp8_paths_table(c7, c8, c4)
if not paths.empty:
    show(paths)
say(FP.fp8_paths_text(c7, c8, c4, mb))

# %% [markdown]
# ## TensorRT: the same quantization as an explicit Q/DQ ONNX graph
# TensorRT reads quantization from QuantizeLinear / DequantizeLinear pairs. The seed's Thor logs
# read `[DEQUANTIZE] [SCALE] has invalid precision FP8, ignored`: TensorRT ignored a precision
# set on a scale input. That alone does not say the scale values were dropped; chapter 5 shows
# what dropped scales and other misreadings of a quantized weight look like, and how to tell
# them apart. Below, layer 0's MLP of
# the same model is written as a Q/DQ graph (FP8 E4M3 weights per output channel, static
# per-tensor activation scales calibrated on one random input), its scale tensors are checked
# to be float32, and onnxruntime runs it on fresh input, compared with the torch meaning of
# the same graph and with the unquantized MLP.

# %% tags=["hide-input"]
have_onnx = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None
have_trt = Q.tensorrt_available()
trt_version = Q.tensorrt_version()
qdq = None
if have_onnx:
    import onnxruntime

    layer0 = refs.fp32_model.layers[0]
    gen = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        x_cal = layer0.post_attn_norm(torch.randn(1, tokens, cfg.width, generator=gen).to(run.device))[0]
        x_ort = layer0.post_attn_norm(torch.randn(1, onnx_tokens, cfg.width, generator=gen).to(run.device))[0]
    onnx_dir = Path(tempfile.mkdtemp(prefix="pi05perf_qdq_"))
    qdq = PB.geglu_qdq_check(layer0.mlp, x_cal, x_ort, str(onnx_dir / "mlp_fp8_qdq.onnx"), scheme="fp8")
    show(pd.DataFrame([{"Q/DQ tensor": k, "scale dtype": v} for k, v in qdq["scale_dtypes"].items()]))
    show(pd.DataFrame([{"op": k, "count": v} for k, v in qdq["ops"].items()]))
    agree, vs32 = qdq["ort_vs_torch"], qdq["ort_vs_fp32"]
    say(f"""The exported graph (opset {qdq['info']['opset']}, onnxruntime {onnxruntime.__version__}) has
{qdq['ops'].get('QuantizeLinear', 0)} QuantizeLinear and {qdq['ops'].get('DequantizeLinear', 0)} DequantizeLinear
nodes; {'**every scale is float32**' if qdq['all_scales_float32'] else '**some scales are not float32**'}.
On {onnx_tokens} fresh tokens onnxruntime agrees with the torch simulation of the same graph to a relative error
of {agree['rel_err']:.1e} (cos {agree['cos']:.7f}); against the unquantized fp32 MLP: cos {vs32['cos']:.5f},
relative error {vs32['rel_err']:.3f} (activation scales static, per tensor, calibrated once: the form Q/DQ
graphs take).""")
    if not qdq["all_scales_float32"] or agree["rel_err"] > 1e-3:
        raise AssertionError(f"Q/DQ export check failed: scales {qdq['scale_dtypes']}, agreement {agree}")
else:
    say("`onnx` / `onnxruntime` are not importable here: the Q/DQ export is skipped.")

# %% tags=["hide-input"]
trt_row = None
if have_trt and qdq is not None:
    x_trt = layer0.post_attn_norm(torch.randn(1, tokens, cfg.width, generator=gen).to(run.device))[0]
    expected = Q.simulate_geglu_qdq(layer0.mlp, x_trt, qdq["info"])
    try:
        trt_row = PB.tensorrt_mlp(qdq["path"], x_trt, expected, fp8=True, repeats=run.repeats)
    except Exception as e:  # a failing TensorRT build is a finding, reported with its message
        say(f"TensorRT {trt_version} failed to build or run the FP8 Q/DQ MLP: `{type(e).__name__}: {e}`")
    if trt_row is not None:
        torch_mlp = PB.mlp_layer_timings(cfg, tokens, run.device, run.dtype, run.repeats)
        show(pd.concat([torch_mlp, pd.DataFrame([{"mlp": f"TensorRT {trt_version} engine (FP8 Q/DQ)",
                                                   "median_ms": trt_row["median_ms"], "p25_ms": trt_row["p25_ms"],
                                                   "p75_ms": trt_row["p75_ms"], "method": "TensorRT, events, no L2 flush",
                                                   **trt_row["vs_torch"]}])], ignore_index=True))
        say(f"TensorRT {trt_version} built the engine in {trt_row['build_s']:.1f} s; its output against the torch "
           f"meaning of the graph: cos {trt_row['vs_torch']['cos']:.5f}. Builder messages about scales: "
           f"{trt_row['scale_warnings'] or 'none'}.")
else:
    say(f"""**TensorRT is not installed here** (`import tensorrt` {'works, but there is no CUDA device' if trt_version else 'fails'}),
so no engine is built or timed: the FP8 experiment above ran through torch's FP8 kernels (cuBLASLt / CUTLASS
via `torch._scaled_mm`), and the Q/DQ graph a TensorRT build would read was checked with onnxruntime. On a machine
with TensorRT (a Jetson with JetPack) this cell builds an engine from the same file and times it beside the torch
paths.""")

# %% [markdown]
# ## Verdict on the seed's FP8 claims

# %% tags=["hide-input"]
gain_here = (mlp_best.median_ms / full_best.median_ms) if (mlp_best is not None and full_best is not None) else None
speed_here = (base.median_ms / full_best.median_ms) if (full_best is not None and base is not None) else None
attn_share, bound_full = fp8_findings.full_coverage_bound(config.GEMMA_2B, prefix_tokens)
show(side_by_side(fp8_findings.claims_rows(tokens, gain_here, bound_full, speed_here,
                                           fl_here.speedup_vs_bf16_floor.get("fp8") if fp8_here else None, full_acc)))
# chapter 5's kernels at the token counts memory-bound here
kernels = fp8_findings.committed_kernel_evidence(slug, fp8_findings.memory_bound_tokens(mb), memory_bound_variant)
say(fp8_findings.claims_text(prefix_tokens, attn_share, bound_full, gain_here, speed_here, mb_head,
                             memory_bound_variant, mb_scope, fl_thor.speedup_vs_bf16_floor['fp8'],
                             scale_split=FP.dynamic_scale_split(c7), kernels=kernels))

# %% tags=["hide-input"]
headline = {f"fp8_{key}_mlp_only_ms": mlp_best.median_ms if mlp_best is not None else None,
            f"fp8_{key}_full_ms": full_best.median_ms if full_best is not None else None,
            f"fp8_{key}_full_cos": full_acc.vs_base_hidden_cos if full_acc is not None else None,
            f"fp8_{key}_full_kv_cos": full_acc.vs_base_kv_cos if full_acc is not None else None,
            f"fp8_{key}_base_ms": base.median_ms if base is not None else None,
            f"fp8_{key}_full_vs_base_ratio": (full_best.median_ms / base.median_ms
                                              if full_best is not None and base is not None else None),
            "fp8_full_vs_mlp_only_speedup_ratio": gain_here,
            "fp8_memory_bound_speedup_ratio": float(mb_head.measured_speedup_ratio) if mb_head is not None else None,
            "fp8_memory_bound_predicted_ratio": float(mb_head.predicted_speedup_ratio) if mb_head is not None else None,
            "fp8_memory_bound_tokens": int(mb_head.tokens) if mb_head is not None else None,
            **(ceilings.headline(ceil) if hasattr(ceilings, "headline") else
               {"floor_peak_bf16_tflops": float(ceil["matmul_bf16_tflops"]), "floor_copy_gbps": float(ceil["copy_gbps"])})}
if trt_row is not None:
    headline["trt_fp8_mlp_ms"] = trt_row["median_ms"]
rows = var.assign(table="variants")
if qdq is not None:
    rows = pd.concat([rows, pd.DataFrame([{"table": "qdq_onnx", "variant": "layer 0 MLP, FP8 Q/DQ",
                                           "ort_vs_torch_rel_err": qdq["ort_vs_torch"]["rel_err"],
                                           "ort_vs_fp32_cos": qdq["ort_vs_fp32"]["cos"],
                                           "all_scales_float32": qdq["all_scales_float32"]}])], ignore_index=True)
results.save(run, headline, pd.concat([rows, floors.assign(table="floors"), mb.assign(table="memory_bound")],
                                      ignore_index=True));
