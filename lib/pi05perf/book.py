"""Build steps behind `make book` / `make chapter` / `make test`.

    python -m pi05perf.book execute [--profile P] [--device D] [-p NAME VALUE ...] [chapter ...]
    python -m pi05perf.book html [--site published|smoke]
    python -m pi05perf.book chapter NAME [--profile P] [-p NAME VALUE ...]   # execute, then build its site

Two sites, never mixed:

* the *published* book (`_build/html`) is built from committed executed notebooks,
  `data/notebooks/<device-slug>/<chapter>.ipynb`. A full-profile run (on a GPU) copies
  every chapter it executed without error there, so the newest full run is what a reader
  sees. The device shown is `$REPORT_DEVICE`, else the one with the newest notebooks; a
  chapter that device lacks comes from another device, or is a page that says none exists.
* the *smoke* site (`_build/smoke/_build/html`) is built from this machine's smoke run,
  for `make test`'s checks only.

A chapter that fails never stops the others: its page says so (or shows its last good
run, with a banner), and the build exits non-zero at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .notebooks import NOTEBOOKS, commit_notebook, committed_devices, report_slug

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
BUILD = Path(os.environ.get("PI05PERF_BUILD", ROOT / "_build"))  # tests build elsewhere
KERNEL = "pi05perf"
FIRST_LAST = ("intro", "verdict")  # pages that read every other chapter's results run last
# Pages that measure nothing (they read data/results): the published book executes them afresh at
# every build, on any machine, so they always compare every device with committed results.
READERS = FIRST_LAST
SITES = ("published", "smoke")


def executed_dir(profile: str) -> Path:
    """Where papermill writes a run's notebooks (both profiles; only full ones get committed)."""
    return BUILD / "executed" / profile


def readers_dir() -> Path:
    return BUILD / "executed" / "readers"


def execute_readers() -> dict[str, str]:
    """Run the reader pages (intro, verdict) for the published book; returns failures."""
    import papermill

    failed: dict[str, str] = {}
    readers_dir().mkdir(parents=True, exist_ok=True)
    for name in READERS:
        out = readers_dir() / f"{name}.ipynb"
        out.unlink(missing_ok=True)
        print(f"== reading the committed results into {name}", flush=True)
        try:
            papermill.execute_notebook(str(_to_notebook(name)), str(out), kernel_name=KERNEL, cwd=str(ROOT),
                                       progress_bar=False)
            errors = error_outputs(out)
            if errors:
                failed[name] = "; ".join(errors)
        except Exception as e:  # papermill's own error or a dead kernel: the committed page stays
            failed[name] = f"{type(e).__name__}: {e}"
        if name in failed:
            print(f"!! {name} failed: {failed[name]}", file=sys.stderr, flush=True)
            out.unlink(missing_ok=True)
    return failed


def stage_dir(site: str) -> Path:
    return BUILD / "book" if site == "published" else BUILD / "smoke" / "book"


def site_html(site: str) -> Path:
    """The built HTML of a site (jupyter-book writes <path-output>/_build/html)."""
    return BUILD / "html" if site == "published" else BUILD / "smoke" / "_build" / "html"


def _failures_file(site: str) -> Path:
    return BUILD / f"failed-{site}.json"


def failures(site: str) -> dict[str, str]:
    """Chapters whose latest run for `site` failed: name -> error text."""
    path = _failures_file(site)
    return json.loads(path.read_text()) if path.exists() else {}


def _record(site: str, name: str, error: str | None) -> None:
    fails = failures(site)
    if error is None:
        fails.pop(name, None)
    else:
        fails[name] = error
    _failures_file(site).parent.mkdir(parents=True, exist_ok=True)
    _failures_file(site).write_text(json.dumps(fails, indent=1) + "\n")


