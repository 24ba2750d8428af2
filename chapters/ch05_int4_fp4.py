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
# # 5. Why INT4 / FP4 failed
#
# The seed's plan B was INT4: a quarter of the bits per weight, so (it projected) a
# correspondingly faster prefill and most of the prefill's time saved. On Thor every 4-bit attempt (TensorRT NVFP4, PyTorch
# NVFP4, FP4 weights with FP8 activations) came out at cos ≈ 0 against the bf16 model, and the
# TensorRT logs read `[DEQUANTIZE] [SCALE] has invalid precision FP4, ignored`. INT8 through
# `torch._int_mm` ran no faster than bf16 and torchao was slower still (the seed's figures are
# quoted where they are compared below). This chapter separates the two questions
# the seed merged: **is 4-bit accurate** (with its scales, and under each way a runtime can
# misread a quantized weight: scales dropped, nibbles or scales in the wrong layout, FP4 codes
# read as integers), and **would it be fast** (weight-only INT4 and INT8 against bf16, from one
# token to 2048, through torch's decode kernel and through a prefill-class kernel, and the
# roofline of the 712-token prefill).

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # timed repeats, 0 for the profile default
prefix_tokens = 712  # 2 images x 256 + 200 text tokens
sweep_tokens = [1, 4, 16, 64, 128, 256, 512, 712, 1024, 2048]  # token counts of the one-projection sweep
group_size = 128  # INT4 group along K (32, 64, 128 or 256)
fault_schemes = ["int4wo", "nvfp4_sim", "int8", "fp8_channel"]  # each run with its scales and with them dropped
fault_coverage = "full"  # projections quantized in the accuracy experiment, mlp | attn | full
prefill_variants = ["base/eager", "int4wo/full/eager", "int8/full/eager"]  # whole prefills timed at prefix_tokens

# %% tags=["hide-input"]
import altair as alt
import pandas as pd
import torch

from pi05perf import (ceilings, config, lowbit_bench as LB, lowbit_findings, precision as Q, precision_bench as PB,
                      quantized_prefill, reference, results, torchao_bench)
from pi05perf.precision import w4a16_triton as W4
from pi05perf.report import md, show, side_by_side, start, table

say = lambda text: show(md(text))  # noqa: E731  (markdown from computed values, shown where it is built)
run = start("ch05_int4_fp4", profile=profile, device=device, dtype=dtype, repeats=repeats,
            prefix_tokens=prefix_tokens, sweep_tokens=sweep_tokens)
if group_size not in (32, 64, 128, 256):
    raise ValueError(f"parameter group_size={group_size!r} is not allowed; allowed values: 32|64|128|256")
if fault_coverage not in quantized_prefill.COVERAGE:
    raise ValueError(f"parameter fault_coverage={fault_coverage!r} is not allowed; allowed values: {'|'.join(quantized_prefill.COVERAGE)}")
bad = [s for s in fault_schemes if s not in Q.SCHEMES or s == "bf16"]
if bad:
    raise ValueError(f"parameter fault_schemes has {bad}; allowed values: {'|'.join(s for s in Q.SCHEMES if s != 'bf16')}")
cfg = config.GEMMA_2B if run.full else config.tiny_config(config.GEMMA_2B, width=256, num_heads=4, head_dim=64)
tokens = prefix_tokens if run.full else min(prefix_tokens, 64)
tokens_list = sweep_tokens if run.full else [t for t in sweep_tokens if t in (1, 64, prefix_tokens)]
name = results.device_name(run.device)
notes = []
if not Q.fp8_supported(run.device):
    notes.append("no FP8 matmul: FP8 layers run as an exact simulation (accuracy only) and the FP8 kernel is left out of the sweep")
if run.device.type == "cpu":
    notes.append("INT4 and INT8 run torch's CPU kernels (_weight_int4pack_mm_for_cpu, _int_mm): they are correct, but their "
                 "times say nothing about the CUDA kernels (tinygemm, cuBLASLt INT8)")
