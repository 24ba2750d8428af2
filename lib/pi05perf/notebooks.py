"""The committed executed notebooks, `data/notebooks/<device-slug>/<chapter>.ipynb`: what the
published book is built from. A full-profile run copies each chapter it executed without error
here (`commit_notebook`: outputs kept, machine paths and timing metadata dropped, provenance in
`metadata.pi05perf`); `committed_devices` lists the runs, `report_slug` picks the one a build shows.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from .results import ROOT

#: committed executed notebooks, one folder per device (tests point this elsewhere)
NOTEBOOKS = Path(os.environ.get("PI05PERF_NOTEBOOKS", ROOT / "data" / "notebooks"))


def _clean_text(text: str) -> str:
    """Machine paths out of committed outputs: the repository becomes `.`, the home `~`."""
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    home = str(Path.home())
    return text.replace(home + "/", "~/") if len(home) > 1 else text


def _clean(obj: Any) -> Any:
    if isinstance(obj, str):
        return _clean_text(obj)
    if isinstance(obj, list):
        return [_clean(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj


def commit_notebook(src: Path, name: str, device: str, slug: str, profile: str = "full",
                    commit: str | None = None, date: str | None = None, dest: Path | None = None) -> Path:
    """Copy an executed full-profile notebook to `data/notebooks/<slug>/<name>.ipynb`: outputs
    kept (but stderr), timing metadata and machine paths dropped, provenance in `metadata.pi05perf`."""
    from .results import git_commit

    nb = json.loads(src.read_text())
    for cell in nb.get("cells", []):
        md = cell.get("metadata", {})
        md.pop("papermill", None)
        md.pop("execution", None)
        # progress lines and library warnings: never shown (nb_output_stderr: remove), and they
        # carry the running machine's paths
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if o.get("name") != "stderr"]
    pm = nb.get("metadata", {}).pop("papermill", {})
    nb["metadata"]["pi05perf"] = {
        "device": device, "slug": slug, "profile": profile,
        "commit": commit or git_commit() or "unknown",
        "date": date or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": pm.get("parameters", {})}
    target = (dest or NOTEBOOKS) / slug / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_clean(nb), indent=1, ensure_ascii=False) + "\n")
    return target


def _meta(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()).get("metadata", {}).get("pi05perf", {})


def committed_devices(notebooks: Path | None = None) -> list[dict[str, Any]]:
    """Devices with committed notebooks, newest run first: slug, device, date, commit, chapters."""
    from .results import run_commit

    base = notebooks or NOTEBOOKS
    out = []
    for folder in sorted(p for p in base.glob("*") if p.is_dir()):
        metas = {p.stem: _meta(p) for p in sorted(folder.glob("*.ipynb"))}
        if not metas:
            continue
        newest = max(metas.values(), key=lambda m: m.get("date", ""))
        out.append({"slug": folder.name, "device": newest.get("device", folder.name), "date": newest.get("date", ""),
                    "commit": run_commit([str(m.get("commit", ""))[:7] for m in metas.values()]),
                    "chapters": sorted(metas)})
    return sorted(out, key=lambda d: d["date"], reverse=True)


def report_slug(notebooks: Path | None = None) -> str | None:
    """$REPORT_DEVICE, else the device with the newest committed notebooks (None: there are none)."""
    env = os.environ.get("REPORT_DEVICE")
    if env:
        return env
    devs = committed_devices(notebooks)
    return devs[0]["slug"] if devs else None
