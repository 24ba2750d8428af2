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
# # 3. Where the prefill time goes
#
# The 18-layer Gemma-2B prefill over 712 tokens, taken apart. The whole prefill is timed as
# eager PyTorch, with fused projections, as a CUDA graph and through `torch.compile`, each
# checked against a float32 reference first. The fastest path is then profiled kernel by
# kernel, and its GPU time summed per component beside each component's floor and the seed's
# Thor breakdown. Then the seed's "down_proj bandwidth anomaly", read from the kernels cuBLAS
# actually chose.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats; 0 means the profile default
prefix_tokens = 712  # 2 images x 256 + 200 text tokens
variants = ["eager", "eager_fused", "cuda_graph", "compile", "compile_cuda_graph"]  # prefill variants to time; compile_max_autotune is also available
split_k = [1, 2, 4]  # split-K factors tried on the GEMM shapes

# %% tags=["hide-input"]
import math

import altair as alt
import pandas as pd
import torch

from pi05perf import ceilings, config, flops, prefill_bench, profiling, reference, results
from pi05perf.check import TOLERANCE
from pi05perf.report import fmt, md, show, start, table, headlines_everywhere

run = start("ch03_prefill_breakdown", profile=profile, device=device, dtype=dtype, repeats=repeats,
            prefix_tokens=prefix_tokens, split_k=split_k)
cfg = config.GEMMA_2B if run.full else config.tiny_config(config.GEMMA_2B)
tokens = prefix_tokens if run.full else min(prefix_tokens, 64)
chosen = variants if run.cuda else [v for v in variants if v in ("eager", "eager_fused")]
if chosen != variants:
    print(f"on {run.device}: timing only {chosen} (CUDA graphs and compiled variants need a GPU here)")

# %% [markdown]
# ## The floor
# FLOPs of the prefill over the measured bf16 matmul peak, or its bytes over the measured
# copy bandwidth, whichever is larger (chapter 2 measured both).

# %% tags=["hide-input"]
ceil = ceilings.for_run(run)
here = ceilings.this_device(run, ceil)
cost = flops.stack_cost(cfg, tokens)
nbytes = cost["min_bytes"]
compute_floor_ms, memory_floor_ms = here.compute_ms(cost["flops"]), here.memory_ms(nbytes)
floor_ms = here.floor_ms(cost["flops"], nbytes)
md(f"{fmt(cost['flops'], 'FLOP')} and {fmt(nbytes, 'B')}: compute floor {compute_floor_ms:.2f} ms, "
   f"memory floor {memory_floor_ms:.2f} ms → **floor {floor_ms:.2f} ms** on {results.device_name(run.device)} "
   f"(ceilings: {ceil['source']}).")

# %% [markdown]
# ## What eager PyTorch costs, component by component (host overhead included)
# Each component of one layer timed alone as eager PyTorch (L2 flushed between runs),
# multiplied by the 18 layers. Each small op here pays Python's dispatch and a kernel launch,
# so this table is what eager PyTorch costs, not where the GPU spends its time: the profile of
# the best path below answers that, and the comparison with Thor is made there.

# %% tags=["hide-input"]
parts = prefill_bench.component_timings(cfg, tokens, run.device, run.dtype, run.repeats)
parts["tflops"] = parts.flops / (parts.ms_all_layers * 1e-3) / 1e12
parts["share_pct"] = 100 * parts.ms_all_layers / parts.ms_all_layers.sum()
show(parts[["component", "ms_per_layer", "ms_all_layers", "tflops", "share_pct"]].rename(
    columns={"ms_per_layer": "per_layer_ms", "ms_all_layers": "all_layers_ms", "tflops": "eager_tflops"}))

# %% [markdown]
# ## The whole prefill: eager, fused, CUDA graph, torch.compile
# Every variant is run on two fresh random inputs and compared with the float32 model
# (TF32 off) before it is timed: final hidden state and the last layer's K cache.