def toc_order() -> list[str]:
    """Chapter names in _toc.yml order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return [Path(f).name for f in files]


def available() -> list[str]:
    return sorted(p.stem for p in CHAPTERS.glob("*.py"))


def _check_names(names: list[str]) -> None:
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"error: unknown chapter {', '.join(unknown)} (NAME); chapters: {', '.join(known)}")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _to_notebook(name: str) -> Path:
    import jupytext

    nb = jupytext.read(CHAPTERS / f"{name}.py")
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python (pi05perf)", "language": "python"}
    src = BUILD / "src" / f"{name}.ipynb"
    src.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, src)
    return src


def error_outputs(path: Path) -> list[str]:
    """The error outputs an executed notebook holds (papermill records them in place)."""
    nb = json.loads(path.read_text())
    errors = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"{out.get('ename')}: {out.get('evalue')}")
    return errors


def resolved_profile(parameters: dict[str, Any]) -> str:
    """What `profile` resolves to on this machine (the rule of pi05perf.params.resolve)."""
    profile = parameters.get("profile", "auto")
    if profile != "auto":
        return str(profile)
    if parameters.get("device", "auto") == "cpu":
        return "smoke"
    import torch

    return "full" if torch.cuda.is_available() else "smoke"


def this_device() -> tuple[str, str]:
    """(name, slug) of the device a full run here measures."""
    import torch

    from .results import device_slug

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return name, device_slug(name)


# ----------------------------------------------------------------------------- execution
def execute(names: list[str], parameters: dict[str, Any]) -> dict[str, str]:
    """Run chapters with papermill, each on its own (a failure never stops the others).
    A full-profile run copies each notebook that ran without error to data/notebooks.
    Returns the failures of this call (name -> error)."""
    import papermill

    _check_names(names)
    order = [n for n in toc_order() if n in names and n not in FIRST_LAST]
    order += [n for n in names if n not in order and n not in FIRST_LAST]
    order += [n for n in FIRST_LAST if n in names]
    profile = resolved_profile(parameters)
    import torch

    # a full run refused on a machine without a GPU is no failure of the published book
    site = "published" if profile == "full" and torch.cuda.is_available() else "smoke"
    out_dir = executed_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    device, slug = this_device() if profile == "full" else ("cpu", "cpu")
    failed: dict[str, str] = {}
    for name in order:
        t0 = time.time()
        print(f"== executing {name} ({profile} profile) with {parameters or 'default parameters'}", flush=True)
        out = out_dir / f"{name}.ipynb"
        out.unlink(missing_ok=True)
        error = None
        try:
            papermill.execute_notebook(str(_to_notebook(name)), str(out), parameters=parameters,
                                       kernel_name=KERNEL, cwd=str(ROOT), progress_bar=True)
            errors = error_outputs(out)
            error = "; ".join(errors) if errors else None
        except papermill.PapermillExecutionError as e:
            error = f"{e.ename}: {e.evalue}"
        except Exception as e:  # a kernel that died, a notebook that could not be written: still go on
            error = f"{type(e).__name__}: {e}"
        _record(site, name, error)
        if error:
            print(f"!! {name} failed: {error}", file=sys.stderr, flush=True)
            failed[name] = error
        elif site == "published":  # a full run on a GPU: the page a reader gets (never a CPU's)
            print(f"== committed as {commit_notebook(out, name, device, slug)}", flush=True)
        print(f"== {name} done in {time.time() - t0:.1f} s", flush=True)
    return failed


# ----------------------------------------------------------------------------- staging
def _banner_cell(text: str, kind: str) -> dict[str, Any]:
    html = f"<div class='pi05-banner pi05-banner-{kind}'>{text}</div>"
    # a code cell with a source (myst-nb drops empty ones), input hidden
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["remove-input"]},
            "source": "# page status (pi05perf.book)",
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"text/html": html, "text/plain": text}}]}


def _title_cells(name: str) -> list[dict[str, Any]]:
    """The chapter's first markdown cell (its title and introduction), so a placeholder page
    still says what the chapter is about."""
    nb = json.loads(_to_notebook(name).read_text())
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    if first is None:
        return [{"cell_type": "markdown", "metadata": {}, "source": f"# {name}"}]
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    return [{"cell_type": "markdown", "metadata": {}, "source": src}]


def _committed_figures_cells(name: str) -> list[dict[str, Any]]:
    """The headline figures every committed full-profile run of this chapter stored (each column
    names its device and commit), as an output cell: what a reader can still trust on a page
    whose executed notebook is not committed."""
    from .report import headlines_everywhere

    shown = headlines_everywhere(name)
    if not hasattr(shown, "rows"):  # no committed results: a sentence, not a table
        return []
    intro = ("## Figures of earlier committed runs\nThe headline figures that committed full-profile runs of "
             "this chapter stored in `data/results/<device>/`, each column headed by the device and the commit "
             "that measured it. Those runs used the chapter's code at that commit, which may measure some "
             "figures differently from the code above; a figure this chapter's current code adds is absent there.")
    return [{"cell_type": "markdown", "metadata": {}, "source": intro},
            {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["remove-input"]},
             "source": "# committed headline figures (pi05perf.report.headlines_everywhere)",
             "outputs": [{"output_type": "display_data", "metadata": {},
                          "data": {"text/html": shown._repr_html_(), "text/plain": repr(shown)}}]}]


def placeholder(name: str, text: str, kind: str = "missing") -> dict[str, Any]:
    return {"cells": [*_title_cells(name), _banner_cell(text, kind), *_committed_figures_cells(name)],
            "metadata": {"kernelspec": {"name": KERNEL, "display_name": "Python (pi05perf)", "language": "python"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _page_ready(nb: dict[str, Any]) -> dict[str, Any]:
    """papermill's `# Parameters` cell stays in the notebook but leaves the page; tables rendered
    by an earlier formatter get today's wrapping rules (`report.wrap_hints`)."""
    from .report import wrap_hints

    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        for out in cell.get("outputs", []):
            page = out.get("data", {}).get("text/html")
            if page and "pi05-table" in "".join(page):
                out["data"]["text/html"] = wrap_hints("".join(page))
    return nb