notes.append("NVFP4 runs as an exact simulation everywhere: torch has no FP4 matmul to call (Blackwell's block-scaled FP4 "
             "MMA is reached through TensorRT, cuBLASLt or CUTLASS), so NVFP4 is measured for accuracy only")
say(f"On {name}: " + "; ".join(notes) + ".")

# %% [markdown]
# ## The premise on paper: less weight traffic is not less time
# The prefill's floor for each weight and compute precision: FLOPs over the peak of the
# precision the matrix units compute in, or the fewest bytes (weights once, the KV cache,
# input and output) over the copy bandwidth, whichever is larger. Weight-only INT4 shrinks
# the weight bytes but dequantizes them and computes in bf16, at the bf16 peak. FP8 and
# NVFP4 shrink the weights *and* compute at their own, higher peak. Thor from its spec
# (quoted), this device from its measured ceilings.

# %% tags=["hide-input"]
thor, here = PB.floor_devices(run)
floors = PB.precision_floors(config.GEMMA_2B, prefix_tokens, [thor, here])
show(floors.assign(weight_bytes=floors.weight_gb * 1e9)[
    ["device", "precision", "weight_bytes", "memory_ms", "compute_ms", "floor_ms", "bound", "speedup_vs_bf16_floor",
     "weight_traffic_ratio"]].rename(columns={"speedup_vs_bf16_floor": "floor_speedup_vs_bf16_ratio"}))
alt.Chart(floors.dropna(subset=["floor_ms"])).mark_bar().encode(
    x=alt.X("floor_ms:Q", title=f"floor of the {prefix_tokens}-token prefill (ms)"),
    y=alt.Y("precision:N", title=None, sort=None), row=alt.Row("device:N", title=None),
    color=alt.Color("bound:N"), tooltip=["device", "precision", "memory_ms", "compute_ms", "floor_ms"]
).properties(title="Weight bits vs compute bits: the prefill floor", height=120)

# %% tags=["hide-input"]
ft = floors[floors.device == "Thor (quoted)"].set_index("precision")
fh = floors[floors.device == "this device (measured)"].set_index("precision")
BF, I4, F8, F4 = ("bf16 weights, bf16 compute", "INT4 weight-only (group 128), bf16 compute",
                  "FP8 weights, FP8 compute", "NVFP4 weights, FP4 compute")
seed_x = reference.quoted("int4proj_int4_speedup_ratio")
say(f"""The seed expected **{seed_x:.0f}×** from INT4 because it divided only the weight bytes. On Thor's spec the
bf16 prefill's memory floor is {ft.memory_ms[BF]:.1f} ms and its compute floor {ft.compute_ms[BF]:.1f} ms; INT4 weights
cut the first to {ft.memory_ms[I4]:.1f} ms but leave the second, so the floor falls only to {ft.floor_ms[I4]:.1f} ms:
**at most {ft.speedup_vs_bf16_floor[I4]:.2f}×**. The {prefix_tokens}-token prefill needs low-precision *compute*:
FP8 tensor cores bound it at {ft.speedup_vs_bf16_floor[F8]:.2f}×, NVFP4 at {ft.speedup_vs_bf16_floor[F4]:.2f}×.
On this device the INT4 weight-only bound is {fh.speedup_vs_bf16_floor[I4]:.2f}× (the prefill is {fh.bound[BF]}-bound
in bf16 here).""")

# %% [markdown]
# ## Accuracy, one layer: what misreading a quantized weight does
# A quantized weight is codes and scales: W ≈ code × scale. A runtime can get either wrong.
# Dropping the scales (every scale read as 1) multiplies the weights by 1/scale: the
# direction of each row survives, only where per-group scales differ is it bent, and the
# magnitude grows by about 1/scale. Reading the codes in the wrong *order* (the two nibbles of
# a byte swapped, the buffer read in the other major order, channels permuted) gives an
# unrelated weight of the same size. Reading FP4 E2M1 codes (sign bit and a non-uniform
# magnitude) as INT4 integers keeps the sign of some values and bends the rest. Layer 0's
# query projection of the model (its weight and its real input, the normed embeddings of fresh
# random tokens), quantized and read each of these ways: `weight_cos` compares the weight the
# runtime uses with the true one, `out_cos` and `out_norm_ratio` the layer's output (direction,
# magnitude) with the exact fp64 product.