# %% tags=["hide-input"]
tol = TOLERANCE[run.dtype]
var, checked = prefill_bench.prefill_variants(cfg, tokens, run.device, run.dtype, run.repeats, chosen, tol)
var["x_floor_ratio"] = var.median_ms / floor_ms
show(var[["variant", "median_ms", "p25_ms", "p75_ms", "rel_err_vs_fp32", "x_floor_ratio"]])
alt.Chart(var).mark_bar().encode(
    x=alt.X("median_ms:Q", title="ms (median)"), y=alt.Y("variant:N", sort="x", title=None),
    tooltip=["variant", "median_ms", "p25_ms", "p75_ms", "rel_err_vs_fp32", "x_floor_ratio"]
) + alt.Chart(pd.DataFrame([{"floor": floor_ms}])).mark_rule(color="black", strokeDash=[4, 3]).encode(x="floor:Q")

# %% tags=["hide-input"]
eager = var.set_index("variant").loc["eager"]
best = var.loc[var.median_ms.idxmin()]
summed = parts.ms_all_layers.sum()
md(f"""Eager PyTorch runs the prefill in **{eager.median_ms:.2f} ms** ({eager.median_ms / floor_ms:.2f}× the floor;
host overhead included); the eager components timed one by one add up to {summed:.2f} ms. The fastest correct variant is **{best.variant}**
({prefill_bench.VARIANT_WORDS.get(best.variant, best.variant)}) at **{best.median_ms:.2f} ms**, {best.x_floor_ratio:.2f}× the floor of
{floor_ms:.2f} ms (relative error against fp32 {best.rel_err_vs_fp32:.1e}). This is the **prefill alone**: this chapter's
{cfg.depth}-layer model called by itself on its {tokens} input embeddings. Chapter 7's prefill runs inside the whole
pipeline (after the vision stage, writing the cache its denoise steps read) and is timed there as a stage of its own
paths, so its figure is a different implementation's, not this one's.""")

# %% [markdown]
# ## Where the best path's GPU time goes
# The best path (compiled, inside one CUDA graph) profiled with `torch.profiler`: its compiled
# function is run *without* the graph, so that each kernel can be tied to the op that launched
# it. Under graph replay the same kernels run but the launching ops are gone, so the replay is
# profiled too, by kernel name only, to compare the summed kernel durations. cuBLAS GEMMs are named by their weight's shape (inductor calls them as `aten::mm`),
# attention by the SDPA op, and everything else — inductor's fused Triton kernels for the
# norms, RoPE, residual adds and GeGLU — is *elementwise*. Each group's floor is its FLOPs
# over the measured peak or its bytes over the measured bandwidth; the elementwise floor counts
# each of those ops as its own kernel, so a fused kernel can beat it. Thor's breakdown is
# quoted from the seed (its "gate_up" includes the activation, here part of elementwise).

# %% tags=["hide-input"]
profiled = next((v for v in ("compile_cuda_graph", "compile", "eager_fused", "eager") if v in checked), None)
classify = profiling.default_classifier(cfg)
x_prof = torch.randn(1, tokens, cfg.width, device=run.device, dtype=run.dtype)
fn_prof = checked[profiled]
target = (lambda: fn_prof.fn(*fn_prof.inputs)) if hasattr(fn_prof, "fn") else (lambda: fn_prof(x_prof))
try:
    kernels = profiling.kernel_profile(target, run.device, runs=5, classify=classify)
    floors = prefill_bench.component_floors(cfg, tokens, ceil["matmul_bf16_tflops"], ceil["copy_gbps"])
    groups = profiling.by_group(kernels, floors)
    replayed = (profiling.kernel_profile(lambda: fn_prof.graph.replay(), run.device, runs=5)
                if hasattr(fn_prof, "graph") else None)
    profile_error = ""
except Exception as exc:  # noqa: BLE001 - the page says what failed; the chapter goes on
    kernels, groups, replayed, profile_error = None, None, None, f"{type(exc).__name__}: {exc}"
if groups is not None:
    show(groups[["group", "total_ms", "share_pct", "floor_ms", "x_floor_ratio", "calls_per_run"]])
else:
    show(md(f"**The kernel profile of {profiled} failed**: `{profile_error[:300]}`"))

# %% tags=["hide-input"]
thor_parts = {"gate_up_proj": "kv_breakdown_mlp_gate_up_silu_ms", "down_proj": "kv_breakdown_mlp_down_ms",
              "attention": "kv_breakdown_attention_ms", "qkvo_proj": "kv_breakdown_qkvo_proj_ms",
              "elementwise": "kv_breakdown_layernorm_ms"}
