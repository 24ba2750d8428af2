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
# # 9. Peers side by side
#
# The book's model is pi0.5-shaped, written from openpi's configs. A reader who runs pi0.5 today
# most likely runs someone else's implementation: lerobot's `lerobot.policies.pi05`, "a direct port
# of the OpenPI implementation" in PyTorch, or one of the fast engines whose latencies are published.
# This chapter checks that our model is the same network as lerobot's (parameter by parameter, FLOPs
# and K/V cache stage by stage), times lerobot's `sample_actions` beside ours in the same process on
# the same GPU (eager and with lerobot's own `compile_model=True`), tries torchao's quantizers on our
# prefill, and puts every published pi0.5 latency over the roofline floor of the same work on that
# peer's own hardware — the only fair comparison across devices.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats of graphed / compiled paths; 0 means the profile default
eager_repeats = 5  # timed repeats of eager paths (hundreds of ms per lerobot call)
headline_views = 2  # camera views of the headline configuration (256 image tokens each)
text_tokens = 200  # prompt tokens (pi0.5 max_token_len)
headline_steps = 10  # Euler steps
action_horizon = 10  # actions per chunk (pi05_libero)
default_views = 3  # lerobot's defaults: 3 image slots ...
default_horizon = 50  # ... and chunk_size 50
lerobot_compile = True  # also time lerobot with its own compile_model option (compiles sample_actions)
lerobot_compile_mode = "default"  # default | max-autotune (lerobot's own default: over 7 minutes of autotuning on an H200)
ours_variants = ["eager", "graph", "compile_graph_splitkv"]  # chapter 7 paths (the last: its split-KV attention path); the fastest is ours best
torchao_schemes = ["int8_dyn", "int4_wo", "float8_dyn"]  # torchao configs tried on our prefill
torchao_compile = False  # also time each scheme with the blocks torch.compile'd (minutes of compilation)
prefill_tokens = 712  # 2 views x 256 + 200 text tokens

# %% tags=["hide-input"]
import math
import time

import pandas as pd
import torch

from pi05perf import flops, lerobot_pi05, peers, pipeline, pipeline_bench as pb, reference, report, results, torchao_bench
from pi05perf.config import TokenBudget
from pi05perf.report import headlines_everywhere, md, show, start

run = start("ch09_peers", profile=profile, device=device, dtype=dtype, repeats=repeats,
            eager_repeats=eager_repeats, headline_views=headline_views, text_tokens=text_tokens,
            headline_steps=headline_steps, action_horizon=action_horizon, default_views=default_views,
            default_horizon=default_horizon, lerobot_compile=lerobot_compile,
            lerobot_compile_mode=lerobot_compile_mode, ours_variants=ours_variants,
            torchao_schemes=torchao_schemes, torchao_compile=torchao_compile, prefill_tokens=prefill_tokens)
bad = [v for v in ours_variants if v not in pb.VARIANTS]
if bad:
    raise ValueError(f"parameter ours_variants has {bad}; allowed values: {'|'.join(pb.VARIANTS)}")
t0 = time.time()
lerobot_error = lerobot_pi05.import_error()
torchao_version = torchao_bench.available()
measure = run.full and run.cuda  # peers are timed at full size on a GPU only
show(md(peers.availability_text(lerobot_pi05.lerobot_version(), lerobot_error, torchao_version, measure)))

# %% [markdown]
# ## Is our model lerobot's model?
#
# `data/reference/lerobot_pi05_params.csv` lists every parameter tensor of lerobot 0.6.1's
# `PI05Pytorch` (built with random weights on the meta device; how it was produced is in
# `lerobot_pi05_params.md`). Our model is built the same way (full size, openpi's 257,152-token
# vocabulary) and both are grouped by component. `tests/test_fidelity.py` fails if a difference
# appears that is not in the allow-list below.