# %% tags=["hide-input"]
w_q, x_q = LB.first_layer_q_input(cfg, min(tokens, 128), run.device)
sig = Q.fault_signatures(w_q, x_q, group_size=min(group_size, cfg.width))
show(sig[["fault", "weight_cos", "out_cos", "out_norm_ratio", "out_rel_err"]])
s = sig.set_index("fault")
dropped = sig[sig.fault.str.contains("dropped")]
layout = sig[sig.fault.str.contains("nibble order swapped|other major order|permuted")]
say(f"""With its scales dropped, one layer keeps its direction (output cos {dropped.out_cos.min():.3f} to
{dropped.out_cos.max():.4f}) while its magnitude explodes (norm ratio up to {LB.ratio_text(dropped.out_norm_ratio.max())}): the codes
are the weights divided by their scale. A single layer shows **cos ≈ 0** only when the codes are read in the wrong
*order* (nibbles swapped, buffer read in the other major order, channels permuted: |cos| {layout.out_cos.abs().max():.3f} at
most, norm ratio {layout.out_norm_ratio.min():.2f} to {layout.out_norm_ratio.max():.2f}: an unrelated output of the same size).
INT4 with its scales: cos {s.out_cos['int4, correct']:.4f}; NVFP4: {s.out_cos['nvfp4, correct']:.4f}.""")

# %% [markdown]
# ## Each fault's signature at layer, MLP and model level
# The seed's Torch-TensorRT NVFP4 run was faster than any whole-prefill floor on Thor (figures
# below), so that run's cos ≈ 0 was measured on something smaller, a layer or an MLP; its PyTorch
# NVFP4 and W4A8 runs took longer than the floor, so theirs may be whole prefills. Each fault at three levels,
# fp32, against the true fp32 computation: one layer (as above), layer 0's MLP with every
# projection faulted, and the whole prefill with every projection faulted (final hidden state,
# and the first layer's K/V). cos is the direction, `norm_ratio` the magnitude (faulty / true;
# not shown for the model, whose final RMSNorm sets the output's size).

# %% tags=["hide-input"]
refs = quantized_prefill.references(cfg, tokens, run.device, run.dtype)
levels = LB.fault_levels(refs, group_size=min(group_size, cfg.width))
show(levels[["fault", "layer_cos", "layer_norm_ratio", "mlp_cos", "mlp_norm_ratio", "model_cos", "model_first_kv_cos"]].assign(
    layer_norm_ratio=levels.layer_norm_ratio.map(LB.ratio_text), mlp_norm_ratio=levels.mlp_norm_ratio.map(LB.ratio_text)))
fault_min = float(levels.layer_cos.min())
say(lowbit_findings.fault_levels_text(levels, prefix_tokens, ft.loc[F4], thor["bandwidth_gbps"]))

# %% [markdown]
# ## Accuracy, the whole prefill: where cos ≈ 0 comes from
# The 18-layer prefill with every projection quantized (the parameter `fault_coverage`), once
# with the scales and once with every scale dropped (what a runtime that ignores the scale
# tensors computes), against the unquantized model on a fresh random input: the final hidden
# state and the KV cache, layer by layer.

# %% tags=["hide-input"]
schemes = [s2 for s in fault_schemes for s2 in (s, s + Q.NOSCALE)]
faults, per_layer = LB.fault_injection(refs, schemes, fault_coverage)
# eight columns: the coverage is one parameter (said in the footnote), the scheme is named without its scale suffix
# (the scales column says it), and every cosine is against the unquantized model (the fp32 ones are in the results)
fault_view = pd.DataFrame({"scheme": faults.scheme.str.removesuffix(Q.NOSCALE), "scales": faults.scales,
                           "kernels": faults.kernels, "hidden_cos": faults.vs_base_hidden_cos,
                           "hidden_rel_err": faults.vs_base_hidden_rel_err, "kv_cos": faults.vs_base_kv_cos,
                           "kv_first_layer_cos": faults.vs_base_kv_cos_first_layer,
                           "kv_worst_layer_cos": faults.vs_base_kv_cos_worst_layer})
