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
# # 2. Bandwidth and roofline
#
# The seed's central claim is that the 712-token prefill is **memory-bound** — limited by
# reading 3.96 GB of weights — with a floor of about 22 ms on Thor. This chapter measures
# the two ceilings of the device it runs on, places every prefill op on that device's
# roofline with Thor's overlaid, and sweeps the token count to see where the prefill turns
# from memory-bound to compute-bound on each device.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats per measurement; 0 means the profile default
prefix_tokens = 712  # the prefill being judged
sweep_tokens = [1, 4, 16, 64, 128, 256, 512, 712, 1024, 2048, 4096]  # one-layer token sweep

# %% tags=["hide-input"]
import altair as alt
import pandas as pd
import torch

from pi05perf import ceilings, charts, config, flops, prefill_bench, reference, results, thor_fit
from pi05perf.check import TOLERANCE
from pi05perf.report import fmt, md, show, side_by_side, start, verdict, headlines_everywhere

run = start("ch02_roofline", profile=profile, device=device, dtype=dtype, repeats=repeats,
            prefix_tokens=prefix_tokens, sweep_tokens=sweep_tokens)
cfg = config.GEMMA_2B if run.full else config.tiny_config(config.GEMMA_2B)
tokens_list = sweep_tokens if run.full else [t for t in sweep_tokens if t <= 256]

# %% [markdown]
# ## The device's ceilings, measured
# A device-to-device copy (bytes read + bytes written) of buffers far larger than L2, and
# large matmuls on random data (zeros run faster). The matmul peak is the best of several
# shapes and of two stacks, cuBLAS (`torch.matmul`) and the GEMM that `torch.compile`'s
# max-autotune picks, timed after a second of matmuls has brought the clocks up. cuBLAS's
# candidates run back to back in one CUDA graph, as the model's GEMMs do, and each is read by
# its kernels' durations (the profiler's clock, the one chapter 3's kernel profile sums), so
# that no launch gap lowers the rate of the smaller (prefill-sized) products and no profiled
# kernel of the model can be faster than its floor for a reason of method; the table says
# which clock read each candidate. A peak
# measured low would make every floor long and every "× floor" flattering, so every candidate
# is shown, beside NVIDIA's datasheet figure where the book knows it. Every floor in the book
# divides by the best of each; one run measures them once (`ceilings.measure_once`).

# %% tags=["hide-input"]
ceil, ceiling_table = ceilings.measure_once(run)
show(ceiling_table)
here = ceilings.this_device(run, ceil)
datasheet = ceilings.spec_for(results.device_name(run.device))
if datasheet:
    show(md(f"""Against {datasheet['source']}: matmul {here.bf16_tflops:.0f} of {datasheet['bf16_tflops']:.0f} TFLOP/s
({100 * here.bf16_tflops / datasheet['bf16_tflops']:.0f}%), copy {here.bandwidth_gbps:.0f} of {datasheet['copy_gbps']:.0f}
GB/s ({100 * here.bandwidth_gbps / datasheet['copy_gbps']:.0f}%)""" + (f", fp8 {here.fp8_tflops:.0f} of "
     f"{datasheet['fp8_tflops']:.0f} TFLOP/s ({100 * here.fp8_tflops / datasheet['fp8_tflops']:.0f}%)" if here.fp8_tflops else "") +
     ". Datasheet peaks assume boost clocks that sustained tensor-core work rarely holds; the floors use the measured figures."))
else:
    show(md(f"No datasheet figures for {results.device_name(run.device)} in `ceilings.SPECS`: measured ceilings only."))
if here.fp8_tflops is None:
    show(md(f"FP8 matmuls are not supported on {results.device_name(run.device)}: no FP8 ceiling."))

# %% [markdown]
# ## The roofline, with Thor overlaid
# Attainable rate = min(peak, intensity × bandwidth). Thor is drawn from its spec and with
# the bandwidth the seed measured on it (both quoted in the table at the end of this page);
# those lines are quoted and projected, not measured. Each point is one op of a Gemma-2B layer
# at the prefill's token count, timed alone on this device (L2 flushed between runs).

# %% tags=["hide-input"]
thor_bw = reference.quoted("thor_bandwidth_gbps")
thor_bf16 = reference.quoted("thor_bf16_dense_tflops")
thor_seed_bw = reference.quoted("hw_avg_bandwidth_gbps")
devices = [config.THOR_SPEC, config.THOR_SEED_MEASURED, here]
roof = flops.roofline_curve(devices, [2.0 ** e for e in range(-2, 15)])
tokens_here = prefix_tokens if run.full else min(prefix_tokens, 128)
op_points = prefill_bench.time_layer_ops(cfg, tokens_here, run.device, run.dtype, run.repeats)
op_points["pct_of_roof"] = 100 * op_points.tflops / op_points.intensity.map(
    lambda i: min(here.bf16_tflops, i * here.bandwidth_gbps / 1e3))