# %% tags=["hide-input"]
ours_params, lerobot_params = lerobot_pi05.ours_param_table(), lerobot_pi05.load_lerobot_params()
cmp = lerobot_pi05.compare_components(ours_params, lerobot_params)
mismatch = lerobot_pi05.mismatch_pct(cmp)
show(cmp[["component", "ours_count", "lerobot_count", "diff_pct", "shapes_equal", "reason"]])
diffs = pd.concat([lerobot_pi05.shape_differences(ours_params, lerobot_params, c).assign(component=c)
                   for c in lerobot_pi05.COMPONENTS], ignore_index=True)
unused = int(cmp[cmp.component.isin(lerobot_pi05.UNUSED)].lerobot_count.sum())
show(md(f"Largest parameter-count difference of any component: **{mismatch:g} %** "
        f"({int(cmp[cmp.component.isin(lerobot_pi05.COMPONENTS)].ours_count.sum()):,} parameters that run). "
        f"Tensor shapes that differ: {len(diffs)} "
        + ("(" + "; ".join(f"{r.component}: {r.shape} ours {r.ours_count}, lerobot {r.lerobot_count}"
                           for r in diffs.itertuples()) + ")" if len(diffs) else "")
        + f". lerobot also holds {unused:,} parameters in two LM heads that inference never uses "
        "(memory, not time)."))

# %% [markdown]
# Same tensors do not make the same computation. Reading lerobot's `modeling_pi05.py` and
# `pi_gemma.py` beside ours, these differences are not visible in a parameter table:
#
# | what | lerobot 0.6.1 | ours | openpi |
# |---|---|---|---|
# | precision with `dtype="bfloat16"` | vision tower, projector, every RMSNorm and adaRMS modulation Linear in **float32**; action/time projections stay float32 (outside the cast module) | everything bf16 | openpi's PyTorch port (`gemma_pytorch.py`) keeps only SigLIP's patch and position embeddings and the norms (including the adaRMS modulation Linears) in float32 |
# | prefix attention | additive 4-D mask, `eager` attention (scores materialised) | no mask (all tokens valid), SDPA | masked attention (the mask is all-true for pi0.5's prefix) |
# | per denoise step | clones the whole K/V cache (`clone_past_key_values`) | reads the cache in place | reads the cache |
# | time conditioning | time MLP + 37 adaRMS modulations every step | the same in `eager`; precomputed once per schedule in the fast paths | every step |
# | RoPE angles | a small matmul per call (counted as FLOPs below) | elementwise | elementwise |
#
# None of them changes the network's function (with all tokens valid, the mask is a no-op); the
# first three change its cost, and the first its rounding. Where lerobot departs from openpi (the
# whole vision path in fp32) ours follows neither; where the two agree (fp32 norms and modulations),
# ours differs from both. The parameter dtypes of lerobot's model, by component:

# %% tags=["hide-input"]
dt = lerobot_params.groupby(["component", "dtype"]).numel.agg(["count", "sum"]).reset_index()
show(dt.rename(columns={"count": "tensors_count", "sum": "params_count"}))

# %% tags=["hide-input"]
stages = lerobot_pi05.load_lerobot_stages()
rows, kv_rows = [], []
for cfg, views, horizon in (("headline", 2, 10), ("lerobot_default", 3, 50)):
    ours = flops.pipeline_cost(TokenBudget(num_images=views, action_horizon=horizon), 10).set_index("stage")
    lr = stages[(stages.config == cfg) & (stages.kind == "flops")].set_index("name").value.astype(float)
    for stage, key in (("vision", "vision"), ("prefill", "prefix"), ("denoise", "denoise")):
        rows.append({"config": cfg, "stage": stage, "lerobot_flops": lr[stage], "ours_flops": float(ours.flops[key]),
                     "diff_pct": 100 * (lr[stage] - ours.flops[key]) / ours.flops[key]})
    kv = stages[(stages.config == cfg) & (stages.kind == "kv_cache_bytes")].value.astype(float).iloc[0]
    kv_rows.append({"config": cfg, "prefix_tokens": views * 256 + text_tokens, "lerobot_kv_bytes": kv,
                    "ours_kv_bytes": float(ours.kv_bytes["prefix"])})