show(table(fault_view, footnotes=[f"Projections quantized: {fault_coverage} (the parameter fault_coverage). Cosines and "
                                  "relative error against the unquantized model: the final hidden state, the KV cache of "
                                  "all layers, of the first layer and of the worst layer."]))
alt.Chart(per_layer).mark_line(point=True).encode(
    x=alt.X("layer:Q", title="layer"), y=alt.Y("kv_cos:Q", title="cos of the layer's K and V to the unquantized model"),
    color=alt.Color("scheme:N"), strokeDash=alt.StrokeDash("scales:N"), tooltip=["scheme", "scales", "layer", "kv_cos"]
).properties(title="The KV cache, layer by layer: scales kept vs dropped")

# %% tags=["hide-input"]
f = faults.set_index("scheme")
i4, i4x = f.loc["int4wo"] if "int4wo" in f.index else None, f.loc["int4wo_noscale"] if "int4wo_noscale" in f.index else None
kept, lost = faults[faults.scales == "kept"], faults[faults.scales == "dropped"]
reproduced = bool((lost.vs_base_hidden_cos.abs() < 0.1).all()) if not lost.empty else False
correct_ok = bool((kept.vs_base_hidden_cos >= 0.99).all()) if not kept.empty else False
seed_cos = [reference.quoted(k) for k in ("fp4test_torch_trt_nvfp4_cos", "fp4test_pytorch_nvfp4_cos", "fp4test_w4a8_cos")]
say(f"""With the scales dropped every scheme's final hidden state lands at **cos {lost.vs_base_hidden_cos.min():+.3f} to
{lost.vs_base_hidden_cos.max():+.3f}** — the seed's signature (its three FP4 runs on Thor, quoted: {', '.join(f'{c:+.4f}' for c in seed_cos)}):
{'**reproduced**' if reproduced else '**not reproduced** (some |cos| ≥ 0.1)'}. The first layer's K and V still point the right
way (cos {lost.vs_base_kv_cos_first_layer.min():.3f} to {lost.vs_base_kv_cos_first_layer.max():.3f}); every exploded
branch is then added to the residual stream, swamps it, and from the next layer on the cache is unrelated to the
true one. With their scales the same codes give cos {kept.vs_base_hidden_cos.min():.4f} or better
({'**≥ 0.99: done**' if correct_ok else '**below 0.99 for some scheme**'}); INT4 weight-only group {group_size}:
cos {i4.vs_base_hidden_cos if i4 is not None else float('nan'):.4f} (final hidden), {i4.vs_base_kv_cos if i4 is not None else float('nan'):.4f} (KV cache).

**What to recognise.** cos ≈ 0 at the model output with the first layer's cache still correlated (and outputs far too
large) means the scales were lost; cos ≈ 0 already at one layer or one MLP, with outputs of the right size, means the
codes are read in the wrong layout (previous section). By their times, {lowbit_findings.seed_levels_text(ft.memory_ms[F4])}.
Neither is a property of 4-bit arithmetic, and NVIDIA's NVFP4 build on Thor reaches cos
{reference.quoted('nvidia_thor_nvfp4_cos')} (quoted). These are random weights: the figures measure the arithmetic, not a
trained policy's task accuracy.""")

# %% [markdown]
# ## Speed: where low-bit weights help and where they hurt
# One projection at a time, as a function of the token count: the fused gate-up projection
# (N = 2 × mlp_dim, K = width) and down_proj (N = width, K = mlp_dim), whose sum is one MLP's
# matmuls. bf16 `F.linear` against INT4 weight-only (`torch._weight_int4pack_mm`, group 128,
# bf16 activations), INT8 (`torch._int_mm` on pre-quantized operands, and the whole eager
# layer with its dynamic per-token quantization) and, for contrast, FP8 compute
# (`torch._scaled_mm`, rowwise). Each is checked on fresh inputs before it is timed (L2
# flushed between runs).