seed_parts = pd.DataFrame([{"group": g, "total_ms": reference.quoted(k)} for g, k in thor_parts.items()])
seed_parts["share_pct"] = 100 * seed_parts.total_ms / seed_parts.total_ms.sum()
what = f"{results.device_name(run.device)}, {profiled} ({'kernels' if run.cuda else 'CPU ops, smoke'})"
both = pd.concat([seed_parts.assign(series="Thor (quoted, seed)")] +
                 ([groups.assign(series=what)] if groups is not None else []))
alt.Chart(both).mark_bar().encode(
    x=alt.X("share_pct:Q", title="share of the prefill's time (%)"), y=alt.Y("series:N", title=None),
    color=alt.Color("group:N"), tooltip=["series", "group", "total_ms", "share_pct"]
).properties(title="Where the prefill time goes: best path profiled vs Thor (quoted)")

# %% tags=["hide-input"]
share = (lambda *g: float(groups[groups.group.isin(g)].share_pct.sum())) if groups is not None else (lambda *g: None)
if groups is not None:
    kernel_sum = groups.total_ms.sum()
    best_ms = float(var.set_index("variant").median_ms.get(profiled, float("nan")))
    replay_sum = replayed.total_ms.sum() if replayed is not None and len(replayed) else None
    same = replay_sum is not None and abs(replay_sum / kernel_sum - 1) <= 0.05
    show(md(f"""Profiled **{profiled}**{f" (the fastest variant measured was {best.variant})" if best.variant != profiled else ""}:
its kernels add up to {kernel_sum:.2f} ms per prefill{" (CPU ops' self time: the smoke run only exercises the code)" if not run.cuda else ""};
the timed path takes {best_ms:.2f} ms. {f"Replayed from its CUDA graph, the same prefill's kernels add up to {replay_sum:.2f} ms, "
f"{'within 5% of the profile without the graph: the kernels take the same time however they are launched' if same else 'not within 5% of the profile without the graph: the breakdown below is the unreplayed one'}; "
f"the remaining {max(0.0, best_ms - replay_sum):.2f} ms of the timed replay are gaps between kernels." if replay_sum else ""}
The MLP GEMMs (gate/up and down) take **{share('gate_up_proj', 'down_proj'):.0f}%** of the profiled time, attention
{share('attention'):.0f}%, elementwise kernels {share('elementwise'):.0f}% and the attention projections
{share('qkvo_proj'):.0f}%; the seed's Thor breakdown gives the MLP
{seed_parts.set_index('group').share_pct[['gate_up_proj', 'down_proj']].sum():.0f}% (quoted)."""))
    if run.cuda:
        show(md(prefill_bench.target_gap_text(groups, best_ms, floor_ms,
                                              max(0.0, best_ms - replay_sum) if replay_sum else None)))
    show(md("Which kernel ran each GEMM of the best path (names from the profiler):"))
    show(profiling.gemm_kernels(kernels))

# %% [markdown]
# ## The seed's "down_proj bandwidth anomaly"

# %% tags=["hide-input"]
md(f"""The seed measured down_proj (K = {config.GEMMA_2B.mlp_dim} ≫ N = {config.GEMMA_2B.width}) at
{reference.quoted("down_proj_bw_seq1_gbps"):.0f} GB/s for one token but {reference.quoted("down_proj_bw_seq712_gbps"):.0f} GB/s
at {prefix_tokens} tokens (quoted), a {reference.quoted("down_proj_bw_seq1_gbps") / reference.quoted("down_proj_bw_seq712_gbps"):.1f}×
drop, and blamed cuBLAS for K ≫ N. Those two figures are the same GEMM at two token counts, not down_proj against
the other projections. At {prefix_tokens} tokens this GEMM does {prefix_tokens} FLOPs per weight byte: it is
not waiting on bandwidth, so GB/s is the wrong yardstick. A GEMM with few output tiles can leave SMs idle in its last
wave; whether that is what happens depends on the tile the library actually picked, so each shape below is profiled
once and the kernel's name (which declares its tile) recorded: as nn.Linear lays it out, as a row-major weight, split
over K, and (on a GPU) as inductor's max-autotune GEMM. Each is checked against fp32 before it is timed.""")