flop_cmp = pd.DataFrame(rows)
show(flop_cmp)
show(pd.DataFrame(kv_rows))
show(md(f"FLOPs counted by `FlopCounterMode` in lerobot's model against the book's analytic count "
        f"(`flops.pipeline_cost`, which chapter 1 checks against the same counter on our model), and the "
        f"K/V cache the prefill writes. Largest FLOP difference: **{flop_cmp.diff_pct.abs().max():.2g} %** "
        "(lerobot computes its RoPE angles with a small matmul)."))

# %% [markdown]
# ## lerobot and ours, same GPU, same run
#
# Both take 2 camera views, a 200-token prompt, 10 Euler steps and a 10-action chunk (pi05_libero),
# and lerobot's defaults too (3 image slots, chunk 50; eager only). Every path is first run on two
# fresh random inputs and must return finite, non-trivial actions (not constant, moved away from the
# starting noise); lerobot compiled must also agree with lerobot eager on the same inputs (cosine).
# Ours: chapter 7's paths, each checked against the float32 model first; "ours best" is the fastest
# that passed. Eager times are bound by Python dispatch (host overhead), not by the GPU. lerobot
# compiled launches its kernels from Python (torch.compile without CUDA graphs), ours best from one
# CUDA graph: so both calls are also profiled, and their GPU kernel time (summed kernel durations)
# set beside the wall time, to tell a host-bound call from a GPU-bound one.

# %% tags=["hide-input"]
lat_rows, ours_rows, failed, ours_kernels_ms = [], [], {}, math.nan
H = pipeline.Shape(views=headline_views, text_tokens=text_tokens, steps=headline_steps, horizon=action_horizon)
if measure:
    bench = pb.PipelineBench(pipeline.arch(True), run.device, run.dtype, run.repeats, [headline_steps],
                             eager_repeats=eager_repeats)
    runnable = pb.available_variants(run.device)
    for v in ours_variants:
        if v not in runnable:  # e.g. the split-KV path without Triton
            failed[v] = "not runnable on this device (pipeline_bench.available_variants)"
            continue
        try:
            ours_rows.append(bench.measure(v, "whole", H))
        except Exception as e:  # noqa: BLE001 - shown as failed below
            failed[v] = f"{type(e).__name__}: {str(e)[:200]}"
    try:  # ours best's GPU kernel time, profiled as chapter 7 profiles its calls (pipeline_kernels.profile_best)
        ours_kernels_ms = float(bench.kernels(pb.best(pd.DataFrame(ours_rows)).variant, "whole", H).total_ms.sum())
    except Exception as e:  # noqa: BLE001 - the kernel time stays unmeasured; the timings stand
        print(f"ours' kernel-time profile failed: {type(e).__name__}: {str(e)[:200]}")
    bench.release(*{kind for kind, _ in pb.VARIANTS.values()}, "fp8_all", "fp8_static")  # every model built
    del bench
    torch.cuda.empty_cache()
ours_df = pd.DataFrame(ours_rows)
print(f"[{time.time() - t0:.0f} s] ours measured")
ours_best = pb.best(ours_df) if len(ours_df) else None

# %% tags=["hide-input"]
if measure and not lerobot_error:
    args = (run.device, headline_views, text_tokens, headline_steps, action_horizon)
    rows_e, lr_eager, ref_out = lerobot_pi05.measure_lerobot(*args, eager_repeats)
    lat_rows += rows_e
    if lerobot_compile and lr_eager is not None:
        rows_c, lr_comp, _ = lerobot_pi05.measure_lerobot(*args, run.repeats, compile_mode=lerobot_compile_mode,
                                                  state_from=lr_eager, reference=ref_out, stages=False)
        lat_rows += rows_c
        del lr_comp
    del lr_eager
    torch.cuda.empty_cache()
    rows_d, lr_default, _ = lerobot_pi05.measure_lerobot(run.device, default_views, text_tokens, headline_steps,
                                                  default_horizon, eager_repeats, stages=False)
    lat_rows += [dict(r, path="lerobot_eager_defaults") for r in rows_d]
    del lr_default
    torch.cuda.empty_cache()
