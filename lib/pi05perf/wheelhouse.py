"""`make wheelhouse`: the book's own dependencies as wheels for another platform/Python.

torch is left out on purpose: a Jetson gets it from JetPack, a GPU image ships its own.
Resolution runs pip's resolver for the target platform (`pip install --dry-run --report`),
then each resolved distribution is downloaded without its dependencies, so names in
`--skip` (e.g. numpy,pandas where the target already has them) really stay out.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALWAYS_SKIP = {"torch", "triton"}  # provided by the device's own torch build
BUILD_TOOLS = ["setuptools>=64", "wheel"]  # `pip install -e . --no-build-isolation` needs them


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        if extra not in project["optional-dependencies"]:
            sys.exit(f"error: unknown extra {extra!r} (EXTRAS); known: {sorted(project['optional-dependencies'])}")
        reqs += project["optional-dependencies"][extra]
    return [r for r in reqs if _name(r) not in ALWAYS_SKIP] + BUILD_TOOLS


def skipped_names(text: str) -> set[str]:
    """Package names from a `pip list --format=freeze` listing (or one name a line; # comments)."""
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return {_name(n) for n in names if n}


def platform_tags(platform: str) -> list[str]:
    """pip matches manylinux tags exactly: list every older glibc tag the target also accepts."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not m:
        return [platform]
    glibc, arch = int(m.group(1)), m.group(2)
    tags = [f"manylinux_2_{n}_{arch}" for n in range(glibc, 16, -1)] + [f"manylinux2014_{arch}", "linux_" + arch]
    return tags + ([f"manylinux1_{arch}"] if arch == "x86_64" else [])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pi05perf.wheelhouse")
    ap.add_argument("--platform", default="manylinux_2_28_x86_64")
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--extras", default="run")
    ap.add_argument("--skip", default="", help="comma-separated names the target already has")
    ap.add_argument("--skip-from", default="", help="a file of names the target already has, one a line "
                    "(`pip list --format=freeze` run on the target; `name==version` lines are fine)")
    ap.add_argument("--dest", default="wheelhouse")
    args = ap.parse_args(argv)
    skip = ALWAYS_SKIP | {_name(s) for s in args.skip.split(",") if s.strip()}
    if args.skip_from:
        skip |= skipped_names(Path(args.skip_from).read_text())
    target = ["--only-binary=:all:", "--python-version", args.python, "--implementation", "cp"]
    for tag in platform_tags(args.platform):
        target += ["--platform", tag]
    reqs = requirements([e for e in args.extras.split(",") if e])
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--target", str(Path(tmp) / "t"), "--report", str(report), *target, *reqs], check=True)
        resolved = [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]]
    wanted = [f"{n}=={v}" for n, v in resolved if _name(n) not in skip]
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), *target, *wanted],
                   check=True)
    wheels = sorted(dest.glob("*.whl"), key=lambda p: p.stat().st_size, reverse=True)
    size = sum(p.stat().st_size for p in wheels) / 2**20
    print(f"{len(wanted)} wheels for {args.platform} / Python {args.python} in {dest}/ ({size:.1f} MiB); "
          f"left out: {', '.join(sorted(skip))}")
    # what to leave out (--skip / WHEEL_SKIP) where the target environment already has it
    print("largest: " + ", ".join(f"{_name(p.name.split('-')[0])} {p.stat().st_size / 2**20:.1f} MiB" for p in wheels[:6]))


if __name__ == "__main__":
    main()
