"""The verdict page's ledger: the seed's conclusions, each with a status, its evidence and the
chapter figures it rests on.

`Ledger(slug)` reads the committed results of one GPU run. Every figure a verdict reads through
`Ledger.gpu` is remembered, so that `Ledger.claim` can name, for each verdict, the figures read
since the previous one (the page's "figure used" column). A figure the run lacks is None, and
`text` writes "(not measured in this run)" for it: the page never crashes on an older run.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from . import claims as figs
from .report import VERDICTS

NOT_YET = figs.NOT_MEASURED
LABEL = {**VERDICTS, NOT_YET: f'<span class="pi05-badge pi05-not-yet-measured">{NOT_YET}</span>'}


def text(v: float | None, fmt: str = ".2f", unit: str = "") -> str:
    """A GPU figure for the evidence column; the fallback text where it is not measured yet."""
    return f"({NOT_YET})" if v is None else f"{v:{fmt}}{unit}"


def status_of(value: float | None, decide: Callable[[float], str]) -> str:
    """`decide(value)`, or "not measured in this run" where the run lacks the figure."""
    return NOT_YET if value is None else decide(value)


class Ledger:
    def __init__(self, slug: str):
        from . import results

        self.slug = slug
        devices = results.devices()
        self.device = next((d["device"] for d in devices if d["slug"] == slug), slug)
        heads = results.headlines()
        self.heads = heads[(heads.slug == slug) & (heads.source == "committed")]
        self.docs = {d["chapter"]: d for d in results.load_all() if d["slug"] == slug and d["source"] == "committed"}
        self.used: list[str] = []  # chapter:key of every figure read since the last claim
        self.claims: list[dict[str, Any]] = []

    @property
    def chapters(self) -> list[str]:
        return sorted(set(self.heads.chapter))

    def gpu(self, chapter: str, key: str) -> float | None:
        """A committed headline figure of this run; None when the run lacks the chapter or key."""
        self.used.append(f"{chapter}:{key}")
        hit = self.heads[(self.heads.chapter == chapter) & (self.heads.key == key)]
        return None if hit.empty else figs.number(hit.value.iloc[-1])

    def rows(self, chapter: str, name: str) -> pd.DataFrame | None:
        """A named table of this run: `tables` (new runs) or the legacy `rows` with a `table` column."""
        doc = self.docs.get(chapter)
        if doc is None:
            return None
        if name in doc.get("tables", {}):
            return pd.DataFrame(doc["tables"][name])
        df = pd.DataFrame(doc["rows"])
        return df[df.table == name] if "table" in df else df.iloc[0:0]

    def claim(self, section: str, conclusion: str, status: str, evidence: str, *chapters: str,
              short: str = "") -> None:
        """One verdict; the figures read since the previous claim are the ones it uses, and
        `chapters` the ones it cites without reading a figure (quoted or analytic evidence)."""
        if status not in VERDICTS and status != NOT_YET:
            raise ValueError(f"unknown verdict {status!r}")
        used = list(dict.fromkeys(self.used))
        self.used.clear()
        by_chapter: dict[str, list[str]] = {}
        for k in used:
            by_chapter.setdefault(k.split(":")[0], []).append(f"`{k.split(':')[1]}`")
        figures = "; ".join(f"{figs.chapter_link(c)}: {', '.join(keys)}" for c, keys in by_chapter.items())
        others = ", ".join(figs.chapter_link(c) for c in chapters if c not in by_chapter)
        cited = (("quoted / analytic: " if not figures else "see ") + others) if others else ""
        self.claims.append({"section": section, "conclusion": conclusion, "status": status, "evidence": evidence,
                            "chapters": "; ".join(t for t in (figures, cited) if t), "short": short or conclusion})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.claims)

    def counts(self) -> pd.DataFrame:
        """How many conclusions got each verdict (badges as HTML)."""
        c = self.table().status.value_counts()
        return pd.DataFrame({"verdict": [LABEL[s] for s in c.index], "conclusions_count": c.values})

    def sections_markdown(self) -> str:
        """One MyST list-table per section of the seed (conclusion, verdict, evidence, figure used),
        with column widths: a pipe table gets equal columns and squeezes the evidence."""
        def one_line(s: Any) -> str:
            return " ".join(str(s).split())

        out = []
        for section, g in self.table().groupby("section", sort=False):
            out += [f"### {section}", "", "```{list-table}", ":header-rows: 1", ":widths: 21 14 40 25", ":class: pi05-claims", "",
                    "* - the seed concluded", "  - verdict", "  - evidence", "  - figure used"]
            for r in g.itertuples():
                out += [f"* - {one_line(r.conclusion)}", f"  - {LABEL[r.status]}", f"  - {one_line(r.evidence)}",
                        f"  - {one_line(r.chapters) or '–'}"]
            out += ["```", ""]
        return "\n".join(out)

    def summary(self) -> list[str]:
        """The paragraph's lines: how many of each verdict, then the short names under each."""
        t = self.table()
        groups = {st: list(t[t.status == st].short) for st in (*VERDICTS, NOT_YET)}
        lines = [f"Of the seed's {len(t)} conclusions: "
                 + "; ".join(f"{len(v)} {LABEL[st]}" for st, v in groups.items() if v) + "."]
        for st in ("held", "partly held", "not held"):
            if groups[st]:
                lines.append(f"**{LABEL[st]}:** " + "; ".join(groups[st]) + ".")
        if groups[NOT_YET]:
            lines.append(f"**{NOT_YET.capitalize()}:** " + "; ".join(groups[NOT_YET]) + ".")
        return lines