lat = pd.DataFrame(lat_rows)
print(f"[{time.time() - t0:.0f} s] lerobot measured")

# %% tags=["hide-input"]
def lr_ms(path: str, stage: str = "whole") -> float:
    if lat.empty:
        return math.nan
    r = lat[(lat.path == path) & (lat.stage == stage)]
    return float(r.median_ms.iloc[0]) if len(r) else math.nan


lerobot_eager_ms, lerobot_compiled_ms = lr_ms("lerobot_eager"), lr_ms("lerobot_compiled")
ours_best_ms = float(ours_best.median_ms) if ours_best is not None else math.nan
lerobot_kernels_ms = float(lat[(lat.path == "lerobot_compiled") & (lat.stage == "whole")].get(
    "kernels_ms", pd.Series(dtype=float)).max()) if len(lat) else math.nan  # NaN where it was not measured
table = lerobot_pi05.latency_table(ours_df, failed, lat, ours_best.variant if ours_best is not None else "",
                                   ours_kernels_ms)
if len(table):
    show(report.table(table.rename(columns={"kernels_ms": "GPU kernel time_ms"}), footnotes=[
        "GPU kernel time: the summed durations of one call's kernels (profiled as chapter 7 profiles its calls), "
        "measured for ours best and lerobot compiled only; – elsewhere."]))
else:
    committed = results.table("ch09_peers", "latency")
    show(md("Not measured in this run (no GPU, or lerobot absent). "
            + ("The committed GPU run's table:" if committed is not None else "No committed GPU run yet.")))
    if committed is not None:
        show(committed)

# %% tags=["hide-input"]
speedup = lerobot_compiled_ms / ours_best_ms
if measure and ours_best is not None:
    show(md(lerobot_pi05.compiled_comparison_text(ours_best.variant, ours_best_ms, ours_kernels_ms, lerobot_eager_ms,
                                                  lerobot_compiled_ms, lerobot_kernels_ms, lerobot_compile_mode)))

# %% [markdown]
# ## torchao on our prefill
#
# The seed tried torchao on Thor and found INT8 catastrophically slow and INT4 missing a dependency.
# Here the same torchao configs (INT8 dynamic activation + INT8 weight, INT4 weight-only with group
# size 128, float8 dynamic activation + weight per row) quantize every linear layer of our Gemma-2B
# prefill over the prefix tokens. Each is checked against bf16 on two fresh random inputs (cosine of
# the final hidden states plus the last layer's K), then timed on a third — eager, and with
# `torchao_compile = True` also with the blocks `torch.compile`'d; "speed vs bf16" is bf16's time over
# the scheme's time in the same mode.

# %% tags=["hide-input"]
ao = pd.DataFrame()
if measure and torchao_version:
    ao = torchao_bench.prefill_rows(run.device, prefill_tokens, schemes=tuple(torchao_schemes),
                                    compiled=torchao_compile, repeats=run.repeats)
print(f"[{time.time() - t0:.0f} s] torchao measured")
if ao.empty:
    committed_ao = results.table("ch09_peers", "torchao")
    show(md("torchao was not run here (" + ("not installed" if not torchao_version else "not a full GPU run")
            + "). " + ("The committed GPU run's table:" if committed_ao is not None else "No committed GPU run yet.")))
    if committed_ao is not None:
        show(peers.torchao_table(committed_ao))
else:
    show(peers.torchao_table(ao))
