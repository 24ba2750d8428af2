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
# # 6. Triton vs cuBLAS
#
# The seed timed a Triton FP16 matmul on Thor against `torch.matmul` (cuBLAS) and found it
# much slower (its figures are quoted below): "Triton does not suit Thor, so a
# custom INT4 kernel is not feasible". It did not say which shape it timed. This chapter
# runs the project's own Triton matmul (the structure of Triton's matmul tutorial, autotuned
# on the running GPU over a search space written for Hopper) against cuBLAS on the four matmul
# shapes of the prefill, in bf16 and FP8 where the device has it: correctness first, then time.
# The second half times two kernels written for the denoise step, where the action expert
# multiplies only the action tokens' rows: a split-K weight stream for its projections and a
# split-KV (flash-decoding) attention over the prefix's KV cache, each against the library call
# the model makes today and against its byte floor.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16 (unused, the operand dtypes are below)
repeats = 0  # timed repeats, 0 for the profile default
prefix_tokens = 712  # rows of every matmul (2 images x 256 + 200 text tokens)
operand_dtypes = ["bfloat16", "float8_e4m3fn"]  # compared operand dtypes, float16 also allowed
action_tokens = 10  # rows of every denoise-step GEMM (pi05_libero's action horizon)

# %% tags=["hide-input"]
import altair as alt
import pandas as pd
import torch

from pi05perf import ceilings, config, reference, results
from pi05perf import triton_findings, triton_matmul as TM
from pi05perf.kernels import decode_attention as DA, gemv_splitk as GS
from pi05perf.report import md, show, side_by_side, start, verdict

say = lambda text: show(md(text))  # noqa: E731  (markdown from computed values, shown where it is built)
run = start("ch06_triton", profile=profile, device=device, dtype=dtype, repeats=repeats, prefix_tokens=prefix_tokens,
            action_tokens=action_tokens)
allowed = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float8_e4m3fn": torch.float8_e4m3fn}
bad = [d for d in operand_dtypes if d not in allowed]
if bad or not operand_dtypes:
    raise ValueError(f"parameter operand_dtypes={operand_dtypes!r} is not allowed; allowed values: {'|'.join(allowed)}")
cfg = config.GEMMA_2B
M = prefix_tokens
shapes = {"qkv_proj (fused)": (M, cfg.q_dim + 2 * cfg.kv_dim, cfg.width), "o_proj": (M, cfg.width, cfg.q_dim),
          "gate_up_proj (fused)": (M, 2 * cfg.mlp_dim, cfg.width), "down_proj": (M, cfg.width, cfg.mlp_dim)}
show(pd.DataFrame([{"gemm": k, "M": m, "N": n, "K": kk, "work_flops": 2 * m * n * kk} for k, (m, n, kk) in shapes.items()]))
available = TM.triton_available()
tv = TM.triton_version()
name = results.device_name(run.device)
if not available:
    say(f"""**Triton cannot run here** ({name}; triton {'importable, version ' + tv if tv else 'not installed'}): the
Triton kernel needs a CUDA GPU, so nothing below is measured on this device and the headline ratio is left empty. The
kernel's correctness on CPU is covered by `tests/test_triton_matmul.py` (Triton's interpreter, where triton is
installed).""")

# %% [markdown]
# ## The search space
# One program per output tile of BLOCK_M × BLOCK_N, grouped GROUP_M rows at a time so that
# neighbouring programs share tiles of A and B in L2, a K loop of `tl.dot` into an fp32
# accumulator (unmasked loads when BLOCK_K divides K, as it does for every prefill shape).
# `triton.autotune` times every configuration below once per shape on the running GPU, keyed on
# (M, N, K), keeps the fastest and caches the choice on disk for later runs on this GPU; the
# table of timings below records which one it picked. The list leads with tiles that suit
# Hopper (128 × 256 and 256 × 128 with 8 warps, i.e. two warpgroups, and 3–4 pipeline
# stages), then smaller tiles, which give more programs when N is only 2048. It is kept
# short: every configuration is a compile per dtype and a benchmark per shape.

# %% tags=["hide-input"]
space = pd.concat([pd.DataFrame(TM.autotune_configs(False)).assign(operands="bf16 / fp16"),
                   pd.DataFrame(TM.autotune_configs(True)).assign(operands="fp8")], ignore_index=True)
