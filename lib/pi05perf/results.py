"""The results store: one JSON file per (device, chapter), with provenance.

Full-profile runs write `data/results/<device-slug>/<chapter>.json`; smoke runs
write under `_build/results/`, so a CPU smoke run can never overwrite a measurement.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .params import Run

ROOT = Path(__file__).resolve().parents[2]
DATA_RESULTS = ROOT / "data" / "results"
BUILD_RESULTS = ROOT / "_build" / "results"
# A headline key ends in its unit: suffix -> (unit as a reader sees it, display kind), the one list
# the store checks keys against and the report labels columns with. Longer suffixes first.
UNITS: dict[str, tuple[str, str]] = {
    "_flop_per_byte": ("FLOP/B", "num"),
    "_ms": ("ms", "num"), "_tflops": ("TFLOP/s", "num"), "_gbps": ("GB/s", "num"), "_pct": ("%", "num"),
    "_ratio": ("×", "num"), "_hz": ("Hz", "num"), "_cos": ("cosine", "cos"), "_tokens": ("tokens", "int"),
    "_count": ("", "int"), "_bytes": ("", "si:B"), "_flops": ("", "si:FLOP"),
}
UNIT_SUFFIXES = tuple(UNITS)
# Keys renamed without a change of meaning (a wrong unit in the name): older results are read under
# the new name, so one figure keeps one row across runs.
RENAMED_KEYS = {"prefill_intensity_ratio": "prefill_intensity_flop_per_byte",
                "prefill712_intensity_ratio": "prefill712_intensity_flop_per_byte"}


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def device_slug(name: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> `nvidia-h100-80gb-hbm3`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def git_commit() -> str | None:
    """The commit this tree is: $PI05PERF_GIT_COMMIT when set (a copy of the tree on a GPU server
    may carry a stale .git of its own, as the lent H200s' copies did), else git's HEAD."""
    if os.environ.get("PI05PERF_GIT_COMMIT"):
        return os.environ["PI05PERF_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit; None when unknown (no git, or the commit
    given by $PI05PERF_GIT_COMMIT, which git here cannot check)."""
    if os.environ.get("PI05PERF_GIT_COMMIT"):
        return None
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        return bool(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance(run: Run) -> dict[str, Any]:
    dev = run.device
    prov: dict[str, Any] = {
        "device": device_name(dev),
        "device_type": dev.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": run.profile,
        "parameters": run.parameters(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        prov.update(compute_capability=f"{props.major}.{props.minor}", sm_count=props.multi_processor_count,
                    cuda=torch.version.cuda, driver=_nvidia_driver())
        try:
            import triton
            prov["triton"] = triton.__version__
        except ImportError:
            pass
    return prov


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True, timeout=20)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def results_dir(run: Run) -> Path:
    base = DATA_RESULTS if run.full else BUILD_RESULTS
    return base / device_slug(device_name(run.device))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # JSON has no NaN or infinity: a figure that could not be measured
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return _jsonable(value.item())
    return value


def _records(rows: pd.DataFrame | list[dict] | None) -> list[dict]:
    if isinstance(rows, pd.DataFrame):
        return json.loads(rows.to_json(orient="records"))
    return list(rows or [])


def save(run: Run, headline: dict[str, float], rows: pd.DataFrame | list[dict] | None = None,
         tables: dict[str, pd.DataFrame | list[dict]] | None = None) -> Path:
    """Write the chapter's results atomically; returns the path written.

    `tables` holds named tables (`{"sweep": df}`), read back with `table(chapter, name)`;
    `rows` is the older single table, kept for chapters that still use it."""
    bad = [k for k in headline if not k.endswith(UNIT_SUFFIXES)]
    if bad:
        raise ValueError(f"headline keys must end in a unit {UNIT_SUFFIXES}: {bad}")
    doc = {"provenance": provenance(run),
           "headline": {k: _jsonable(v) for k, v in headline.items()},
           "rows": _records(rows)}
    if tables:
        doc["tables"] = {name: _records(t) for name, t in tables.items()}
    out_dir = results_dir(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{run.chapter}.json"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{run.chapter}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, default=_jsonable)
        f.write("\n")
    os.replace(tmp, target)
    return target


def load_all(chapter: str | None = None) -> list[dict[str, Any]]:
    """Every results file: committed measurements, then this build's smoke runs.
    Each document gains `source` ('committed' | 'this build') and `slug`."""
    docs = []
    for base, source in ((DATA_RESULTS, "committed"), (BUILD_RESULTS, "this build")):
        for path in sorted(base.glob(f"*/{chapter or '*'}.json")):
            doc = json.loads(path.read_text())
            doc["headline"] = {RENAMED_KEYS.get(k, k): v for k, v in doc.get("headline", {}).items()}
            doc.update(source=source, slug=path.parent.name, chapter=path.stem)
            docs.append(doc)
    return docs


def headlines(chapter: str | None = None) -> pd.DataFrame:
    """Tidy table of every headline figure: chapter, device, source, profile, key, value."""
    rows = []
    for doc in load_all(chapter):
        prov = doc["provenance"]
        for key, value in doc["headline"].items():
            rows.append({"chapter": doc["chapter"], "device": prov.get("device"), "slug": doc["slug"],
                         "source": doc["source"], "profile": prov.get("profile"), "key": key, "value": value,
                         "commit": (prov.get("git_commit") or "")[:10], "date": prov.get("date")})
    return pd.DataFrame(rows, columns=["chapter", "device", "slug", "source", "profile", "key", "value",
                                       "commit", "date"])


def run_commit(commits: list[str]) -> str:
    """The commit of a device's run: the one most of its chapters ran at (a chapter re-run later
    at another commit is the exception, named beside it)."""
    return Counter(commits).most_common(1)[0][0]


def devices() -> list[dict[str, Any]]:
    """Every device with committed (full-profile) results, newest run first: slug, device,
    commit (short: the one most of its chapters ran at), commits (short commit -> chapters, when a
    chapter was re-run at a later commit), date (the newest), chapters."""
    by_slug: dict[str, dict[str, Any]] = {}
    for doc in load_all():
        if doc["source"] != "committed":
            continue
        prov = doc["provenance"]
        d = by_slug.setdefault(doc["slug"], {"slug": doc["slug"], "device": prov.get("device"), "commit": "",
                                             "commits": {}, "date": "", "chapters": []})
        d["chapters"].append(doc["chapter"])
        d["commits"].setdefault((prov.get("git_commit") or "")[:7], []).append(doc["chapter"])
        d["date"] = max(d["date"], prov.get("date") or "")
    for d in by_slug.values():
        d["commit"] = run_commit([c for c, chs in d["commits"].items() for _ in chs])
    return sorted(by_slug.values(), key=lambda d: d["date"], reverse=True)


def report_device() -> str | None:
    """The device a page presents: $REPORT_DEVICE, else the device with the newest committed run."""
    env = os.environ.get("REPORT_DEVICE")
    if env:
        return env
    devs = devices()
    return devs[0]["slug"] if devs else None


def committed_docs(chapter: str) -> dict[str, dict[str, Any]]:
    """The committed results documents of `chapter`, by device slug."""
    return {d["slug"]: d for d in load_all(chapter) if d["source"] == "committed"}


def table(chapter: str, name: str, slug: str | None = None) -> pd.DataFrame | None:
    """One named table (saved with `save(..., tables={name: df})`) of a committed run;
    None when that run has no such table. `slug` defaults to `report_device()`."""
    doc = committed_docs(chapter).get(slug or report_device())
    records = None if doc is None else doc.get("tables", {}).get(name)
    return None if records is None else pd.DataFrame(records)


def run_table(doc: dict[str, Any] | None, name: str) -> pd.DataFrame | None:
    """A named table of one results document: `tables` (new runs) or the legacy `rows` with a
    `table` column (empty where absent); None where there is no document."""
    if doc is None:
        return None
    if name in doc.get("tables", {}):
        return pd.DataFrame(doc["tables"][name])
    df = pd.DataFrame(doc.get("rows", []))
    return df[df.table == name] if "table" in df else df.iloc[0:0]


def measured(chapter: str, key: str, slug: str | None = None) -> float | None:
    """One headline figure from the committed results of `slug` (default: any GPU run)."""
    df = headlines(chapter)
    df = df[(df.key == key) & (df.source == "committed")]
    if slug:
        df = df[df.slug == slug]
    return None if df.empty else float(df.iloc[-1].value)
