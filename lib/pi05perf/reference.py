"""Quoted reference figures: what the seed report and published sources say.

Nothing here is measured by this project (except the few H100 rows that
ANCHORS.md itself marks as measured here). Two CSV files, both with the columns
in :data:`SCHEMA`, live in ``data/reference``:

* ``seed_thor.csv``: every figure of the Thor seed report
  (``../shared/seed/000_492d4811ae218214.txt``, also published as
  ``docs/kv-cache-profill-report.md`` in github.com/LiangSu8899/TurboPi);
* ``anchors.csv``: published anchors (NVIDIA, FlashRT, Dexmal, openpi, RTC,
  SmolVLA, hardware specs), each with its primary source.

Beside them, ``thor_timings.csv`` lists every published Thor timing of pi0.5 (keys of the two
files above) with the stack, stage, views, steps, precision and fusion it was published for:
what chapter 8's Thor model is fitted and tested on (`thor_fit`).

Chapters look figures up by key::

    from pi05perf.reference import quoted, quote
    quoted("kv_prefill_standalone_ms")   # 47.38
    quote("nvidia_thor_trt_fp8_ms")["source"]
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

#: Column order of both reference CSV files.
SCHEMA: tuple[str, ...] = (
    "key",
    "experiment",
    "quantity",
    "value",
    "unit",
    "platform",
    "configuration",
    "section",
    "source",
)

#: ``data/reference`` of this repository (lib/pi05perf/ -> ../../data/reference).
REFERENCE_DIR: Path = Path(__file__).resolve().parent.parent.parent / "data" / "reference"

#: File name -> value of the ``origin`` column.
FILES: dict[str, str] = {"seed_thor.csv": "seed", "anchors.csv": "anchor"}


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    frames = []
    for name, origin in FILES.items():
        df = pd.read_csv(REFERENCE_DIR / name, dtype=str, keep_default_na=False, encoding="utf-8")
        if tuple(df.columns) != SCHEMA:
            raise ValueError(f"{name}: columns {tuple(df.columns)} differ from SCHEMA {SCHEMA}")
        df["value"] = df["value"].astype(float)
        df["origin"] = origin
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    dup = out["key"][out["key"].duplicated()].tolist()
    if dup:
        raise ValueError(f"duplicate reference keys: {dup}")
    return out


def load_reference() -> pd.DataFrame:
    """All rows of both reference files, with an extra column ``origin``
    ("seed" or "anchor"). ``value`` is float; every other column is str.
    Returns a copy, so callers may modify it freely."""
    return _load().copy()


def _row(key: str) -> pd.Series:
    df = _load()
    hit = df.loc[df["key"] == key]
    if hit.empty:
        close = difflib.get_close_matches(key, df["key"].tolist(), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise KeyError(f"unknown reference key {key!r}{hint}")
    return hit.iloc[0]


def quoted(key: str) -> float:
    """The quoted value of ``key`` (in the row's ``unit``).

    Raises KeyError naming the unknown key and its closest matches."""
    return float(_row(key)["value"])


def quote(key: str) -> dict[str, Any]:
    """The full row of ``key`` as a dict (SCHEMA columns plus ``origin``)."""
    row = _row(key).to_dict()
    row["value"] = float(row["value"])
    return row