show(space)

# %% [markdown]
# ## Correctness, then time
# Per shape and dtype: autotune on the timed operands (the second operand laid out as
# nn.Linear keeps it: the weight W [N, K] read as the column-major view Wᵀ), check Triton and
# cuBLAS against an fp32 product of the same rounded operands, and check Triton again on
# fresh random inputs in both layouts of B; only then time both: medians and IQR of one CUDA
# graph of back-to-back calls on operand copies that do not fit in L2 together, so that neither
# the Python launch (a Triton kernel's can take longer than a 712-row GEMM runs) nor a warm L2
# enters the time. cuBLAS is `torch.matmul` for bf16 / fp16 and `torch._scaled_mm` (unit
# scales, bf16 out) for FP8.

# %% tags=["hide-input"]
checks = timings = None
if available:
    checks, timings = TM.triton_vs_cublas(shapes, run.device, run.repeats, [allowed[d] for d in operand_dtypes])
    show(checks)
    if not timings.empty:
        show(timings[["dtype", "gemm", "impl", "median_ms", "p25_ms", "p75_ms", "achieved_tflops"]])

# %% tags=["hide-input"]
if timings is not None and not timings.empty:
    chart = alt.Chart(timings).mark_bar().encode(
        x=alt.X("achieved_tflops:Q", title="TFLOP/s (median)"), y=alt.Y("impl:N", title=None),
        row=alt.Row("gemm:N", title=None), column=alt.Column("dtype:N", title=None),
        color=alt.Color("impl:N", legend=None), tooltip=["gemm", "dtype", "impl", "median_ms", "achieved_tflops"]
    ).properties(title="Triton (autotuned) vs cuBLAS on the prefill's matmuls", height=40, width=260)
    show(chart)

# %% [markdown]
# ## What the autotuner picked, and the 1.15× target
# Per shape: the configuration chosen on this GPU, how many output tiles (programs) it launches
# against the number of SMs, and Triton's time over cuBLAS's. The project sets the target at
# 1.15× on the prefill's large GEMMs. To tell the grid from the main loop, a wave model (one
# tile per SM at a time) gives the share of SM time spent on useful outputs (*grid
# efficiency*: padding to whole tiles and the last, partial wave lose the rest). To measure
# rather than model it, both are also timed on a large square product, where each fills every
# SM with whole tiles for many waves: there the ratio is the main loop's alone.

# %% tags=["hide-input"]
target_ratio = 1.15
large_gemms = ["gate_up_proj (fused)", "down_proj"]  # the MLP: most of the prefill's FLOPs
per_shape, main_loop, square = None, {}, "8192³"
if timings is not None and not timings.empty:
    per_shape, main_loop, square = triton_findings.autotune_choices(timings, run.device, run.repeats, operand_dtypes,
                                                                    allowed, run.full)
    show(per_shape)
    say(triton_findings.autotune_text(timings, per_shape, main_loop, square, target_ratio, large_gemms))

# %% [markdown]
# ## Against the seed's Thor figure

# %% tags=["hide-input"]
seed_speed = reference.quoted("triton_vs_cublas_ratio")
seed_cublas, seed_triton = reference.quoted("triton_test_cublas_ms"), reference.quoted("triton_fp16_matmul_ms")
ratios = {d: TM.triton_ratio(timings, d) for d in operand_dtypes}
bf = ratios.get("bfloat16")
show(side_by_side(triton_findings.seed_rows(ratios, seed_speed, seed_cublas, seed_triton)))
lines = triton_findings.seed_contrast(timings, bf, seed_speed, seed_cublas, name, tv, run.device, run.cuda, cfg.width)
status = "not testable here"
lines.append(f"""**"Triton runs at {seed_speed}× cuBLAS on Thor, so it does not suit Thor" — {verdict(status)}** (no Thor here).
{f'On this device the same kind of kernel reaches {1 / bf:.2f}× the speed of cuBLAS on the prefill matmuls' if bf is not None else 'Nothing was timed on this device'}.
The seed's conclusion that a custom INT4 kernel was therefore infeasible also misses chapter 5: weight-only INT4 would
not speed up the {prefix_tokens}-token prefill even with a perfect kernel, because the prefill needs low-precision
*compute*.""")
say("\n\n".join(lines))

