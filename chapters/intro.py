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
#
# A report on Jetson AGX Thor (the *seed*, in Chinese, published with the TurboPi
# project) found that pi0.5's KV-cache prefill — the Gemma-2B pass over two camera
# images and the prompt — takes about 50 ms, more than half of the vision + prefill
# budget, and concluded that it is memory-bound, that quantization and Triton don't
# help on Thor, that action buffering breaks the policy and that 20 Hz needs a smaller
# model. This book re-derives each of those claims from first principles and
# re-measures what it can on the device it runs on.
#
# ## How to read a chapter
# Every figure in this book is one of three kinds, and tables keep them in separate
# columns:
#
# | column | what it is |
# |---|---|
# | **Thor (quoted)** | a figure from the seed or a published anchor, with its source (`data/reference/`). Never re-measured here: we have no Thor. |
# | **this device (measured)** | measured by the chapter on the machine that executed it, with provenance (`data/results/<device>/`). A CPU figure is not representative of any GPU. |
# | **floor** | the physical lower bound: FLOPs over the measured matmul peak, or bytes over the measured bandwidth, whichever is larger. |
#
# Where the seed is contradicted by a measurement or an anchor, the chapter says so.
#
# ## How to rerun one chapter
# ```bash
# make chapter NAME=ch01_flops                    # executes it on this device, rebuilds the HTML
# make chapter NAME=ch01_flops PROFILE=full PARAMS="-p prefix_tokens=968"
# # or directly with papermill (after `make book` has made .venv):
# .venv/bin/jupytext --to ipynb -o _build/src/ch01_flops.ipynb chapters/ch01_flops.py
# .venv/bin/papermill _build/src/ch01_flops.ipynb _build/book/chapters/ch01_flops.ipynb \
#     -k pi05perf -p profile full -p prefix_tokens 968
# ```
# Every chapter's first code cell lists its parameters: `profile` (`auto` = `full` on a
# CUDA GPU, `smoke` on a CPU), `device`, `dtype`, `repeats` and the experiment's sizes.
# A full run writes `data/results/<device>/<chapter>.json`; a smoke run writes under
# `_build/` and never touches `data/`.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full; this page only reads results
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # unused here

# %% tags=["hide-input"]

from pi05perf import results
from pi05perf.report import md, show, start

run = start("intro", profile=profile, device=device, dtype=dtype, repeats=repeats)

# %% [markdown]
# ## Headline figures, every device
# Each chapter writes its key figures (`headline`) with the commit that produced them.
# Committed results come from full-profile runs (e.g. the H100 lent to this project);
# "this build" rows are the run that built these pages, which on a CPU is a smoke run
# with reduced shapes.

# %% tags=["hide-input"]
heads = results.headlines()
if heads.empty:
    show(md("No results yet: execute a chapter (`make book`)."))
else:
    table = heads.pivot_table(index=["chapter", "key"], columns=["device", "source"], values="value",
                              aggfunc="last")
    show(table)
    show(heads.drop_duplicates(["slug", "source", "chapter"])[["chapter", "device", "source", "profile",
                                                               "commit", "date"]])