def _with_banner(nb: dict[str, Any], text: str, kind: str) -> dict[str, Any]:
    cells = nb["cells"]
    at = next((i + 1 for i, c in enumerate(cells) if c["cell_type"] == "markdown"), 0)
    cells.insert(at, _banner_cell(text, kind))
    return nb


def published_sources(names: list[str], notebooks: Path | None = None,
                      fails: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """For each chapter, the notebook the published page shows (as a dict). The chosen device's
    committed notebook; else another device's newest; else a page saying none exists. A chapter
    whose latest full run here failed keeps its last good run, under a banner saying so."""
    base = notebooks or NOTEBOOKS
    slug = report_slug(base)
    devs = committed_devices(base)
    fails = failures("published") if fails is None else fails
    out = {}
    for name in names:
        candidates = ([readers_dir() / f"{name}.ipynb"] if name in READERS and notebooks is None else []) + \
                     ([base / slug / f"{name}.ipynb"] if slug else []) + \
                     [base / d["slug"] / f"{name}.ipynb" for d in devs if d["slug"] != slug]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            text = (f"<b>No committed full-profile run of this chapter yet.</b> This page shows a GPU run once one "
                    f"exists in <code>data/notebooks/&lt;device&gt;/{name}.ipynb</code> (written by "
                    "<code>make book</code> on a CUDA GPU). Smoke runs are never published.")
            if name in fails:
                text += f" The latest full run failed: <code>{_escape(fails[name])}</code>."
            out[name] = placeholder(name, text, "failed" if name in fails else "missing")
            continue
        nb = json.loads(path.read_text())
        if name in fails:
            meta = nb.get("metadata", {}).get("pi05perf", {})
            nb = _with_banner(nb, f"<b>The latest full run of this chapter failed</b> "
                                  f"(<code>{_escape(fails[name])}</code>). Shown: the last good run, "
                                  f"{_escape(str(meta.get('device', '?')))} at {str(meta.get('date', '?'))[:10]}.",
                              "failed")
        out[name] = _page_ready(nb)
    return out


def _escape(text: str) -> str:
    import html

    return html.escape(text[:300])


def smoke_sources(names: list[str]) -> dict[str, dict[str, Any]]:
    fails = failures("smoke")
    out = {}
    for name in names:
        path = executed_dir("smoke") / f"{name}.ipynb"
        if not path.exists():
            out[name] = placeholder(name, "Not executed in this build's smoke run.", "missing")
            continue
        nb = _page_ready(json.loads(path.read_text()))
        if name in fails:
            nb = _with_banner(nb, f"<b>This chapter failed</b>: <code>{_escape(fails[name])}</code>", "failed")
        out[name] = nb
    return out


def stage(site: str) -> Path:
    """Lay out a site's source tree: the two YAML files, _static with the vega bundle, every
    chapter's notebook."""
    from .charts import BUNDLE_NAME, write_vega_bundle

    book = stage_dir(site)
    if (book / "chapters").exists():
        shutil.rmtree(book / "chapters")
    (book / "chapters").mkdir(parents=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / f, book / f)
    static = book / "_static"
    if (ROOT / "_static").exists():
        shutil.copytree(ROOT / "_static", static, dirs_exist_ok=True)
    if not (static / BUNDLE_NAME).exists():  # committed; rewritten only where it is missing
        write_vega_bundle(static)
    names = toc_order()
    sources = published_sources(names) if site == "published" else smoke_sources(names)
    for name, nb in sources.items():
        for i, cell in enumerate(nb["cells"]):  # nbformat 4.5 wants an id on every cell (banners have none)
            cell.setdefault("id", f"pi05perf-{i}")
        nb["nbformat_minor"] = max(nb.get("nbformat_minor", 5), 5)
        (book / "chapters" / f"{name}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    return book


def html(site: str = "published") -> int:
    """Build a site; returns 1 when a chapter of it failed in its latest run (the site is still built)."""
    reader_fails = execute_readers() if site == "published" else {}
    book = stage(site)
    output = ROOT if site == "published" else BUILD / "smoke"
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--path-output", str(output),
           "-W", "-n", "--keep-going"]
    print("==", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    print(f"== {site} site at {site_html(site) / 'index.html'}")
    if site == "published":
        slug = report_slug()
        print(f"== published device: {slug or 'none (no committed notebooks yet: every page says so)'}")
    fails = {n: e for n, e in failures(site).items() if n in toc_order()} | reader_fails
    if fails:
        print(f"error: chapters failed in their latest {site} run: {', '.join(fails)}", file=sys.stderr)
        return 1
    return 0


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in args.param:
        if "=" in key:
            sys.exit(f"error: -p takes NAME VALUE, papermill's syntax (e.g. -p prefix_tokens 968); got -p {key} {value}")
        params[key] = _parse_value(value)
    if args.profile:
        params["profile"] = args.profile
    if args.device:
        params["device"] = args.device
    return params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pi05perf.book")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("execute", help="run chapters with papermill")
    ch = sub.add_parser("chapter", help="run chapters, then build the site their profile belongs to")
    for p in (ex, ch):
        p.add_argument("chapters", nargs="*", help="default: every chapter in _toc.yml")
        p.add_argument("--profile", default=None, help="auto|smoke|full")
        p.add_argument("--device", default=None, help="auto|cpu|cuda")
        p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help="a chapter parameter, papermill's syntax: -p prefix_tokens 968")
    h = sub.add_parser("html", help="stage and build a site strictly")
    h.add_argument("--site", choices=SITES, default="published")
    sub.add_parser("list", help="list chapters")
    sub.add_parser("devices", help="devices with committed notebooks, newest first")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(toc_order()))
    elif args.cmd == "devices":
        for d in committed_devices():
            print(f"{d['slug']}\t{d['date']}\t{d['commit']}\t{len(d['chapters'])} chapters")
    elif args.cmd in ("execute", "chapter"):
        params = _params(args)
        failed = execute(args.chapters or toc_order(), params)
        rc = html("published" if resolved_profile(params) == "full" else "smoke") if args.cmd == "chapter" else 0
        if failed:
            sys.exit(f"error: chapters failed: {', '.join(failed)}")
        sys.exit(rc)
    else:
        sys.exit(html(args.site))


if __name__ == "__main__":
    main()
