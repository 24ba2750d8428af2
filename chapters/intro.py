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
# # Pi0.5's prefill on Jetson Thor: why ~50 ms, and what can be done

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full; this page only reads results
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # unused here

# %% tags=["remove-input"]
from pi05perf import claims, reference, results
from pi05perf.report import md, show, start

run = start("intro", profile=profile, device=device, dtype=dtype, repeats=repeats)
q = reference.quoted
kv, total = q("pipeline_baseline_kv_ms"), q("pipeline_baseline_total_ms")  # the seed's 10-step pipeline table
standalone, three_step = q("kv_prefill_standalone_ms"), q("best_3step_latency_ms")
md(f"""A report on Jetson AGX Thor (the *seed*, in Chinese, published with the TurboPi project) set out
to explain why pi0.5's KV-cache prefill — the Gemma-2B pass over two camera images and the prompt —
takes about {q('kv_prefill_headline_ms'):g} ms: {standalone:g} ms in a standalone
benchmark, ~{q('kv_prefill_in_pipeline_ms'):g} ms inside the full pipeline. It calls that
{q('kv_prefill_share_of_total_pct'):g}% of the whole inference's latency without saying of which call: it fits its
~{three_step:g} ms call with 3 denoise steps ({standalone:g} / {three_step:g} ms is {100 * standalone / three_step:.0f}%); of its
10-step pipeline the prefix is {kv:.1f} of {total:.1f} ms, {100 * kv / total:.1f}%. It concluded that the prefill is memory-bound, that quantization and
Triton don't help on Thor, that action buffering breaks the policy and that 20 Hz needs a smaller model.
This book re-derives each of those claims from first principles and re-measures what it can on GPUs.""")

# %% [markdown]
# ## How to read a chapter
# Every figure in this book is one of these kinds, and tables keep them in separate
# columns:
#
# | column | what it is |
# |---|---|
# | **Thor (quoted)** | a figure from the seed or a published anchor, with its source (`data/reference/`). Never re-measured here: we have no Thor. |
# | **device (measured)** | measured by a chapter's full-profile run on that GPU, with provenance (`data/results/<device>/`), headed by the device and the commit that measured it. |
# | **floor** | the physical lower bound: FLOPs over the measured matmul peak, or bytes over the measured bandwidth, whichever is larger. |
# | **Thor, projected** | where a table has it: a Thor time computed by chapter 8's kernel model, whose Thor parameters are fitted to quoted Thor figures; never measured, never in a GPU's column, headed by the run that computed it. |
#
# Each page says at its top which device, commit and date its figures come from. Where the
# seed is contradicted by a measurement or an anchor, the chapter says so.
#
# ## How to rerun one chapter
# ```bash
# make chapter NAME=ch01_flops        # full on a GPU, smoke on a CPU
# make chapter NAME=ch01_flops PARAMS="-p prefix_tokens 968"
# ```
# Every chapter's first code cell lists its parameters: `profile` (`auto` = `full` on a
# CUDA GPU, `smoke` on a CPU), `device`, `dtype`, `repeats` and the experiment's sizes.
# A full run writes `data/results/<device>/<chapter>.json` and, through `make book` or
# `make chapter`, the executed page to `data/notebooks/<device>/`; a smoke run stays under
# `_build/` and is never published. The README has the papermill route.

# %% [markdown]
# ## Key figures, every device
# One row per figure: Thor as quoted, each GPU with committed full-profile results as
# measured (headed by the commit that measured it), and the floor on the newest of them. The
# notes under the table say which implementation, and which path of it, each figure timed:
# chapter 3's standalone stack and chapter 7's pipeline time the same prefill in two
# implementations.

# %% tags=["remove-input"]
devices = results.devices()
if not devices:
    show(md("No committed full-profile results yet: run `make book` on a CUDA GPU."))
else:
    show(claims.key_figures(devices))
    missing = claims.unmeasured_figures(devices)
    if missing:
        show(md("Not measured in any committed run yet: " + "; ".join(missing) + "."))
    show(md("Runs: " + "; ".join(f"**{d['device']}** at commit `{d['commit'] or 'unknown'}`, {d['date'][:10]} "
                                 f"({len(d['chapters'])} chapters)" for d in devices) + "."))