int8_ratio = torchao_bench.headline_ratio(ao, "int8_dyn") if len(ao) else math.nan
int4_ratio = torchao_bench.headline_ratio(ao, "int4_wo") if len(ao) else math.nan
if len(ao):
    modes = {s: torchao_bench.headline_mode(ao, s) or "failed" for s in ("int8_dyn", "int4_wo")}
    how = ("both eager: `torchao_compile = False`, no compiled run was attempted" if not torchao_compile else
           f"INT8 {modes['int8_dyn']}, INT4 {modes['int4_wo']}: compiled where both compiled runs (bf16's and the "
           "scheme's) succeeded, eager otherwise")
    eager_only = all(m == "eager" for m in modes.values())
    show(md(f"torchao INT8 runs our prefill at **{int8_ratio:.2f}×** bf16's speed and INT4 weight-only at "
            f"**{int4_ratio:.2f}×** ({how}). The seed "
            f"reported INT8 at {reference.quoted('quantlib_torchao_int8_speed_ratio'):g}× on Thor (quoted)."
            + (" Both ratios are **eager timings: host overhead** (Python dispatch of torchao's quantized tensor "
               "subclasses, op by op), not a measure of torchao's GPU kernels. They show that eager torchao is slow here "
               "as on Thor, not why, and no GPU verdict rests on them; chapter 5 times the quantized kernels themselves."
               if eager_only else "")))

# %% [markdown]
# ## Published peers, per unit of hardware
#
# Absolute milliseconds on a Thor, an RTX 4090, an RTX 5090 and an H200 cannot be compared: the
# devices differ by up to 18× in memory bandwidth. Each published pi0.5 latency (quoted, with its
# source in `data/reference/peers.csv`) is divided instead by the roofline floor of the same work —
# the same images encoded, prompt tokens, action horizon and steps, as peers.csv records them for
# that figure (where the source does not state them, they are assumed, and the table's notes say
# so), FLOPs and minimum bytes from `flops.pipeline_cost` — on that peer's own
# hardware (vendor spec sheets, dense tensor rates) at that peer's own precision: bf16 weights and
# the dense bf16 rate; FP8 weights and the dense FP8 rate; FP8+FP4 counted as if every weight were
# 4-bit, at twice the FP8 rate (so the floor stays a lower bound). "× floor" is comparable across
# devices; 1× would be a perfect implementation. GeForce rates are those with FP32 accumulation;
# an implementation accumulating in FP16 could beat that floor.

# %% tags=["hide-input"]
platform = next((p for p in ("H200", "H100") if p in results.device_name(run.device)), None)
ours_lat = (peers.measured_rows(platform, (("ours best (measured)", ours_best_ms),
                                          ("lerobot compiled (measured)", lerobot_compiled_ms),
                                          ("lerobot eager (measured)", lerobot_eager_ms)), headline_views, headline_steps)
            if measure and platform else [])
pf = peers.per_floor_table(ours_lat)
show(peers.per_floor_view(pf))
fast = pf[pf.source == "published"].sort_values("x_floor_ratio").iloc[0]
mine = pf[pf.peer == "ours best (measured)"]
show(md(f"Closest to its floor among the published figures: **{fast.peer}** on {fast.platform} "
        f"({fast.views} views, {fast.precision}) at **{fast.x_floor_ratio:.2f}×** its floor"
        + (f"; ours best on this device is at **{float(mine.x_floor_ratio.iloc[0]):.2f}×**. " if len(mine) else
           "; ours is not measured in this run (see chapter 7 for the committed runs). ")
        + peers.assumed_config_text(fast)))
# Every floor above, ours included, is a spec-sheet floor; chapter 7 divides by measured ceilings.
c7 = (peers.measured_ceiling_floor(results.device_slug(results.device_name(run.device)), headline_views,
                                   headline_steps, text_tokens, action_horizon) if len(mine) else None)
if len(mine):
    show(md(peers.measured_ceiling_text(mine, c7, ours_best_ms)))

