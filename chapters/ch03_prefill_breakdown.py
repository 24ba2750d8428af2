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
# The 18-layer Gemma-2B prefill over 712 tokens, taken apart: each component timed alone,
# the whole prefill timed as eager PyTorch, with fused projections, as a CUDA graph and
# through `torch.compile`, each checked against a float32 reference first. Then the seed's
# "down_proj bandwidth anomaly", explained in tiles and waves, and fixes measured.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats; 0 means the profile default
prefix_tokens = 712  # 2 images x 256 + 200 text tokens
variants = ["eager", "eager_fused", "cuda_graph", "compile", "compile_cuda_graph"]  # prefill variants to time; compile_max_autotune is also available
split_k = [1, 2, 4]  # split-K factors tried on the GEMM shapes

# %% tags=["hide-input"]
import altair as alt
import pandas as pd
import torch

from pi05perf import ceilings, config, flops, prefill_bench, reference, results
from pi05perf.check import TOLERANCE
from pi05perf.report import fmt, md, show, start, headlines_everywhere
from pi05perf.timing import iqr_overlap

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
cost = flops.stack_cost(cfg, tokens)
nbytes = cost["min_bytes"]
compute_floor_ms = cost["flops"] / (ceil["matmul_bf16_tflops"] * 1e12) * 1e3
memory_floor_ms = nbytes / (ceil["copy_gbps"] * 1e9) * 1e3
floor_ms = max(compute_floor_ms, memory_floor_ms)
md(f"{fmt(cost['flops'], 'FLOP')} and {fmt(nbytes, 'B')}: compute floor {compute_floor_ms:.2f} ms, "
   f"memory floor {memory_floor_ms:.2f} ms → **floor {floor_ms:.2f} ms** on {results.device_name(run.device)} "
   f"(ceilings: {ceil['source']}).")

# %% [markdown]
# ## Component by component
# Each component of one layer timed alone (L2 flushed between runs), multiplied by the 18
# layers, beside the seed's Thor breakdown (quoted).

# %% tags=["hide-input"]
parts = prefill_bench.component_timings(cfg, tokens, run.device, run.dtype, run.repeats)
parts["tflops"] = parts.flops / (parts.ms_all_layers * 1e-3) / 1e12
parts["share_pct"] = 100 * parts.ms_all_layers / parts.ms_all_layers.sum()
show(parts)
seed_parts = pd.DataFrame([
    {"component": "gate_up_geglu", "ms": reference.quoted("kv_breakdown_mlp_gate_up_silu_ms")},
    {"component": "down_proj", "ms": reference.quoted("kv_breakdown_mlp_down_ms")},
    {"component": "attention", "ms": reference.quoted("kv_breakdown_attention_ms")},
    {"component": "qkv_proj + o_proj", "ms": reference.quoted("kv_breakdown_qkvo_proj_ms")},
    {"component": "norms_residual", "ms": reference.quoted("kv_breakdown_layernorm_ms")}])
seed_parts["share_pct"] = 100 * seed_parts.ms / seed_parts.ms.sum()
ours = parts.assign(component=parts.component.replace({"qkv_proj": "qkv_proj + o_proj", "o_proj": "qkv_proj + o_proj"}))
ours = ours.groupby("component", as_index=False).ms_all_layers.sum().rename(columns={"ms_all_layers": "ms"})
ours["share_pct"] = 100 * ours.ms / ours.ms.sum()
both = pd.concat([seed_parts.assign(series="Thor (quoted, seed)"),
                  ours.assign(series=f"{results.device_name(run.device)} (measured)")])
alt.Chart(both).mark_bar().encode(
    x=alt.X("share_pct:Q", title="share of the summed components (%)"), y=alt.Y("series:N", title=None),
    color=alt.Color("component:N"), tooltip=["series", "component", "ms", "share_pct"]
).properties(title="Where the prefill time goes")

# %% [markdown]
# ## The whole prefill: eager, fused, CUDA graph, torch.compile
# Every variant is run on two fresh random inputs and compared with the float32 model
# (TF32 off) before it is timed: final hidden state and the last layer's K cache.