# %% tags=["hide-input"]
shapes = {"gate_up": (2 * cfg.mlp_dim, cfg.width), "down": (cfg.width, cfg.mlp_dim)}
sweep = LB.lowbit_sweep(shapes, tokens_list, run.device, run.repeats, group_size=group_size)
ratios = LB.sweep_ratios(sweep)
show(ratios.pivot(index="tokens", columns="impl", values="vs_bf16_ratio"))
alt.Chart(ratios).mark_line(point=True).encode(
    x=alt.X("tokens:Q", scale=alt.Scale(type="log"), title="tokens"),
    y=alt.Y("vs_bf16_ratio:Q", scale=alt.Scale(type="log"), title="time / bf16 time (gate_up + down)"),
    color=alt.Color("impl:N", title=None), tooltip=["impl", "tokens", "median_ms", "vs_bf16_ratio", "noise"]
) + alt.Chart(pd.DataFrame([{"y": 1.0}])).mark_rule(color="black", strokeDash=[4, 3]).encode(y="y:Q")

# %% tags=["hide-input"]
r = ratios.set_index(["impl", "tokens"])
get = lambda impl, t: float(r.vs_bf16_ratio[(impl, t)]) if (impl, t) in r.index else None  # noqa: E731
noisy = lambda impl, t: bool(r.noise[(impl, t)]) if (impl, t) in r.index else False  # noqa: E731
lo, hi = min(tokens_list), prefix_tokens if prefix_tokens in tokens_list else max(tokens_list)
i4_lo, i4_hi, i8_hi = get("int4wo", lo), get("int4wo", hi), get("int8 _int_mm kernel", hi)
i8l_hi, f8_hi = get("int8 layer (eager)", hi), get("fp8 _scaled_mm kernel", hi)
faster = ratios[(ratios.impl == "int4wo") & (ratios.vs_bf16_ratio < 1) & ~ratios.noise].tokens
rx = lambda v: "n/a" if v is None else f"{v:.2f}×"  # noqa: E731
nz = lambda impl, t: " (within the noise)" if noisy(impl, t) else ""  # noqa: E731
say(f"""INT4 weight-only takes **{rx(i4_lo)}** the bf16 time at {lo} token{'s' if lo > 1 else ''}{nz('int4wo', lo)} and
**{rx(i4_hi)}** at {hi}{nz('int4wo', hi)}: it {f"helps up to {int(faster.max())} token{'s' if faster.max() > 1 else ''}" if not faster.empty else 'helps at no token count measured here'}
and {'hurts' if i4_hi is not None and i4_hi > 1 else 'does not hurt'} at the prefill's size, where the matmul is limited
by arithmetic and the kernel has to dequantize every weight again for every tile of tokens. INT8 as the bare
`_int_mm` kernel takes {rx(i8_hi)} the bf16 time at {hi} tokens{nz('int8 _int_mm kernel', hi)}; as a whole eager layer
(quantize, multiply, rescale) {rx(i8l_hi)}. FP8 compute (the bare `_scaled_mm` kernel): {rx(f8_hi)}.
(Times as ratios: below 1 is faster. The seed's {reference.quoted('quantlib_torch_int_mm_speed_ratio')}× for `_int_mm`
was a *speed* ratio: time ratio {1 / reference.quoted('quantlib_torch_int_mm_speed_ratio'):.2f}.)""")

# %% [markdown]
# ## A prefill-class INT4 kernel
# The INT4 figures above come from one kernel, torch's tinygemm (`_weight_int4pack_mm`), which
# is built for decoding (a few rows of activations): its rate stays flat as the token count
# grows, so "INT4 loses at the prefill's size" may be a property of that kernel, not of INT4
# weights. A prefill-class alternative is the standard tiled matmul that unpacks the int4
# codes, applies their group scale and zero and multiplies bf16 tiles on the tensor cores:
# `precision.w4a16_triton` (Triton; one K-tile per quantization group). It is checked against
# the fp32 product with its own dequantized weight on two inputs before it is timed against
# bf16 cuBLAS on the same shapes, at the prefill's token count.

