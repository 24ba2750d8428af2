"""The build entry points: bad input stops with a message and leaves data/ untouched."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _snapshot() -> dict:
    return {p: p.stat().st_mtime_ns for p in (ROOT / "data").rglob("*") if p.is_file()}


def _book(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi05perf.book", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_unknown_chapter_is_refused_with_the_list():
    out = _book("execute", "ch99_nothing")
    assert out.returncode != 0
    assert "unknown chapter ch99_nothing" in out.stderr and "ch01_flops" in out.stderr


def test_bad_parameter_stops_the_chapter_and_leaves_data_alone():
    before = _snapshot()
    out = _book("execute", "ch01_flops", "--profile", "full", "-p", "prefix_tokens=0")
    assert out.returncode != 0
    assert "prefix_tokens=0" in out.stderr + out.stdout and "positive integers" in out.stderr + out.stdout
    assert _snapshot() == before