# %% tags=["hide-input"]
tol = TOLERANCE[run.dtype]
var, checked = prefill_bench.prefill_variants(cfg, tokens, run.device, run.dtype, run.repeats, chosen, tol)
var["x_floor"] = var.median_ms / floor_ms
show(var)
alt.Chart(var).mark_bar().encode(
    x=alt.X("median_ms:Q", title="ms (median)"), y=alt.Y("variant:N", sort="x", title=None),
    tooltip=["variant", "median_ms", "p25_ms", "p75_ms", "rel_err_vs_fp32", "x_floor"]
) + alt.Chart(pd.DataFrame([{"floor": floor_ms}])).mark_rule(color="black", strokeDash=[4, 3]).encode(x="floor:Q")

# %% tags=["hide-input"]
eager = var.set_index("variant").loc["eager"]
best = var.loc[var.median_ms.idxmin()]
summed = parts.ms_all_layers.sum()
md(f"""Eager PyTorch runs the prefill in **{eager.median_ms:.2f} ms** ({eager.median_ms / floor_ms:.2f}× the floor);
the components timed one by one add up to {summed:.2f} ms. The fastest correct variant is **{best.variant}** at
**{best.median_ms:.2f} ms**, {best.x_floor:.2f}× the floor of {floor_ms:.2f} ms (relative error against fp32
{best.rel_err_vs_fp32:.1e}).""")

# %% [markdown]
# ## What stands between the best variant and the floor
# The best variant without CUDA graphs, profiled kernel by kernel and summed by kind, against
# each kind's own floor: matmul and attention FLOPs over the measured matmul peak; the
# elementwise work (norms, RoPE, GeGLU, residual adds) is pure memory traffic.

# %% tags=["hide-input"]
profiled = next((v for v in ("compile", "eager_fused", "eager") if v in checked), None)
if run.cuda and profiled:
    x_prof = torch.randn(1, tokens, cfg.width, device=run.device, dtype=run.dtype)
    kinds = prefill_bench.kernel_breakdown(lambda: checked[profiled](x_prof), run.device)
    ops = flops.layer_ops(cfg, tokens)
    peak = ceil["matmul_bf16_tflops"] * 1e12
    own_floor = {"matmul": sum(o.flops for o in ops if o.flops and not o.name.startswith("attn")) * cfg.depth / peak * 1e3,
                 "attention": sum(o.flops for o in ops if o.name.startswith("attn")) * cfg.depth / peak * 1e3}
    kinds["floor_ms"] = kinds.kind.map(own_floor).fillna(0.0)
    kinds["excess_ms"] = kinds.ms_per_call - kinds.floor_ms
    show(kinds)
    top = kinds.loc[kinds.excess_ms.idxmax()]
    show(md(f"""Profiled **{profiled}**: its kernels add up to {kinds.ms_per_call.sum():.2f} ms per prefill. The largest
excess over its own floor is **{top.kind}**, {top.excess_ms:.2f} ms above. The matmuls alone run at
{own_floor["matmul"] / kinds.set_index("kind").ms_per_call.get("matmul", float("nan")) * 100:.0f}% of the measured
peak; the ratio of best to floor is {best.x_floor:.2f}, against the target of 1.25."""))
else:
    show(md("Kernel-level profile skipped: it needs a CUDA GPU."))

# %% [markdown]
# ## The seed's "down_proj bandwidth anomaly"

# %% tags=["hide-input"]
md(f"""The seed measured down_proj (K = {config.GEMMA_2B.mlp_dim} ≫ N = {config.GEMMA_2B.width}) at
{reference.quoted("down_proj_bw_seq1_gbps"):.0f} GB/s for one token but {reference.quoted("down_proj_bw_seq712_gbps"):.0f} GB/s
at {prefix_tokens} tokens (quoted) and blamed cuBLAS for K ≫ N. At {prefix_tokens} tokens this GEMM does {prefix_tokens} FLOPs
per weight byte: it is not waiting on bandwidth, so GB/s is the wrong yardstick. What limits it is how many output
tiles it has: M×N = {prefix_tokens}×{config.GEMMA_2B.width} makes few tiles, too few to fill every SM, while the gate/up
GEMM (N = {config.GEMMA_2B.mlp_dim}) has {config.GEMMA_2B.mlp_dim // config.GEMMA_2B.width}× as many. Below, each MLP
and projection shape as nn.Linear lays it out, as a row-major weight, split over K, and (on a GPU) as inductor's
max-autotune GEMM.""")

