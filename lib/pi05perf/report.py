"""What every chapter does around its experiment: start, show, compare, save.

Prose in a chapter is built with `md(f"...")` from results and reference values,
so no measured figure is ever typed into the text. Every DataFrame a page shows
goes through `table` (via `show`): no index, 3-4 significant figures, units taken
from the column-name suffix, a dash and a footnote for a missing value.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import torch

from .params import Run, resolve
from .results import UNITS

# Text badges (styled by _static/pi05perf.css): emoji render as empty boxes without their fonts.
VERDICTS = {status: f'<span class="pi05-badge pi05-{status.replace(" ", "-")}">{status}</span>'
            for status in ("held", "not held", "partly held", "not testable here")}
DASH = "–"
MISSING_NOTE = f"{DASH} : not measured, or not applicable, in this run."

#: column-name suffix -> (unit shown in the header, how cells are formatted)
_CURRENT: dict[str, Any] = {}  # the Run of the chapter executing in this kernel (set by `start`)


# ----------------------------------------------------------------------------- numbers
def num(value: Any, digits: int = 3) -> str:
    """`digits` significant figures, never scientific notation, thousands separators;
    a dash for a missing value."""
    if value is None or isinstance(value, bool):
        return DASH if value is None else yes_no(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return DASH if v != v else ("∞" if v > 0 else "−∞")
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits - 1:
        return f"{round(v):,}"
    decimals = min(digits - 1 - mag, 8)
    text = f"{v:,.{decimals}f}"
    return text if float(text.replace(",", "")) != 0 else f"{v:.2g}".replace("e-0", "e-")  # tinier than 1e-8


def cos(value: Any) -> str:
    """A cosine similarity: enough decimals to show its distance from 1."""
    if value is None or value != value:
        return DASH
    v = float(value)
    gap = abs(1 - v)
    decimals = 4 if gap >= 1e-3 or gap == 0 else min(7, 1 - math.floor(math.log10(gap)))
    return f"{v:.{decimals}f}"


def si(value: Any, unit: str) -> str:
    """`2.9e12, "FLOP"` -> `2.90 TFLOP`."""
    if value is None or value != value:
        return DASH
    v = float(value)
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{num(v / factor)} {prefix}{unit}"
    return f"{num(v)} {unit}"


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Readable number with unit (SI prefix from mega up); `n/a` for a missing value."""
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1e6:
        return si(value, unit)
    return f"{num(value, digits)} {unit}".strip()


# ----------------------------------------------------------------------------- tables
def split_unit(column: str) -> tuple[str, str, str]:
    """`prefill712_best_ms` -> ("prefill712 best", "ms", "num"); a column without a known
    suffix keeps its name (snake_case turned into words)."""
    for suffix, (unit, kind) in UNITS.items():
        if column.endswith(suffix) and len(column) > len(suffix):
            return _words(column[: -len(suffix)]), unit, kind
    return _words(column), "", "auto"


def _words(name: str) -> str:
    return name.replace("_", " ") if re.fullmatch(r"[a-z0-9_]+", name) else name


def header(column: Any) -> str:
    if isinstance(column, tuple):
        return " · ".join(str(c) for c in column if str(c))
    words, unit, _ = split_unit(str(column))
    return f"{words} ({unit})" if unit else words


def yes_no(value: Any) -> str:
    """A truth value in words: a table shows "yes"/"no", never True/False."""
    return "yes" if value else "no"


def cell(value: Any, kind: str = "auto") -> str:
    """One cell as text, formatted by the column's kind (a truth value as yes/no)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return yes_no(value)
    if kind.startswith("si:"):
        return si(value, kind[3:])
    if kind == "cos":
        return cos(value)
    if kind == "int" and isinstance(value, (int, float)) and float(value).is_integer():
        return f"{int(value):,}"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        v = value.item() if hasattr(value, "item") else value
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return num(v, 3 if abs(float(v)) < 1e3 else 4)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


SHORT_CELL = 12  # characters: a cell this short is kept on one line
_PLAIN_CELL = re.compile(r"<td>([^<]*)</td>")


_HEADER = re.compile(r"<th>([^<]*)</th>")
_CODE_SPAN = re.compile(r"`([^`<]+)`")
_SHAPE = re.compile(r"\d+(?:x\d+)+")


def wrap_hints(table_html: str) -> str:
    """Where a table's cells may wrap. A number or short token stays on one line ("0.20|5" was a
    wrapped 0.205; long text still wraps anywhere); a header may break after an underscore
    (`compile_graph_splitkv`), and nowhere inside a word; a `backquoted` identifier in a cell is
    set as code and may break after an underscore or a slash; a shape (8192x8192x8192) only after an x. Applied when a table is rendered and, by
    the book's staging, to tables in notebooks executed before these rules existed."""
    def short(m: re.Match) -> str:
        if _SHAPE.fullmatch(m[1]):  # 8192x8192x8192: whole factors, a line break only after an "x"
            return "<td class='pi05-short'>" + m[1].replace("x", "x<wbr>") + "</td>"
        return f"<td class='pi05-short'>{m[1]}</td>" if len(html.unescape(m[1])) <= SHORT_CELL else m[0]

    def header(m: re.Match) -> str:
        return "<th>" + re.sub(r"_(?!<wbr>)", "_<wbr>", m[1]) + "</th>"

    def code(m: re.Match) -> str:  # `name` in a cell is an identifier, set as code (Markdown does not reach here)
        breakable = lambda c: "<code>" + re.sub(r"([_/])(?!<wbr>)", r"\1<wbr>", c[1]) + "</code>"  # noqa: E731
        return "<td>" + _CODE_SPAN.sub(breakable, m[1]) + "</td>"

    return _HEADER.sub(header, _PLAIN_CELL.sub(code, _PLAIN_CELL.sub(short, table_html)))


