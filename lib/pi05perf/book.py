"""Build steps behind `make book` / `make chapter` / `make test`.

    python -m pi05perf.book execute [--profile smoke] [--param name=value ...] [chapter ...]
    python -m pi05perf.book html

Chapters are jupytext percent scripts in chapters/; executed notebooks go to
_build/book/chapters/, never beside the sources.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
BUILD = ROOT / "_build"
BOOK = BUILD / "book"
KERNEL = "pi05perf"
FIRST_LAST = ("intro", "verdict")  # pages that read every other chapter's results run last


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


def execute(names: list[str], parameters: dict[str, Any]) -> None:
    import papermill

    _check_names(names)
    order = [n for n in toc_order() if n in names and n not in FIRST_LAST]
    order += [n for n in names if n not in order and n not in FIRST_LAST]
    order += [n for n in FIRST_LAST if n in names]
    out_dir = BOOK / "chapters"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in order:
        t0 = time.time()
        print(f"== executing {name} with {parameters or 'default parameters'}", flush=True)
        out = out_dir / f"{name}.ipynb"
        try:
            papermill.execute_notebook(str(_to_notebook(name)), str(out), parameters=parameters,
                                       kernel_name=KERNEL, cwd=str(ROOT), progress_bar=True)
        except papermill.PapermillExecutionError as e:
            print(f"!! {name} failed: {e.ename}: {e.evalue}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        errors = error_outputs(out)
        if errors:
            print(f"!! {name} holds error outputs: {errors}", file=sys.stderr)
            failed.append(name)
        print(f"== {name} done in {time.time() - t0:.1f} s", flush=True)
    if failed:
        sys.exit(f"error: chapters failed: {', '.join(failed)}")


def stage() -> None:
    """Lay out _build/book: the two YAML files, _static with the vega bundle, and every
    chapter (executed if it has been, else as a plain unexecuted notebook)."""
    from .charts import write_vega_bundle

    BOOK.mkdir(parents=True, exist_ok=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / f, BOOK / f)
    static = BOOK / "_static"
    if (ROOT / "_static").exists():
        shutil.copytree(ROOT / "_static", static, dirs_exist_ok=True)
    write_vega_bundle(static)
    for name in toc_order():
        target = BOOK / "chapters" / f"{name}.ipynb"
        if not target.exists():
            print(f"-- {name} not executed yet: staged without outputs", flush=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(_to_notebook(name), target)


def html() -> None:
    stage()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(BOOK), "--path-output", str(ROOT),
           "-W", "-n", "--keep-going"]
    print("==", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    for name in toc_order():
        nb = BOOK / "chapters" / f"{name}.ipynb"
        errors = error_outputs(nb)
        if errors:
            sys.exit(f"error: {name} holds error outputs: {errors}")
    print(f"== book at {BUILD / 'html' / 'index.html'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pi05perf.book")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("execute", help="run chapters with papermill")
    ex.add_argument("chapters", nargs="*", help="default: every chapter in _toc.yml")
    ex.add_argument("--profile", default=None, help="auto|smoke|full")
    ex.add_argument("--device", default=None, help="auto|cpu|cuda")
    ex.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    sub.add_parser("html", help="stage and build the HTML strictly")
    sub.add_parser("list", help="list chapters")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(toc_order()))
    elif args.cmd == "execute":
        params: dict[str, Any] = {}
        for item in args.param:
            if "=" not in item:
                sys.exit(f"error: --param wants NAME=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            params[key] = _parse_value(value)
        if args.profile:
            params["profile"] = args.profile
        if args.device:
            params["device"] = args.device
        execute(args.chapters or toc_order(), params)
    else:
        html()


if __name__ == "__main__":
    main()