# %% tags=["hide-input"]
w4_tokens = prefix_tokens if run.full else tokens
w4 = W4.w4a16_vs_bf16(shapes, w4_tokens, run.device, run.repeats, group_size=group_size)
w4_ratio = W4.w4a16_ratio(w4)
if "median_ms" in w4:
    show(w4[["gemm", "impl", "median_ms", "p25_ms", "p75_ms", "tflops", "rel_err_vs_dequant"]].rename(
        columns={"tflops": "attained_tflops"}))
if w4.error.notna().any():
    say("Not timed: " + "; ".join(f"{r.gemm}: `{r.error}`" for r in w4.itertuples() if isinstance(r.error, str)))
say(f"""At {w4_tokens} tokens the Triton W4A16 kernel takes **{rx(w4_ratio)}** the bf16 time over one
MLP's two matmuls, against tinygemm's {rx(i4_hi)} at {hi} tokens. """ + (
    "A dequantizing prefill kernel closes most of tinygemm's gap: what stays is the dequantization work per tile, "
    "since the matmul itself still runs at the bf16 rate." if w4_ratio is not None and i4_hi is not None and w4_ratio < i4_hi
    else "Where it was not timed (no GPU or no Triton here), only tinygemm's figure stands."))

# %% [markdown]
# ## The whole prefill with INT4 weights
# The seed's projection was for the full 18-layer prefill. The same model eager in bf16, with
# every projection as INT4 weight-only and as INT8 (W8A8, dynamic per-token), checked against
# fp32 on fresh inputs (gate: INT4 relative error ≤ 0.2, INT8 ≤ 0.05), then timed.

# %% tags=["hide-input"]
pv = quantized_prefill.quantized_prefill_variants(refs, run.repeats, prefill_variants, scope="eager")
show(pv[["variant", "kernels", "median_ms", "p25_ms", "p75_ms", "rel_err_vs_fp32", "vs_base_hidden_cos",
         "vs_base_kv_cos", "weight_bytes"]])
pvi = pv.set_index("scheme")
if "base" in pvi.index and "int4wo" in pvi.index:
    b, q4 = pvi.loc["base"], pvi.loc["int4wo"]
    say(f"""The {tokens}-token prefill with INT4 weights: **{q4.median_ms:.2f} ms** against {b.median_ms:.2f} ms unquantized
({str(run.dtype).removeprefix('torch.')}, both eager): {q4.median_ms / b.median_ms:.2f}× the time while reading {q4.weight_bytes / b.weight_bytes:.2f}× the weight bytes.
Both are eager, so each time includes Python's dispatch of every op (host overhead): this ratio is no GPU kernel
comparison, and the verdict below rests on the kernel ratios above instead.
The seed projected {reference.quoted('int4_mlp_projected_ms'):.1f} ms for the MLP alone ({reference.quoted('int4_mlp_fraction_ratio')} of its measured
{reference.quoted('kv_mlp_total_ms'):.1f} ms, quoted).""")

# %% [markdown]
# ## torchao

# %% tags=["hide-input"]
tao = torchao_bench.available()  # as chapter 9 finds it: the environment, then the peer wheels ($PI05PERF_PEERS)
tao_rows = []
if tao is None:
    say(f"**torchao does not import here** (neither installed in this environment nor among the peer wheels named by "
        f"`PI05PERF_PEERS`, see chapter 9): the seed's torchao INT8 ({reference.quoted('quantlib_torchao_int8_speed_ratio')}× "
        "the speed of bf16, quoted) and INT4 (missing fbgemm-gpu-genai) results are not re-run. `precision.apply_torchao` "
        "runs them where torchao is importable.")
