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
# over a small search space) against cuBLAS on the four matmul shapes of the prefill, in bf16
# and FP8 where the device has it: correctness first, then time.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16 (unused, the operand dtypes are below)
repeats = 0  # timed repeats, 0 for the profile default
prefix_tokens = 712  # rows of every matmul (2 images x 256 + 200 text tokens)
operand_dtypes = ["bfloat16", "float8_e4m3fn"]  # compared operand dtypes, float16 also allowed

# %% tags=["hide-input"]
import altair as alt
import pandas as pd
import torch

from pi05perf import config, precision_bench as PB, reference, results
from pi05perf import triton_matmul as TM
from pi05perf.report import md, show, side_by_side, start, verdict

say = lambda text: show(md(text))  # noqa: E731  (markdown from computed values, shown where it is built)
run = start("ch06_triton", profile=profile, device=device, dtype=dtype, repeats=repeats, prefix_tokens=prefix_tokens)
allowed = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float8_e4m3fn": torch.float8_e4m3fn}
bad = [d for d in operand_dtypes if d not in allowed]
if bad or not operand_dtypes:
    raise ValueError(f"parameter operand_dtypes={operand_dtypes!r} is not allowed; allowed values: {'|'.join(allowed)}")
cfg = config.GEMMA_2B
M = prefix_tokens
shapes = {"qkv_proj (fused)": (M, cfg.q_dim + 2 * cfg.kv_dim, cfg.width), "o_proj": (M, cfg.width, cfg.q_dim),
          "gate_up_proj (fused)": (M, 2 * cfg.mlp_dim, cfg.width), "down_proj": (M, cfg.width, cfg.mlp_dim)}
show(pd.DataFrame([{"gemm": k, "M": m, "N": n, "K": kk, "GFLOP": 2 * m * n * kk / 1e9} for k, (m, n, kk) in shapes.items()]))
available = TM.triton_available()
tv = TM.triton_version()
name = results.device_name(run.device)
if not available:
    say(f"""**Triton cannot run here** ({name}; triton {'importable, version ' + tv if tv else 'not installed'}): the
Triton kernel needs a CUDA GPU, so nothing below is measured on this device and the headline ratio is left empty. The
kernel's correctness on CPU is covered by the unit tests (Triton's interpreter, where its numpy allows).""")

# %% [markdown]
# ## The search space
# One program per output tile of BLOCK_M × BLOCK_N, grouped GROUP_M rows at a time so that
# neighbouring programs share tiles of A and B in L2, a K loop of `tl.dot` into an fp32
# accumulator. The autotuner times every configuration below once per shape and keeps the
# fastest; the list is kept short (every configuration is a compile and a benchmark per shape).

# %% tags=["hide-input"]
space = pd.concat([pd.DataFrame(TM.autotune_configs(False)).assign(operands="bf16 / fp16"),
                   pd.DataFrame(TM.autotune_configs(True)).assign(operands="fp8")], ignore_index=True)
show(space)

# %% [markdown]
# ## Correctness, then time
# Per shape and dtype: autotune on the timed operands (the second operand laid out as
# nn.Linear keeps it: the weight W [N, K] read as the column-major view Wᵀ), check Triton and
# cuBLAS against an fp32 product of the same rounded operands, and check Triton again on
# fresh random inputs in both layouts of B; only then time both (medians and IQR, L2 flushed
# between runs). cuBLAS is `torch.matmul` for bf16 / fp16 and `torch._scaled_mm` (unit
# scales, bf16 out) for FP8.

# %% tags=["hide-input"]
checks = timings = None
if available:
    checks, timings = PB.triton_vs_cublas(shapes, run.device, run.repeats, [allowed[d] for d in operand_dtypes])
    show(checks)
    wide = timings.pivot_table(index=["dtype", "gemm"], columns="impl", values=["median_ms", "tflops"])
    wide[("ratio", "Triton / cuBLAS time")] = wide[("median_ms", "Triton")] / wide[("median_ms", "cuBLAS")]
    show(wide)
    show(timings[["dtype", "gemm", "impl", "median_ms", "p25_ms", "p75_ms", "tflops", "config", "autotune_s"]])

# %% tags=["hide-input"]
if timings is not None and not timings.empty:
    chart = alt.Chart(timings).mark_bar().encode(
        x=alt.X("tflops:Q", title="TFLOP/s (median)"), y=alt.Y("impl:N", title=None),
        row=alt.Row("gemm:N", title=None), column=alt.Column("dtype:N", title=None),
        color=alt.Color("impl:N", legend=None), tooltip=["gemm", "dtype", "impl", "median_ms", "tflops", "config"]
    ).properties(title="Triton (autotuned) vs cuBLAS on the prefill's matmuls", height=40, width=260)
    show(chart)

