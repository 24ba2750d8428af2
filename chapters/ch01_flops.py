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
# # 1. Architecture, FLOPs and bytes
#
# Before timing anything: how much arithmetic and how much memory traffic does the
# pi0.5 prefix prefill need? This chapter counts both, op by op, from openpi's
# architecture, checks the count against PyTorch's FLOP counter, and lines it up
# against the seed report's own table.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full  (auto: full on a CUDA GPU, smoke on CPU)
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16 (auto: bfloat16 on CUDA, float32 on CPU)
repeats = 0  # timed repeats of the ceiling measurements; 0 means the profile default
prefix_tokens = 712  # tokens in the prefix: images x 256 + text
num_images = 2  # camera views
text_tokens = 200  # max_token_len of pi0.5

# %% tags=["hide-input"]
import altair as alt
import pandas as pd

from pi05perf import ceilings, config, flops, flopcheck, reference, results
from pi05perf.report import fmt, md, show, start, headlines_everywhere

run = start("ch01_flops", profile=profile, device=device, dtype=dtype, repeats=repeats,
            prefix_tokens=prefix_tokens, num_images=num_images, text_tokens=text_tokens)
budget = config.TokenBudget(num_images=num_images, text_tokens=text_tokens)

# %% [markdown]
# ## The model, from openpi
# Three stacks run in one pi0.5 inference: SigLIP encodes each camera image into 256
# tokens, the Gemma-2B prefix LM reads images + text once and leaves a K/V cache per
# layer, and the Gemma-300M action expert runs once per denoising step, its queries
# attending to that cache.

# %% tags=["hide-input"]
arch = pd.DataFrame([{k: getattr(c, k) for k in ("name", "kind", "width", "depth", "mlp_dim", "num_heads",
                                                   "num_kv_heads", "head_dim")} for c in config.MODELS.values()])
show(arch)
show(pd.DataFrame([{"stage": "image tokens", "tokens": budget.image_tokens},
                   {"stage": "text tokens (max)", "tokens": budget.text_tokens},
                   {"stage": "prefix total", "tokens": budget.prefix_tokens},
                   {"stage": "action tokens per denoise step", "tokens": budget.action_horizon}]))

# %% [markdown]
# ## The token budget: image slots and prompt length
# The seed (and this book's headline) count two camera views and the full 200-token prompt:
# a 712-token prefix. Two things move that number in practice. openpi's LIBERO policy fills
# **three** image slots (base, left wrist, and a right wrist LIBERO lacks: zeros, masked out of
# attention, yet encoded and carried through the prefill), so openpi computes 968 prefix
# tokens. And a real prompt is far shorter than the 200-token pad: openpi computes the padded
# positions (masked, not skipped), an engine that trims them does not. The table counts the
# whole call (vision, prefix, 10 denoise steps) for both slot counts and both prompt lengths;
# the floor divides by this device's ceilings (below).

# %% tags=["hide-input"]
ceil = ceilings.for_run(run)
this_device = ceilings.this_device(run, ceil)
typical = config.TYPICAL_PROMPT_TOKENS
budgets = [config.TokenBudget(num_images=slots, text_tokens=txt)
           for slots in (num_images, config.OPENPI_LIBERO_IMAGE_SLOTS) for txt in (text_tokens, typical)]
budget_costs = flops.budget_table(budgets, 10, hardware=this_device)
show(budget_costs[["image_slots", "text_tokens", "prefix_tokens", "prefix_flops", "call_flops", "call_floor_ms"]])
cost_of = budget_costs.set_index(["image_slots", "text_tokens"])
head_cost = cost_of.loc[(num_images, text_tokens)]
openpi_cost = cost_of.loc[(config.OPENPI_LIBERO_IMAGE_SLOTS, text_tokens)]
trimmed_cost = cost_of.loc[(num_images, typical)]
md(f"""openpi's three slots cost {100 * (openpi_cost.call_flops / head_cost.call_flops - 1):.0f}% more FLOPs per call than
the headline's two views ({int(openpi_cost.prefix_tokens)} against {int(head_cost.prefix_tokens)} prefix tokens); a
{typical}-token prompt instead of the 200-token pad saves {100 * (1 - trimmed_cost.call_flops / head_cost.call_flops):.0f}%.
The {typical} is an **estimate**, not a tokenization: openpi's pi05_libero sets `discrete_state_input=False`, so
its prompt is the instruction alone (BOS, ~12–18 Gemma tokens of instruction, a line break); with discrete state, openpi's
default for pi0.5 and what lerobot's pi05 processor always does, the state values are written into the prompt as well
and it is several times longer. The book's headline stays at **{num_images} views and {text_tokens} text tokens**, the
seed's configuration, so that every figure compares with the seed's; chapter 7 times all four.""")