else:
    lin = torch.nn.Linear(cfg.width, 2 * cfg.mlp_dim, bias=False, device=run.device, dtype=torch.bfloat16)
    for conf in ("int8dyn", "int8wo", "int4wo"):
        for t_ in sorted({lo, hi}):
            x = torch.randn(t_, cfg.width, device=run.device, dtype=torch.bfloat16)
            try:
                import copy

                from pi05perf.timing import time_fn
                m = Q.apply_torchao(copy.deepcopy(torch.nn.Sequential(lin)), conf, group_size=group_size)
                with torch.no_grad():
                    acc = Q.accuracy(m(x), x.float() @ lin.weight.float().t())
                    tq, tb = time_fn(lambda: m(x), run.device, run.repeats), time_fn(lambda: lin(x), run.device, run.repeats)
                tao_rows.append({"config": conf, "tokens": t_, "torchao_ms": tq.median_ms, "bf16_ms": tb.median_ms,
                                 "vs_bf16_ratio": tq.median_ms / tb.median_ms, **acc})
            except Exception as e:  # a torchao path that does not run here is a finding, reported
                tao_rows.append({"config": conf, "tokens": t_, "error": f"{type(e).__name__}: {e}"})
    show(table(pd.DataFrame(tao_rows), footnotes=[torchao_bench.EAGER_NOTE]))
    say(f"torchao {tao}, gate_up shape, uncompiled; ratios are time over bf16 time (below 1 is faster).")

# %% [markdown]
# ## Verdict on the seed's INT4 / FP4 / INT8 claims

# %% tags=["hide-input"]
show(table(side_by_side(lowbit_findings.int4_claims_rows(prefix_tokens, hi, i4_hi, w4_tokens, w4_ratio, i8_hi,
                                                         ft.speedup_vs_bf16_floor[I4], fh.speedup_vs_bf16_floor[I4], i4, i4x)),
           footnotes=[lowbit_findings.INT4_ROWS_NOTE]))
say(lowbit_findings.int4_claims_text(prefix_tokens, hi, ft.speedup_vs_bf16_floor[I4], i4_hi, w4_ratio, i8_hi, reproduced,
                                     kept.vs_base_hidden_cos.min(), name, tao, ft.memory_ms[F4]))

# %% tags=["hide-input"]
k712 = "tokens712" if prefix_tokens in tokens_list else f"tokens{hi}"
headline = {"int4_correct_scale_cos": i4.vs_base_hidden_cos if i4 is not None else None,
            "int4_scale_ignored_cos": i4x.vs_base_hidden_cos if i4x is not None else None,
            "int4_correct_scale_kv_cos": i4.vs_base_kv_cos if i4 is not None else None,
            f"int4wo_{k712}_vs_bf16_ratio": i4_hi, f"int4wo_tokens{lo}_vs_bf16_ratio": i4_lo,
            f"int8_{k712}_vs_bf16_ratio": i8_hi, f"int8_layer_{k712}_vs_bf16_ratio": i8l_hi,
            f"fp8_kernel_{k712}_vs_bf16_ratio": f8_hi,
            "int4wo_thor_floor_speedup_ratio": float(ft.speedup_vs_bf16_floor[I4]),
            "int4_prefill_kernel_tokens712_vs_bf16_ratio": w4_ratio if run.full and prefix_tokens == 712 else None,
            "fault_layer_min_cos": fault_min, **ceilings.headline(ceilings.for_run(run))}
if "base" in pvi.index and "int4wo" in pvi.index:
    headline["int4wo_prefill_vs_bf16_ratio"] = float(pvi.loc["int4wo"].median_ms / pvi.loc["base"].median_ms)
results.save(run, headline, pd.concat([sig.assign(table="layer_faults"), levels.assign(table="fault_levels"),
                                       w4.assign(table="w4a16"), faults.assign(table="model_faults"),
                                       per_layer.assign(table="kv_per_layer"), sweep.assign(table="sweep"),
                                       ratios.assign(table="sweep_ratios"), pv.assign(table="prefill"),
                                       floors.assign(table="floors"), pd.DataFrame(tao_rows).assign(table="torchao")],
                                      ignore_index=True));
