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
# # Verdict
#
# One table of key figures — Thor as the seed and published sources quote it, and every GPU
# with committed full-profile results as measured — then every conclusion of the seed's summary
# sections, one by one, each marked **held**, **not held**, **partly held** or **not testable
# here** (we have no Thor), with the chapter figure it rests on. Verdicts that rest on a GPU
# measurement read the device this book presents (`REPORT_DEVICE`, else the newest full run);
# where that run lacks the figure, the verdict says so instead. No verdict rests on an eager
# (host-bound) timing, except the one on CUDA graphs, whose subject is that host overhead: there
# the eager timing is the figure, labelled so.

# %% tags=["parameters"]
profile = "auto"  # auto | smoke | full; this page only reads results
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto | float32 | bfloat16 | float16
repeats = 0  # unused here
gpu_slug = ""  # whose results the verdicts read; empty: $REPORT_DEVICE or the newest run

# %% tags=["hide-input"]
from pi05perf import claims, results, seed_claims, seed_facts
from pi05perf.report import md, show, start, table
from pi05perf.verdicts import Ledger

run = start("verdict", profile=profile, device=device, dtype=dtype, repeats=repeats)
gpu_slug = gpu_slug or results.report_device() or "none"
devices = results.devices()
ledger = Ledger(gpu_slug)
md(f"Verdicts read the committed results of **{ledger.device}** (`{gpu_slug}`), which cover "
   f"{', '.join(claims.chapter_link(c) for c in ledger.chapters) or 'none yet'}.")

# %% [markdown]
# ## Key figures
# Thor figures are quoted (never measured here); each GPU column is one device's committed
# full-profile run, headed by the commit that measured it. Chapter 8's projections for Thor (its
# kernel model, with Thor's parameters fitted to quoted Thor figures) and that model's error on
# held-out Thor figures are not measurements: they sit in their own "projected" column, headed by
# the run that computed them, never in a GPU's. The notes say which implementation and path each
# figure timed.

# %% tags=["remove-input"]
show(claims.key_figures(devices, floor_slug=gpu_slug) if devices else md("No committed full-profile results yet."))

# %% [markdown]
# ## The seed's conclusions, one by one
# Quotes are the seed's (translated); the evidence column is computed from the reference data,
# the analytic model (`pi05perf.flops`) and the committed GPU results. The cell below holds the
# shared facts (`pi05perf.seed_facts`); the code that decides each section's verdicts is in
# `pi05perf.seed_claims`, one function per section of the seed.

# %% tags=["hide-input"]
facts = seed_facts.seed_facts()
print(facts.analytic_line())

# %% tags=["remove-input"]
seed_claims.judge_all(ledger, facts)

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
show(table(ledger.counts(), html_columns=("verdict",)))
md(ledger.sections_markdown())

# %% [markdown]
# ## In one paragraph

# %% tags=["hide-input"]
md(seed_claims.closing_paragraph(ledger, facts))