show(op_points[["op", "intensity", "median_ms", "p25_ms", "p75_ms", "tflops", "pct_of_roof"]].rename(
    columns={"intensity": "intensity_flop_per_byte", "tflops": "attained_tflops", "pct_of_roof": "of_roof_pct"}))

log = alt.Scale(type="log")
lines = alt.Chart(roof).mark_line().encode(
    x=alt.X("intensity:Q", scale=log, title="arithmetic intensity (FLOP/byte)"),
    y=alt.Y("tflops:Q", scale=log, title="TFLOP/s"), color=alt.Color("device:N", title=None),
    strokeDash=alt.condition(alt.datum.device == here.name, alt.value([1, 0]), alt.value([5, 3])))
points = alt.Chart(op_points).mark_point(filled=True, size=80, color="black").encode(
    x="intensity:Q", y="tflops:Q", tooltip=["op", "intensity", "tflops", "median_ms"])
labels = charts.point_labels(op_points, "intensity", "tflops", "op", x_scale=log, y_scale=log)
(lines + points + labels).properties(title=f"Roofline: Gemma-2B ops at {tokens_here} tokens measured on this device")

# %% [markdown]
# ## Token sweep: where the prefill turns compute-bound
# One Gemma-2B layer and the whole 18-layer stack, each captured in a CUDA graph and replayed
# at each token count, so that Python's dispatch of each kernel is out of the figure; drawn
# per layer against each device's floor per layer (FLOPs over peak or bytes over bandwidth,
# whichever is longer). Each captured graph is first checked against the float32 model on a
# fresh random input. One eager layer is drawn too, labelled *host overhead*: its time is
# mostly the CPU launching kernels, and no verdict uses it. Without a GPU there are no CUDA
# graphs: the smoke run falls back to the eager layer alone.

# %% tags=["hide-input"]
sweep = prefill_bench.layer_token_sweep(cfg, tokens_list, run.device, run.dtype, run.repeats, devices,
                                        TOLERANCE[run.dtype])
failed = sweep[sweep.error.fillna("") != ""]
if len(failed):
    show(md(f"**{len(failed)} sweep measurements failed** (check or capture); they are left out of the chart:"))
    show(failed[["tokens", "series", "error"]])
alt.Chart(sweep[sweep.error.fillna("") == ""]).mark_line(point=True).encode(
    x=alt.X("tokens:Q", scale=log), y=alt.Y("per_layer_ms:Q", scale=log, title="ms per layer"),
    color=alt.Color("series:N", title=None), tooltip=["series", "tokens", "per_layer_ms", "median_ms"]
).properties(title="Gemma-2B prefill per layer: measured here vs floors")

# %% tags=["hide-input"]
curve = lambda name: sweep[(sweep.series == name) & (sweep.error.fillna("") == "")].set_index("tokens").per_layer_ms
graphed = curve(f"{cfg.depth} layers, CUDA graph")
one_graphed, eager = curve("1 layer, CUDA graph"), curve("1 layer, eager (host overhead)")
floor_here = curve(f"floor: {here.name}")
first = lambda c: float(c.iloc[0]) if len(c) else float("nan")
layer_weight_bytes = flops.stack_cost(cfg.with_depth(1), 1)["weight_bytes"]
if len(graphed):
    t0, flat = graphed.index[0], graphed.iloc[0]
    knee = max(t for t in graphed.index if graphed[t] <= 1.25 * flat)  # still within 25% of the flat level
    streaming_gbps = layer_weight_bytes / (flat * 1e-3) / 1e9
    streaming_pct = 100 * streaming_gbps / here.bandwidth_gbps
    top = graphed.index[-1]
    top_tflops = flops.stack_cost(cfg.with_depth(1), top)["flops"] / (graphed[top] * 1e-3) / 1e12
    show(md(f"""**Read from the graphed {cfg.depth}-layer stack.** At {t0} token(s) a layer takes {flat:.3f} ms against a
floor of {floor_here[t0]:.3f} ms ({flat / floor_here[t0]:.1f}×): its {fmt(layer_weight_bytes, 'B')} of weights stream at
{streaming_gbps:.0f} GB/s, {streaming_pct:.0f}% of the measured copy bandwidth, so the flat part of the curve is
{"weight streaming" if streaming_pct >= 50 else "not weight streaming alone: kernel launch latency inside the graph and small, under-filled kernels take the rest"}.
The curve stays within 25% of that level up to **{knee} tokens** and then grows with the token count; the floor
turns from memory- to compute-bound at {flops.crossover_tokens(cfg, here)} tokens. At {top} tokens a layer runs at
{top_tflops:.0f} TFLOP/s, {100 * top_tflops / here.bf16_tflops:.0f}% of the measured peak. One layer replayed alone
takes {first(one_graphed):.3f} ms at {t0} token(s); the eager layer takes {first(eager):.3f} ms there,
{first(eager) / flat:.1f}× the graphed stack's per-layer time: that gap is host overhead, not the GPU."""))
else:
    show(md(f"""No CUDA-graph series on {results.device_name(run.device)}: the curve above is one **eager layer, host
overhead included**, and says nothing about a GPU. Committed GPU runs carry the graphed sweep."""))