# %% [markdown]
# ## One Gemma-2B layer, op by op
# FLOPs here are matrix-unit FLOPs: 2·M·N·K per matmul, attention counted in full
# (Q·Kᵀ and attention·V, all 8 query heads, bidirectional over the prefix). Elementwise
# ops cost bytes, not matmul FLOPs. Bytes assume bf16.

# %% tags=["hide-input"]
ops = flops.layer_ops(config.GEMMA_2B, prefix_tokens)
op_table = pd.DataFrame([vars(o) for o in ops])
op_table["intensity_flop_per_byte"] = op_table.flops / (op_table.weight_bytes + op_table.act_bytes + op_table.kv_bytes)
show(op_table.rename(columns={"flops": "work_flops"}))
alt.Chart(op_table[op_table.flops > 0]).mark_bar().encode(
    x=alt.X("flops:Q", title="FLOPs per layer"), y=alt.Y("name:N", sort="-x", title=None),
    tooltip=["name", "m", "n", "k", "flops", "weight_bytes"],
).properties(title=f"Gemma-2B layer at {prefix_tokens} prefix tokens")

# %% [markdown]
# ## The count, checked against PyTorch's FLOP counter
# The lib's own model is built at full size on the `meta` device and run under
# `FlopCounterMode`; the analytic count must agree exactly.

# %% tags=["hide-input"]
checks = []
for cfg, tok, kv in [(config.GEMMA_2B, prefix_tokens, None),
                     (config.GEMMA_300M, budget.action_horizon, prefix_tokens + budget.action_horizon),
                     (config.SIGLIP_SO400M, config.TOKENS_PER_IMAGE, None)]:
    analytic = flops.stack_cost(cfg, tok, kv_tokens=kv, include_stem=True)["flops"]
    counted = flopcheck.counted_flops(cfg, tok, kv_tokens=kv)
    checks.append({"stack": cfg.name, "tokens": tok, "analytic_flops": analytic, "counter_flops": counted,
                   "agree": analytic == counted})
checks = pd.DataFrame(checks)
show(checks)
assert checks.agree.all(), "analytic FLOPs disagree with FlopCounterMode"

# %% [markdown]
# ## The seed's FLOP table beside ours

# %% tags=["hide-input"]
seed_cmp = flops.compare_with_seed(prefix_tokens)
show(seed_cmp)
total = flops.prefill_flops(config.GEMMA_2B, prefix_tokens)
weights = flops.prefill_weight_bytes(config.GEMMA_2B)
by_op = seed_cmp.set_index("op")
attn_ours = by_op.ours_flops["attn_scores"] + by_op.ours_flops["attn_values"]
md(f"""The projections and the MLP agree with the seed to rounding. The disagreement is
attention: the seed writes {fmt(by_op.seed_printed_flops["attn_scores"], 'FLOP')} for the score matrix
({prefix_tokens}²×{config.GEMMA_2B.head_dim}, counted once), while Q·Kᵀ and attention·V over
{config.GEMMA_2B.num_heads} heads cost {fmt(attn_ours, 'FLOP')}, {attn_ours / by_op.seed_printed_flops["attn_scores"]:.0f}× more.
It does not change the picture: attention is still
{100 * attn_ours / by_op.ours_flops["layer"]:.1f}% of the layer. The 18-layer total is
{fmt(total, 'FLOP')} (the seed prints {fmt(reference.quoted('flops_total_18_layers_gflop') * 1e9, 'FLOP')}; its method,
recomputed unrounded, gives {fmt(by_op.seed_method_flops['total_18_layers'], 'FLOP')}),
and the layers' bf16 weights are {fmt(weights, 'B')} (the seed: {reference.quoted("weights_total_bf16_gb"):.2f} GB).""")