# %% [markdown]
# ## Denoise-step kernels: a split-K weight stream and split-KV attention
# A denoise step runs the action expert (width 1024, MLP 4096, 18 layers) on only
# `action_tokens` rows. Each of its GEMMs reads a weight matrix once and does 2 × rows FLOPs
# per weight element: a weight stream, whose floor is the bytes it must move over the measured
# bandwidth. The split-K kernel gives every SM a slice of K as well as of N, so that even the
# 1024 → 256 projections keep the whole GPU reading; the last program of each column tile adds
# the partial sums (one launch). With FP8 weights (one scale per output channel) it moves half
# the bytes. Each variant is checked against float32 on its operands and the kernel again on
# fresh random inputs, then timed as CUDA-graph replays over enough weight copies that no call
# finds its weight in L2, as in the 18-layer model.

# %% tags=["hide-input"]
ex = config.GEMMA_300M
T = action_tokens
expert_shapes = {"q_proj": (T, ex.q_dim, ex.width), "k_proj, v_proj (each)": (T, ex.kv_dim, ex.width),
                 "o_proj": (T, ex.width, ex.q_dim), "gate_up_proj (fused)": (T, 2 * ex.mlp_dim, ex.width),
                 "down_proj": (T, ex.width, ex.mlp_dim)}
kv_len, att_rows = prefix_tokens + T, ex.num_heads * T
kernels_here = run.cuda and TM.triton_available()
gemv = attention = ceil = None
if kernels_here:
    try:  # a failed ceiling measurement leaves the floors empty, not the chapter
        ceil = ceilings.for_run(run)
        copy_gbps = ceil["copy_gbps"]
    except Exception as e:
        copy_gbps = float("nan")
        say(f"**The bandwidth ceiling could not be measured** ({type(e).__name__}: {e}); byte floors are left empty.")
    def attempt(label, bench):  # each variant's failure is a row of its table; this catches the bench failing
        try:
            return bench()
        except Exception as e:
            say(f"**The {label} benchmark failed** ({type(e).__name__}: {e}); nothing of it is reported.")
    gemv = attempt("split-K GEMV", lambda: GS.bench(expert_shapes, run.device, run.repeats, copy_gbps))
    attention = attempt("split-KV attention", lambda: DA.bench(att_rows, kv_len, ex.head_dim, run.device, run.repeats,
                                                               copy_gbps))
else:
    say(f"""**Not measured here** ({name}): the kernels need a CUDA GPU and triton. Their logic is covered on CPU by
`tests/test_kernels.py` (Triton's interpreter, where triton is installed).""")

# %% tags=["hide-input"]
if gemv is not None:
    cols = ["gemm", "impl", "median_ms", "byte_floor_ms", "achieved_gbps", "rel_err_vs_fp32"]
    show(gemv[[c for c in cols if c in gemv]])
    if "error" in gemv and gemv.error.notna().any():
        show(gemv[gemv.error.notna()][["gemm", "impl", "error"]].reset_index(drop=True))
    show(gemv[gemv.impl.str.startswith("Triton")][["gemm", "impl", "config"]].reset_index(drop=True))
gemv_ratio = GS.ratio(gemv, "Triton split-K bf16") if gemv is not None else None
gemv_fp8_ratio = GS.ratio(gemv, "Triton split-K fp8") if gemv is not None else None
fp8_cublas_ratio = GS.ratio(gemv, "cuBLASLt fp8") if gemv is not None else None
gemv_floor_ratio = None
if gemv_ratio is not None:
    tri = gemv[gemv.impl == "Triton split-K bf16"]
    gemv_floor_ratio = float(tri.median_ms.sum() / tri.byte_floor_ms.sum())

# %% tags=["hide-input"]
if gemv is not None:
    word = lambda r: "n/a (failed)" if r is None else f"{r:.2f}×"  # noqa: E731
    say(f"""Summed over the {gemv.gemm.nunique()} shapes, the split-K kernel with bf16 weights takes {word(gemv_ratio)} the time of
cuBLAS (`F.linear`, what the model runs), {word(gemv_floor_ratio)} its byte floor; with FP8 weights it takes
{word(gemv_fp8_ratio)} cuBLAS's bf16 time, and cuBLASLt's own FP8 GEMM (activations quantized too, rows padded to 16)
{word(fp8_cublas_ratio)}. Above 1× the kernel is slower than the library; the table says where.""")