# %% tags=["hide-input"]
judged = flops.bound_table(config.GEMMA_2B, prefix_tokens, devices)
intensity = judged.intensity_flop_per_byte[0]
show(judged)

# %% [markdown]
# ## Verdict on "memory-bound, floor ~22 ms"

# %% tags=["hide-input"]
spec, seedbw, dev = judged.iloc[0], judged.iloc[1], judged.iloc[2]
comparison = ceilings.thor_comparison(here, dev.floor_ms)
for row in comparison if run.full and prefix_tokens in graphed.index else []:  # the sweep's graphed stack measured it
    if "prefill at" in row["quantity"] and row.get("measured") is None:
        row.update(measured=float(graphed[prefix_tokens]) * cfg.depth, thor_source="seed (standalone benchmark); this "
                   "device: the sweep's 18-layer stack in one CUDA graph (not compiled; chapter 3 times faster paths)")
show(side_by_side(comparison))
seed_floor = reference.quoted("weight_read_floor_ms")
seed_floor_bw = reference.quoted("weight_read_floor_bandwidth_gbps")
# chapter 8's fit of the seed's prefix, recomputed here (arithmetic on quoted figures: chapter 8 runs later)
thor_model = thor_fit.thor_device(thor_bw, thor_bf16, int(reference.quoted("thor_sm_count")))
mlp_text = thor_fit.seed_mlp_text(reference.quoted("kv_mlp_total_ms"), thor_seed_bw, thor_bf16, config.GEMMA_2B,
                                  prefix_tokens, thor_fit.seed_prefix_fit(reference.quoted, thor_model))
md(f"""**{verdict('partly held')}.** On Thor the prefill's intensity at {prefix_tokens} tokens
({intensity:.0f} FLOP/byte) sits {"below" if intensity < spec.ridge_flop_per_byte else "above"} the spec ridge
({spec.ridge_flop_per_byte:.0f}) and below the ridge at the seed's measured bandwidth
({seedbw.ridge_flop_per_byte:.0f}): by the roofline it is memory-bound there, but only just — the compute floor
({spec.compute_floor_ms:.1f} ms at {thor_bf16:.0f} TFLOP/s) is within
{spec.memory_floor_ms / spec.compute_floor_ms:.2f}× of the memory floor ({spec.memory_floor_ms:.1f} ms at
{thor_bw:.0f} GB/s). Thor turns compute-bound at about {spec.crossover_tokens} tokens.

The seed's **~{seed_floor:.0f} ms floor divides by {seed_floor_bw:.0f} GB/s, more than the
{thor_seed_bw:.1f} GB/s the seed itself measured** on the same board; with its own measurement the memory floor
(weights, the K/V cache written, input and output) is {seedbw.memory_floor_ms:.1f} ms, with the spec {spec.memory_floor_ms:.1f} ms.

{mlp_text}

On this device ({here.name}) the ridge is {dev.ridge_flop_per_byte:.0f} FLOP/byte and the prefill is
**{dev.bound}-bound**, turning compute-bound at about {dev.crossover_tokens} tokens.""")

# %% tags=["hide-input"]
at = lambda curve_, t: float(curve_[t]) if t in curve_.index else None
headline = {"copy_gbps": here.bandwidth_gbps, "matmul_peak_tflops": here.bf16_tflops,
            "matmul_bf16_tflops": here.bf16_tflops if run.dtype == torch.bfloat16 else None,
            "matmul_fp8_tflops": here.fp8_tflops, "prefill712_intensity_flop_per_byte": intensity,
            "layer_sweep_tokens1_graph_ms": at(one_graphed, 1), "layer_sweep_tokens712_graph_ms": at(one_graphed, 712),
            "stack_sweep_tokens1_graph_ms": at(graphed, 1) and at(graphed, 1) * cfg.depth,
            "stack_sweep_tokens712_graph_ms": at(graphed, 712) and at(graphed, 712) * cfg.depth,
            **ceilings.headline(ceil)}
results.save(run, headline, pd.concat([ceiling_table.assign(table="ceilings"), op_points.assign(table="ops"),
                                       sweep.assign(table="sweep"), judged.assign(table="verdict")], ignore_index=True));

# %% [markdown]
# ## This chapter on every device
# Headline figures of this chapter from every committed run, beside this build.

# %% tags=["hide-input"]
headlines_everywhere("ch02_roofline")