# %% tags=["hide-input"]
shapes = {"down_proj": (tokens, cfg.width, cfg.mlp_dim), "gate_proj": (tokens, cfg.mlp_dim, cfg.width),
          "gate_up fused": (tokens, 2 * cfg.mlp_dim, cfg.width), "q_proj": (tokens, cfg.q_dim, cfg.width),
          "o_proj": (tokens, cfg.width, cfg.q_dim), "down_proj, 1 token": (1, cfg.width, cfg.mlp_dim)}
mm = prefill_bench.matmul_sweep(shapes, run.device, run.dtype, run.repeats, tuple(split_k),
                                autotune=("down_proj",) if run.full else ())
mm["kernel_name"] = mm.kernel.map(profiling.short_kernel_name)
show(mm[["gemm", "layout", "median_ms", "tflops", "kernel_name", "tile", "tiles"]].rename(columns={"tflops": "attained_tflops"}))
alt.Chart(mm).mark_bar().encode(
    x=alt.X("tflops:Q", title="TFLOP/s"), y=alt.Y("layout:N", title=None), row=alt.Row("gemm:N", title=None),
    color=alt.Color("layout:N", legend=None), tooltip=["gemm", "layout", "median_ms", "tflops", "kernel_name", "tiles"])

# %% tags=["hide-input"]
sms = torch.cuda.get_device_properties(run.device).multi_processor_count if run.cuda else None
thor_sms = int(reference.quoted("thor_sm_count"))
lin = prefill_bench.LINEAR_LAYOUT
down, gate = (mm[mm.gemm == g].set_index("layout") for g in ("down_proj", "gate_proj"))
thor_mn = {"down_proj": (prefix_tokens, config.GEMMA_2B.width), "gate_proj": (prefix_tokens, config.GEMMA_2B.mlp_dim)}
SPLIT_COL = "split-K in kernel name"


def split_named(row) -> str:
    """What the profiled kernel's name says about splitting K (the model below assumes no split)."""
    if row is None:
        return "no kernel named"
    kind = prefill_bench.declared_split(row.kernel)
    return f"yes ({kind}, factor not named)" if kind else "no"


wave_rows = []
for name, n_sm, rows, mn in ([("this device", sms, {"down_proj": down.loc[lin], "gate_proj": gate.loc[lin]},
                               {g: shapes[g][:2] for g in shapes})] if sms else []) + [("Thor", thor_sms, None, thor_mn)]:
    for g in ("down_proj", "gate_proj"):
        (tm, tn), named = (prefill_bench.tile_of(rows[g]), bool(rows[g].tile_named)) if rows else ((128, 256), False)
        wave_rows.append({"device": name, "gemm": g, "tile": f"{tm}x{tn}" + ("" if named else " (assumed)"),
                          "modelled_split_k": 1, SPLIT_COL: split_named(rows[g] if rows else None),
                          **flops.waves(*mn[g], n_sm, tm, tn)})

# %% tags=["hide-input"]
waves = pd.DataFrame(wave_rows)
waves["sm_use_pct"] = 100 * waves.pop("sm_utilisation")
split_rows = waves[waves[SPLIT_COL].str.startswith("yes")]
shown_waves = waves.astype({"tiles": object})  # a split-K kernel's grid is not the no-split tile count: dashes
shown_waves.loc[split_rows.index, ["tiles", "waves", "sm_use_pct"]] = None
show(table(shown_waves, footnotes=[
    f"{', '.join(f'{r.gemm} ({r.device})' for r in split_rows.itertuples())}: the kernel's name declares a split over K "
    "whose factor it does not give, so the tiles, waves and SM use of that row (modelled without a split) would not "
    "describe the grid that kernel ran: they are left out (–)."] if len(split_rows) else []))