# %% [markdown]
# The attention of a denoise step: `att_rows` query rows (8 heads × the action tokens, folded
# into rows since there is one K/V head) against the cache of the prefix and the actions. The
# model calls `F.scaled_dot_product_attention`; the split-KV kernel runs in each of a few
# configurations (query rows per program, keys per slice), every one checked, then timed.

# %% tags=["hide-input"]
attn_ratio = attn_floor_ratio = None
if attention is not None:
    show(attention[[c for c in ["impl", "config", "programs_count", "median_ms", "byte_floor_ms", "rel_err_vs_fp32"]
                    if c in attention]])
    if "error" in attention and attention.error.notna().any():
        show(attention[attention.error.notna()][["impl", "config", "error"]].reset_index(drop=True))
    attn_ratio = DA.best_vs_sdpa(attention)
    timed = attention[attention.impl != "SDPA"].dropna(subset=["median_ms"]) if "median_ms" in attention else attention.iloc[:0]
    if not timed.empty:
        best = timed.loc[timed.median_ms.idxmin()]
        attn_floor_ratio = float(best.median_ms / best.byte_floor_ms)
        vs_sdpa = "SDPA failed, so no ratio" if attn_ratio is None else f"{attn_ratio:.2f}× the time of SDPA"
        say(f"""The fastest split-KV configuration ({best.config}, {best.programs_count:.0f} programs) takes
{best.median_ms * 1e3:.1f} µs, {vs_sdpa}, for {att_rows} query rows over {kv_len} keys: {attn_floor_ratio:.0f}× its
byte floor of {best.byte_floor_ms * 1e3:.2f} µs.""")
    else:
        say("No split-KV configuration passed its check, so none was timed; the errors are above.")

# %% tags=["hide-input"]
def summed_ms(table, impl):  # one impl's time summed over the shapes, None unless every shape was timed
    t = table[table.impl == impl] if table is not None and "median_ms" in table else None
    return None if t is None or t.empty or t.median_ms.isna().any() else float(t.median_ms.sum())


def fastest_ms(table, sdpa: bool):
    t = table[(table.impl == "SDPA") == sdpa] if table is not None and "median_ms" in table else None
    return None if t is None or t.median_ms.dropna().empty else float(t.median_ms.min())


tuned = timings is not None and not timings.empty
# "graphed": timed as graphed calls; runs before that stored eager timings under the names without it
headline = {"triton_vs_cublas_bf16_graphed_ratio": bf, "triton_vs_cublas_fp8_graphed_ratio": ratios.get("float8_e4m3fn"),
            "triton_vs_cublas_fp16_graphed_ratio": ratios.get("float16"),
            "triton_vs_cublas_bf16_square_ratio": main_loop.get("bfloat16"),
            "triton_vs_cublas_fp8_square_ratio": main_loop.get("float8_e4m3fn"),
            "triton_matmul_autotune_ms": float(timings.autotune_s.sum() * 1e3) if tuned else None,
            "gemv_splitk_vs_cublas_ratio": gemv_ratio, "gemv_splitk_fp8_vs_cublas_ratio": gemv_fp8_ratio,
            "gemv_cublaslt_fp8_vs_cublas_ratio": fp8_cublas_ratio, "gemv_splitk_vs_floor_ratio": gemv_floor_ratio,
            "gemv_splitk_bf16_ms": summed_ms(gemv, "Triton split-K bf16"),
            "gemv_splitk_fp8_ms": summed_ms(gemv, "Triton split-K fp8"), "gemv_cublas_bf16_ms": summed_ms(gemv, "cuBLAS bf16"),
            "decode_attention_vs_sdpa_ratio": attn_ratio, "decode_attention_vs_floor_ratio": attn_floor_ratio,
            "decode_attention_best_ms": fastest_ms(attention, sdpa=False), "decode_attention_sdpa_ms": fastest_ms(attention, sdpa=True)}
if ceil is not None:
    headline.update(ceilings.headline(ceil))
tables = {"autotune_space": space, "checks": checks, "timings": timings, "gemv_splitk": gemv, "decode_attention": attention}
results.save(run, headline, tables={k: v for k, v in tables.items() if v is not None});