# %% tags=["hide-input"]
shapes = {"down_proj": (tokens, cfg.width, cfg.mlp_dim), "gate_proj": (tokens, cfg.mlp_dim, cfg.width),
          "gate_up fused": (tokens, 2 * cfg.mlp_dim, cfg.width), "q_proj": (tokens, cfg.q_dim, cfg.width),
          "o_proj": (tokens, cfg.width, cfg.q_dim), "down_proj, 1 token": (1, cfg.width, cfg.mlp_dim)}
mm = prefill_bench.matmul_sweep(shapes, run.device, run.dtype, run.repeats, tuple(split_k),
                                autotune=("down_proj",) if run.full else ())
show(mm)
alt.Chart(mm).mark_bar().encode(
    x=alt.X("tflops:Q", title="TFLOP/s"), y=alt.Y("layout:N", title=None), row=alt.Row("gemm:N", title=None),
    color=alt.Color("layout:N", legend=None), tooltip=["gemm", "layout", "median_ms", "tflops", "weight_gbps", "tiles", "sm_utilisation"])

# %% tags=["hide-input"]
sms = torch.cuda.get_device_properties(run.device).multi_processor_count if run.cuda else None
thor_sms = int(reference.quoted("thor_sm_count"))
waves = pd.DataFrame([{"device": name, "shape": s, "split_k": k, **prefill_bench.waves(M, N, n_sm, split_k=k)}
                      for name, n_sm in ([("this device", sms)] if sms else []) + [("Thor", thor_sms)]
                      for s, (M, N, K) in [("down_proj", shapes["down_proj"]), ("gate_proj", shapes["gate_proj"])]
                      for k in split_k])
show(waves)
down = mm[mm.gemm == "down_proj"].set_index("layout")
gate = mm[mm.gemm == "gate_proj"].set_index("layout")
lin = "linear (W[N,K], x@W.T)"
best_down = down.tflops.idxmax()
md(f"""On this device down_proj as nn.Linear runs at {down.tflops[lin]:.0f} TFLOP/s against gate_proj's
{gate.tflops[lin]:.0f} (same FLOPs). Counted the seed's way — weight bytes over time — that is
{down.weight_gbps[lin]:.0f} GB/s, far below the copy bandwidth, but the op is busy computing, not reading.
The best layout for down_proj here is **{best_down}** at {down.tflops[best_down]:.0f} TFLOP/s
({down.tflops[best_down] / down.tflops[lin]:.2f}× nn.Linear{"; within the noise" if iqr_overlap(down, best_down, lin) else ""}).
On Thor's {thor_sms} SMs the 128×256-tile grid of down_proj has
{prefill_bench.waves(*shapes['down_proj'][:2], thor_sms)['tiles']} tiles, i.e.
{prefill_bench.waves(*shapes['down_proj'][:2], thor_sms)['waves']:.1f} waves with the last one partly idle:
the same tile arithmetic, different numbers.""")

# %% tags=["hide-input"]
headline = {"prefill712_floor_ms" if tokens == 712 else "prefill_floor_ms": floor_ms,
            "prefill712_eager_ms" if tokens == 712 else "prefill_eager_ms": float(eager.median_ms),
            "prefill712_best_ms" if tokens == 712 else "prefill_best_ms": float(best.median_ms),
            "prefill712_best_vs_floor_ratio" if tokens == 712 else "prefill_best_vs_floor_ratio": float(best.x_floor),
            "down_proj_linear_tflops": float(down.tflops[lin]), "gate_proj_linear_tflops": float(gate.tflops[lin]),
            "floor_peak_bf16_tflops": float(ceil["matmul_bf16_tflops"]), "floor_copy_gbps": float(ceil["copy_gbps"])}
results.save(run, headline, pd.concat([parts.assign(table="components"), var.assign(table="variants"),
                                       mm.assign(table="matmul_sweep")], ignore_index=True))

# %% [markdown]
# ## This chapter on every device
# Headline figures of this chapter from every committed run, beside this build.

# %% tags=["hide-input"]
headlines_everywhere("ch03_prefill_breakdown")