# %% [markdown]
# ## Against the seed's Thor figure

# %% tags=["hide-input"]
seed_speed = reference.quoted("triton_vs_cublas_ratio")
seed_cublas, seed_triton = reference.quoted("triton_test_cublas_ms"), reference.quoted("triton_fp16_matmul_ms")
ratios = {d: PB.triton_ratio(timings, d) if timings is not None else None for d in operand_dtypes}
bf = ratios.get("bfloat16")
show(side_by_side([
    {"quantity": "Triton time / cuBLAS time, bf16, the four prefill matmuls summed", "unit": "ratio",
     "thor_quoted": 1 / seed_speed, "thor_source": f"seed: FP16, one unknown shape ({seed_triton} ms / {seed_cublas} ms)",
     "measured": bf},
    {"quantity": "same, FP8", "unit": "ratio", "measured": ratios.get("float8_e4m3fn")},
    {"quantity": "same, FP16", "unit": "ratio", "measured": ratios.get("float16")},
]))
lines = []
if bf is not None:
    per = timings[timings.dtype == "bfloat16"].pivot(index="gemm", columns="impl", values="median_ms")
    per = per.Triton / per.cuBLAS
    lines.append(f"On {name} (triton {tv}) the autotuned Triton kernel takes **{bf:.2f}×** the cuBLAS time over the four "
                 f"bf16 prefill matmuls ({1 / bf:.2f}× the speed; per shape from {per.min():.2f}× on "
                 f"{per.idxmin()} to {per.max():.2f}× on {per.idxmax()}). The seed's figure on Thor, "
                 f"{seed_speed:.2f}× the *speed*, is {1 / seed_speed:.2f}× the *time*.")
thor_cc = reference.quoted("thor_compute_capability")
thor_bf16 = reference.quoted("thor_bf16_dense_tflops")
here_cc = ("sm_%d%d" % torch.cuda.get_device_capability(run.device)) if run.cuda else None
here_txt = (f"{name} is {here_cc} with triton {tv}" + (", where Triton's Hopper tensor-core paths (wgmma, TMA) have been "
            "in place for several releases" if here_cc == "sm_90" else "")) if here_cc else "this run has no GPU"
lines.append(f"""What differs between the two measurements, so that neither transfers to the other:
* **the platform**: Thor is sm_{round(thor_cc * 10)} (quoted), an architecture that was new to Triton when the seed ran the
  Triton release it lists; {here_txt}. A young backend's gap says little about a mature one, and the reverse.
* **the dtype**: the seed timed FP16; the prefill runs bf16 (and FP8 here where the device has it).
* **the shape**: the seed's shape is not stated. In the {seed_cublas} ms cuBLAS took, Thor's dense 16-bit peak (quoted
  spec, {thor_bf16:.0f} TFLOP/s) does at most {seed_cublas * 1e-3 * thor_bf16 * 1e12 / 1e9:.0f} GFLOP; whether the
  matmul had few output tiles (as the prefill's N = {cfg.width} projections do) or many changes which kernel wins.
* **the kernel**: a tutorial-structured kernel with a {len(TM.autotune_configs())}-configuration search, not a
  persistent, warp-specialized one: its ratio is a lower bound on what Triton can do on this device.""")
status = "not testable here"
lines.append(f"""**"Triton runs at {seed_speed}× cuBLAS on Thor, so it does not suit Thor" — {verdict(status)}** (no Thor here).
{f'On this device the same kind of kernel reaches {1 / bf:.2f}× the speed of cuBLAS on the prefill matmuls' if bf is not None else 'Nothing was timed on this device'}.
The seed's conclusion that a custom INT4 kernel was therefore infeasible also misses chapter 5: weight-only INT4 would
not speed up the {prefix_tokens}-token prefill even with a perfect kernel, because the prefill needs low-precision
*compute*.""")
say("\n\n".join(lines))

# %% tags=["hide-input"]
headline = {"triton_vs_cublas_bf16_ratio": bf, "triton_vs_cublas_fp8_ratio": ratios.get("float8_e4m3fn"),
            "triton_vs_cublas_fp16_ratio": ratios.get("float16")}
rows = space.assign(table="autotune_space")
if timings is not None:
    rows = pd.concat([rows, checks.assign(table="checks"), timings.assign(table="timings")], ignore_index=True)
results.save(run, headline, rows)
