"""What every chapter does around its experiment: start, show, compare, save.

Prose in a chapter is built with `md(f"...")` from results and reference values,
so no measured figure is ever typed into the text.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from .params import Run, resolve

VERDICTS = {"held": "✅ held", "not held": "❌ not held", "partly held": "⚠️ partly held",
            "not testable here": "➖ not testable here"}


def start(chapter: str, **params: Any) -> Run:
    """Validate parameters, set up charts, seed the generators; print what runs where."""
    run = resolve(chapter, **params)
    from .charts import use_offline_renderer

    use_offline_renderer()
    torch.manual_seed(0)
    dev = torch.cuda.get_device_name(run.device) if run.cuda else "CPU"
    print(f"{chapter}: profile={run.profile} device={run.device} ({dev}) dtype={run.dtype} repeats={run.repeats}")
    if not run.full:
        show(md(f"> **Smoke profile on {dev}.** Measured experiments are reduced so the chapter runs in seconds: the figures "
                "this run measures are not representative of any device, and they go to `_build/results`, never "
                "to `data/results`. Committed full-profile results (e.g. the H100) appear in the table at the end "
                "of the chapter and on the verdict page."))
    return run


def md(text: str) -> Any:
    from IPython.display import Markdown

    return Markdown(text)


def show(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Readable number with unit; `n/a` for a missing value."""
    if value is None or value != value:
        return "n/a"
    mag = abs(value)
    if mag >= 1e12:
        s = f"{value / 1e12:.{digits}g} T"
    elif mag >= 1e9:
        s = f"{value / 1e9:.{digits}g} G"
    elif mag >= 1e6:
        s = f"{value / 1e6:.{digits}g} M"
    else:
        s = f"{value:.{digits}g} "
    return (s + unit).strip()


def verdict(status: str) -> str:
    if status not in VERDICTS:
        raise ValueError(f"verdict must be one of {sorted(VERDICTS)}")
    return VERDICTS[status]


def side_by_side(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The book's standard comparison: Thor as quoted, this device as measured, the floor.

    Each row: quantity, unit, thor_quoted, thor_source, measured, floor (any may be None).
    """
    df = pd.DataFrame(rows)
    cols = ["quantity", "unit", "thor_quoted", "thor_source", "measured", "floor"]
    for c in cols:
        if c not in df:
            df[c] = None
    return df[cols].rename(columns={"thor_quoted": "Thor (quoted)", "thor_source": "quoted from",
                                    "measured": "this device (measured)", "floor": "floor (this device)"})


def headlines_everywhere(chapter: str) -> Any:
    """This chapter's headline figures for every device: committed full-profile runs beside
    this build's (which, on a CPU, is a smoke run with reduced shapes)."""
    from .results import headlines

    df = headlines(chapter)
    if df.empty:
        return md("No results for this chapter yet.")
    df["column"] = df.device + " — " + df.source + " (" + df.profile + ", " + df.commit + ")"
    return df.pivot_table(index="key", columns="column", values="value", aggfunc="last")