# %% [markdown]
# ## What makes the fastest peers fast
#
# By "× floor" (at the configuration recorded for each figure, partly assumed: see the notes under
# the table), the closest published figure is Dexmal's on an RTX 4090 (Triton, bf16); on the
# Thor the fastest is FlashRT's NVFP4 tier. From what each publishes (the paper arXiv 2510.26742
# for Dexmal; `docs/pi05_thor.md` in LiangSu8899/FlashRT):
#
# * **Dexmal**: CUDA graphs remove the Python launch overhead (by itself about 2×: from over 100 ms to
#   40–50 ms for two views); the graph is simplified before any kernel work — RMSNorm's affine
#   scale folded into the next linear layer, the two consecutive action-branch linears folded into
#   one, the time branch precomputed for its 10 distinct timesteps and folded into a bias, Q/K/V
#   fused into one matmul; then kernel work: GEMM tile tuning, a partial split-K, scalar
#   operations fused into neighbouring kernels; checked against a roofline lower bound.
# * **FlashRT on Thor**: the whole call is one CUDA graph with no Python in the loop; FP8 weights and
#   activations with static per-tensor scales from calibration, NVFP4 (E2M1 with a scale per 16
#   elements, AWQ) for the FFNs and the decoder; FlashAttention-4 for SigLIP and the prefill; the
#   GeGLU fused into the gate/up GEMM's epilogue; norm and activation quantisation fused; GEMM tiles
#   chosen inside the pipeline. Its own profile puts two thirds of the frame in the FP4 GEMMs and the
#   decoder's GEMMs near their weight-bandwidth floor.

# %% tags=["hide-input"]
bv = ours_best.variant if ours_best is not None else ""
kind = pb.VARIANTS.get(bv, ("", None))
uses = {
    "one CUDA graph for the whole call": kind[1] == "all",
    "fused Q/K/V and gate/up projections": kind[0] not in ("", "eager"),
    "time conditioning precomputed per schedule": kind[0] not in ("", "eager", "fused"),
    "compiler fusion of norms / elementwise ops (torch.compile)": "compiled" in kind[0],
    "norm scale folded into the next linear": False,
    "FP8 / FP4 weights": kind[0].startswith("fp8"),
    "hand-tuned GEMM tiles, split-K, epilogue fusion (GeGLU)": False,
}
by = {"Dexmal": {0, 1, 2, 4, 6}, "FlashRT": {0, 1, 5, 6}}
tech = pd.DataFrame([{"technique": t, "Dexmal": "yes" if i in by["Dexmal"] else "-",
                      "FlashRT": "yes" if i in by["FlashRT"] else "-",
                      "ours best": ("yes" if u else "no") if bv else "not measured here"}
                     for i, (t, u) in enumerate(uses.items())])
show(tech)
show(md(f"Ours best in this run: **{bv or 'not measured'}**. A '-' means the peer does not say it does it."))

# %% tags=["hide-input"]
headline = {
    "lerobot_eager_2view_steps10_ms": lerobot_eager_ms,
    "lerobot_compiled_2view_steps10_ms": lerobot_compiled_ms,
    "lerobot_compiled_2view_steps10_kernels_ms": lerobot_kernels_ms,
    "ours_best_2view_steps10_kernels_ms": ours_kernels_ms,
    "ours_best_2view_steps10_ms": ours_best_ms,
    "ours_vs_lerobot_compiled_speedup_ratio": speedup,
    "fidelity_param_mismatch_pct": mismatch,
    "torchao_int8_prefill712_vs_bf16_ratio": int8_ratio,
    "torchao_int4wo_prefill712_vs_bf16_ratio": int4_ratio,
    # the measured ceilings this chapter quotes: chapter 7's, on this device (None where it quotes none)
    "floor_peak_bf16_tflops": c7["peak_tflops"] if c7 else None,
    "floor_copy_gbps": c7["copy_gbps"] if c7 else None,
}
tables = {"fidelity": cmp, "flops": flop_cmp, "per_floor": pf}
if len(table):
    tables["latency"] = table
if len(ao):
    tables["torchao"] = ao
path = results.save(run, headline, tables=tables)
print(f"saved {path}")
show(headlines_everywhere("ch09_peers"))