# %% [markdown]
# ## Arithmetic intensity against the ridge points
# A kernel whose FLOPs per byte fall below a device's ridge point (peak FLOP/s over
# bandwidth) is memory-bound there; above it, compute-bound. At T prefix tokens every
# weight byte is used for about T FLOPs (2 FLOPs per bf16 element per token), so the
# prefill's intensity grows linearly with T. Bytes here are the fewest any implementation
# must move: weights once, the K/V cache written, input and output; intermediate
# activations can stay on chip.

# %% tags=["hide-input"]
devices = [config.THOR_SPEC, config.THOR_SEED_MEASURED, this_device]
show(pd.DataFrame([{"device": d.name, "bandwidth_gbps": d.bandwidth_gbps, "bf16_tflops": d.bf16_tflops,
                    "ridge_flop_per_byte": d.ridge_bf16, "source": d.source} for d in devices]))

sweep = pd.DataFrame([{"tokens": t, "intensity": flops.arithmetic_intensity(
    flops.prefill_flops(config.GEMMA_2B, t), flops.stack_cost(config.GEMMA_2B, t)["min_bytes"])}
    for t in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 712, 1024, 2048, 4096]])
ridges = pd.DataFrame([{"device": d.name, "ridge": d.ridge_bf16} for d in devices])
line = alt.Chart(sweep).mark_line(point=True).encode(
    x=alt.X("tokens:Q", scale=alt.Scale(type="log"), title="prefix tokens"),
    y=alt.Y("intensity:Q", scale=alt.Scale(type="log"), title="FLOPs per byte (18-layer prefill)"))
rules = alt.Chart(ridges).mark_rule(strokeDash=[4, 3]).encode(y="ridge:Q", color=alt.Color("device:N"))
(line + rules).properties(title="Prefill arithmetic intensity vs ridge points")

# %% tags=["hide-input"]
floors = flops.bound_table(config.GEMMA_2B, prefix_tokens, devices)
at = floors.intensity_flop_per_byte[0]
show(floors)
md(f"""At {prefix_tokens} tokens the prefill does {at:.0f} FLOPs per byte. On Thor's spec
(ridge {config.THOR_SPEC.ridge_bf16:.0f}) that is **{floors.bound[0]}-bound**, with a floor of
{floors.floor_ms[0]:.1f} ms; at the seed's measured {config.THOR_SEED_MEASURED.bandwidth_gbps:.1f} GB/s the ridge moves to
{config.THOR_SEED_MEASURED.ridge_bf16:.0f} and the floor to {floors.floor_ms[1]:.1f} ms. On this device
(ridge {this_device.ridge_bf16:.0f}, ceilings: {this_device.source}) it is {floors.bound[2]}-bound.
Chapter 2 measures these ceilings properly and gives the verdict on the seed's "memory-bound, ~22 ms floor".""")

# %% tags=["hide-input"]
headline = {"prefill712_flops" if prefix_tokens == 712 else "prefill_flops": total,
            "prefill_weight_bytes": weights,
            "prefill_intensity_flop_per_byte": at,
            "thor_spec_floor_ms": floors.floor_ms[0],
            "thor_seed_bw_floor_ms": floors.floor_ms[1],
            "prefix_openpi_libero_tokens": int(openpi_cost.prefix_tokens),
            f"pipeline_{config.OPENPI_LIBERO_IMAGE_SLOTS}slot_text{text_tokens}_flops": int(openpi_cost.call_flops),
            f"pipeline_{num_images}view_text{typical}_flops": int(trimmed_cost.call_flops),
            f"pipeline_{num_images}view_text{text_tokens}_flops": int(head_cost.call_flops),
            **ceilings.headline(ceil)}
results.save(run, headline, op_table);

# %% [markdown]
# ## This chapter on every device
# Headline figures of this chapter from every committed run, beside this build.

# %% tags=["hide-input"]
headlines_everywhere("ch01_flops")