# %% tags=["hide-input"]
thor_down, thor_gate = (flops.waves(*thor_mn[g], thor_sms) for g in ("down_proj", "gate_proj"))
seed_drop = reference.quoted("down_proj_bw_seq1_gbps") / reference.quoted("down_proj_bw_seq712_gbps")
wave_ratio = thor_gate['sm_utilisation'] / thor_down['sm_utilisation']
md(f"""**Thor, by the tile arithmetic (128×256 tiles assumed — the seed names no kernel).** down_proj at {prefix_tokens}
tokens has ⌈{prefix_tokens}/128⌉ × ⌈{config.GEMMA_2B.width}/256⌉ = {thor_down['tiles']} tiles over {thor_sms} SMs:
{thor_down['waves']:.1f} waves, i.e. {math.ceil(thor_down['waves'])} rounds of which the last is
{100 * (thor_down['waves'] % 1 or 1):.0f}% full, so {100 * thor_down['sm_utilisation']:.0f}% of the SM time is used: a loss of
about {100 * (1 - thor_down['sm_utilisation']):.0f}% against a perfectly filled grid (gate_proj, {thor_gate['tiles']} tiles:
{100 * thor_gate['sm_utilisation']:.0f}% used). Wave quantisation predicts a {wave_ratio:.2f}× slowdown of down_proj per FLOP
against gate_proj.""")

# %% tags=["hide-input"]
seed_down, seed_gate_up = reference.quoted("kv_breakdown_mlp_down_ms"), reference.quoted("kv_breakdown_mlp_gate_up_silu_ms")
seed_per_flop = seed_down / (seed_gate_up / 2)  # gate, up and down do the same FLOPs; the SiLU sits inside gate_up's time
md(f"""The seed's own per-FLOP comparison is in its breakdown (quoted): down_proj {seed_down:g} ms over the 18 layers against
{seed_gate_up:g} ms for gate, up and the SiLU together, so at most {seed_gate_up / 2:g} ms per gate or up GEMM, each of the
same FLOPs as down_proj: down_proj is **at least {seed_per_flop:.2f}× slower per FLOP** (the SiLU's share would make it
more). Tile arithmetic accounts for {wave_ratio:.2f}× of that; the remaining {seed_per_flop / wave_ratio:.2f}× is not
explained by the last wave on the tiles assumed here, and the seed names no kernel to test another tile against.
The seed's {reference.quoted("down_proj_bw_seq1_gbps"):.0f} → {reference.quoted("down_proj_bw_seq712_gbps"):.0f} GB/s
({seed_drop:.1f}×) is not a per-FLOP comparison at all: it is **the same GEMM at 1 token and at {prefix_tokens} tokens**,
the same weight bytes for {prefix_tokens}× the FLOPs, and a GEMM that stops streaming weights and starts computing
moves fewer bytes per second by design.""")

# %% tags=["hide-input"]
if run.cuda:
    show(md(prefill_bench.down_proj_text(mm)))
else:
    show(md("No kernel names on a CPU: the comparison with cuBLAS's choice needs a GPU run (committed results)."))

# %% tags=["hide-input"]
headline = {"prefill712_floor_ms" if tokens == 712 else "prefill_floor_ms": floor_ms,
            "prefill712_eager_ms" if tokens == 712 else "prefill_eager_ms": float(eager.median_ms),
            "prefill712_best_ms" if tokens == 712 else "prefill_best_ms": float(best.median_ms),
            "prefill712_best_vs_floor_ratio" if tokens == 712 else "prefill_best_vs_floor_ratio": float(best.x_floor_ratio),
            "down_proj_linear_tflops": float(down.tflops[lin]), "gate_proj_linear_tflops": float(gate.tflops[lin]),
            "profiled_best_mlp_share_pct": share("gate_up_proj", "down_proj"),
            "profiled_best_attention_share_pct": share("attention"),
            "profiled_best_elementwise_share_pct": share("elementwise"),
            "profiled_best_kernels_ms": float(groups.total_ms.sum()) if groups is not None else None,
            "thor_down_proj_wave_loss_pct": 100 * (1 - thor_down["sm_utilisation"]),
            **ceilings.headline(ceil)}
tables = [parts.assign(table="components"), var.assign(table="variants"), mm.assign(table="matmul_sweep"),
          waves.assign(table="waves")]
if groups is not None:
    tables += [groups.assign(table="profiled_groups"), kernels.assign(table="profiled_kernels")]
results.save(run, headline, pd.concat(tables, ignore_index=True));

# %% [markdown]
# ## This chapter on every device
# Headline figures of this chapter from every committed run, beside this build.

# %% tags=["hide-input"]
headlines_everywhere("ch03_prefill_breakdown")