class Table:
    """A formatted table: HTML for the page, plain text for a terminal."""

    def __init__(self, headers: list[str], rows: list[list[str]], footnotes: list[str], raw_html: set[int]):
        self.headers, self.rows, self.footnotes, self.raw_html = headers, rows, footnotes, raw_html

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{c if j in self.raw_html else html.escape(c)}</td>"
                                        for j, c in enumerate(r)) + "</tr>" for r in self.rows)
        notes = "".join(f"<p class='pi05-footnote'>{html.escape(n)}</p>" for n in self.footnotes)
        return wrap_hints(f"<div class='pi05-table-wrap'><table class='pi05-table'><thead><tr>{head}</tr>"
                                f"</thead><tbody>{body}</tbody></table>{notes}</div>")

    def __repr__(self) -> str:
        widths = [max(len(h), *(len(r[j]) for r in self.rows)) if self.rows else len(h)
                  for j, h in enumerate(self.headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(self.headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in self.rows]
        return "\n".join(lines + self.footnotes)


def table(df: pd.DataFrame, *, footnotes: list[str] | None = None, html_columns: tuple[str, ...] = ()) -> Table:
    """The book's one table formatter (see the module docstring). `html_columns` names
    columns whose cells are trusted HTML (badges, links) rather than text."""
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()  # a meaningful index becomes an ordinary column
    kinds = [split_unit(str(c))[2] if not isinstance(c, tuple) else "auto" for c in df.columns]
    rows = [[cell(v, k) for v, k in zip(r, kinds)] for r in df.itertuples(index=False, name=None)]
    notes = list(footnotes or [])
    if any(DASH in r for r in rows):
        notes.append(MISSING_NOTE)
    raw = {j for j, c in enumerate(df.columns) if c in html_columns}
    return Table([header(c) for c in df.columns], rows, notes, raw)


# ----------------------------------------------------------------------------- page building
def md(text: str) -> Any:
    from IPython.display import Markdown

    return Markdown(text)


def show(obj: Any) -> None:
    """Display anything; a DataFrame goes through `table` first."""
    from IPython.display import display

    display(table(obj) if isinstance(obj, pd.DataFrame) else obj)


def banner(text: str, kind: str = "info") -> Any:
    """A coloured box at the top of a page (kind: info | smoke | missing | failed)."""
    from IPython.display import HTML

    return HTML(f"<div class='pi05-banner pi05-banner-{kind}'>{text}</div>")


def run_banner(run: Run, device: str, commit: str | None, date: str, dirty: bool | None = None) -> str:
    """The sentence at the top of every executed page: what ran where, at which commit."""
    short = (commit or "unknown")[:7]
    local = " plus uncommitted changes" if dirty else ""
    setup = f" ({str(run.dtype).removeprefix('torch.')}, {run.repeats} repeats per timing)"
    if run.full:
        text = (f"Measured on <b>{html.escape(device)}</b>, full profile, commit <code>{short}</code>{local}, "
                f"{date[:10]}{setup}.")
    else:
        text = (f"<b>Smoke run</b> on {html.escape(device)} (commit <code>{short}</code>{local}, {date[:10]}): "
                "tiny models and reduced shapes that exercise the code; its figures describe no device and "
                "never appear in the published book.")
    return (f"<span class='pi05-run' data-device='{html.escape(device)}' data-profile='{run.profile}' "
            f"data-commit='{short}'>{text}</span>")


def reader_banner(devs: list[dict[str, Any]], today: str) -> str:
    """The sentence at the top of a page that only reads results: which committed runs it reads."""
    if not devs:
        return (f"This page reads the committed full-profile results ({today[:10]}): there are none yet, so it "
                "shows quoted figures only.")
    from .claims import chapter_number

    def chapters(names: list[str]) -> str:
        labels = [str(chapter_number(n) or n) for n in sorted(names)]
        return ("chapter " if len(labels) == 1 else "chapters ") + ", ".join(labels)

    def reruns(d: dict[str, Any]) -> str:
        # chapters re-run at another commit than the rest of the device's run
        other = {c: chs for c, chs in (d.get("commits") or {}).items() if c != d["commit"]}
        return "".join(f"; {chapters(chs)} at <code>{c or 'unknown'}</code>" for c, chs in sorted(other.items()))

    runs = "; ".join(f"<b>{html.escape(str(d['device']))}</b> (commit <code>{d['commit'] or 'unknown'}</code>"
                     f"{reruns(d)}, {str(d['date'])[:10]}, {len(d['chapters'])} chapters)" for d in devs)
    return (f"<span class='pi05-run' data-device='{html.escape(str(devs[0]['device']))}' data-profile='full' "
            f"data-commit='{devs[0]['commit']}'>This page reads the committed full-profile GPU results "
            f"(built {today[:10]}): {runs}. Nothing on it was measured by the machine that built it.</span>")


def start(chapter: str, **params: Any) -> Run:
    """Validate parameters, set up charts, seed the generators; say what runs where."""
    import datetime as dt

    from .charts import use_offline_renderer
    from .results import device_name, git_commit, git_dirty

    run = resolve(chapter, **params)
    _CURRENT["run"] = run
    use_offline_renderer()
    torch.manual_seed(0)
    dev = device_name(run.device) if run.cuda else "CPU"
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    from .book import READERS

    if chapter in READERS:
        from .results import devices

        show(banner(reader_banner(devices(), today), "info"))
        return run
    show(banner(run_banner(run, dev, git_commit(), today, git_dirty()), "info" if run.full else "smoke"))
    return run


def verdict(status: str) -> str:
    if status not in VERDICTS:
        raise ValueError(f"verdict must be one of {sorted(VERDICTS)}")
    return VERDICTS[status]


def side_by_side(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The book's standard comparison: Thor as quoted, this device as measured, the floor.

    Each row: quantity, unit, thor_quoted, thor_source, measured, floor (any may be None).
    Show it with `show` (which formats it)."""
    df = pd.DataFrame(rows)
    cols = ["quantity", "unit", "thor_quoted", "thor_source", "measured", "floor"]
    for c in cols:
        if c not in df:
            df[c] = None
    return df[cols].rename(columns={"thor_quoted": "Thor (quoted)", "thor_source": "quoted from",
                                    "measured": "this device (measured)", "floor": "floor (this device)"})


# Headline keys whose words would mislead as a row label (the key stays, for the results already
# committed under it), and what the row says instead.
KEY_LABELS: dict[str, str] = {
    "fp8_whole_speedup_ratio": "FP8 whole call, bf16 time / FP8 time (×; below 1: FP8 slower)"}


def key_label(key: str) -> str:
    """A headline key in words with its unit: `prefill712_best_ms` -> `prefill712 best (ms)`."""
    return KEY_LABELS.get(key) or header(key)


def key_value(key: str, value: Any) -> str:
    return cell(value, split_unit(key)[2])


def headlines_everywhere(chapter: str) -> Any:
    """This chapter's headline figures, one row per key (in words, with unit), one column per
    device with committed full-profile results (device + short commit); on a smoke build, this
    build's smoke run gets a last column."""
    from .results import headlines

    df = headlines(chapter)
    run = _CURRENT.get("run")
    smoke_site = run is not None and not run.full
    df = df[(df.source == "committed") | ((df.source == "this build") & smoke_site)]
    if df.empty:
        return md("No committed full-profile results for this chapter yet.")
    df = df.assign(column=[f"{d} ({'smoke run, ' if s != 'committed' else ''}{c[:7] or 'commit unknown'})"
                           for d, s, c in zip(df.device, df.source, df.commit)])
    order = list(dict.fromkeys(df.sort_values("source").column))  # committed first
    keys = list(dict.fromkeys(df.key))
    out = pd.DataFrame({"figure": [key_label(k) for k in keys]})
    for col in order:
        sub = df[df.column == col].drop_duplicates("key", keep="last").set_index("key").value
        out[col] = [key_value(k, sub.get(k)) if k in sub.index else DASH for k in keys]
    return table(out)
