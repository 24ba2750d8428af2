"""The build entry points: bad input stops with a message and leaves data/ untouched."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _snapshot() -> dict:
    return {p: p.stat().st_mtime_ns for p in (ROOT / "data").rglob("*") if p.is_file()}


def _book(*args: str) -> subprocess.CompletedProcess:
    import os
    import tempfile

    # a build directory of its own, so a deliberately failed run leaves _build/ (and its sites) alone
    env = {**os.environ, "PI05PERF_BUILD": tempfile.mkdtemp(prefix="pi05perf-build-")}
    return subprocess.run([sys.executable, "-m", "pi05perf.book", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def test_unknown_chapter_is_refused_with_the_list():
    out = _book("execute", "ch99_nothing")
    assert out.returncode != 0
    assert "unknown chapter ch99_nothing" in out.stderr and "ch01_flops" in out.stderr


def test_bad_parameter_stops_the_chapter_and_leaves_data_alone():
    before = _snapshot()
    out = _book("execute", "ch01_flops", "--profile", "full", "-p", "prefix_tokens", "0")
    assert out.returncode != 0
    assert "prefix_tokens=0" in out.stderr + out.stdout and "positive integers" in out.stderr + out.stdout
    assert _snapshot() == before


def test_one_p_syntax():
    out = _book("execute", "-p", "prefix_tokens=0", "ch01_flops")
    assert out.returncode != 0 and "-p prefix_tokens 968" in out.stderr


# ----------------------------------------------------------------------------- published site sources
import json  # noqa: E402

from pi05perf import book, notebooks  # noqa: E402


def _executed(tmp_path, name, device, date, outputs_text="ok"):
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Title\n\nbody"},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"], "papermill": {"duration": 1}},
         "execution_count": 1, "source": "profile = 'full'", "outputs": []},
        {"cell_type": "code", "metadata": {"execution": {"iopub.status.busy": "x"}}, "execution_count": 2,
         "source": "print()", "outputs": [{"output_type": "stream", "name": "stdout",
                                            "text": f"{outputs_text} {book.ROOT}/lib/x.py"},
                                           {"output_type": "stream", "name": "stderr",
                                            "text": "/opt/venv/lib/torch/x.py:1: UserWarning: w"}]}],
        "metadata": {"papermill": {"input_path": str(book.ROOT / "x"), "parameters": {"profile": "full"}}},
        "nbformat": 4, "nbformat_minor": 5}
    src = tmp_path / f"{name}-{device}.ipynb"
    src.write_text(json.dumps(nb))
    return notebooks.commit_notebook(src, name, device, book_slug(device), commit="abcdef1234", date=date,
                                dest=tmp_path / "notebooks")


def book_slug(device):
    from pi05perf.results import device_slug

    return device_slug(device)


def test_committed_notebook_keeps_outputs_and_drops_paths_and_timing(tmp_path):
    path = _executed(tmp_path, "ch01_flops", "NVIDIA H200", "2026-11-30T03:40:00+00:00")
    assert path == tmp_path / "notebooks" / "nvidia-h200" / "ch01_flops.ipynb"
    text = path.read_text()
    assert str(book.ROOT) not in text and "papermill" not in text and "iopub" not in text
    nb = json.loads(text)
    assert nb["cells"][2]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "ok lib/x.py"}]
    assert nb["metadata"]["pi05perf"]["device"] == "NVIDIA H200"


def test_published_site_takes_the_newest_device_or_report_device(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_DEVICE", raising=False)
    _executed(tmp_path, "ch01_flops", "NVIDIA H100", "2026-11-01T00:00:00+00:00", "h100")
    _executed(tmp_path, "ch01_flops", "NVIDIA H200", "2026-11-30T00:00:00+00:00", "h200")
    _executed(tmp_path, "ch02_roofline", "NVIDIA H100", "2026-11-01T00:00:00+00:00", "h100")
    nbs = tmp_path / "notebooks"
    assert notebooks.report_slug(nbs) == "nvidia-h200"
    pages = book.published_sources(["ch01_flops", "ch02_roofline", "ch03_prefill_breakdown"], nbs, fails={})
    assert "h200" in json.dumps(pages["ch01_flops"])
    assert "h100" in json.dumps(pages["ch02_roofline"])  # the chosen device lacks it: another device's run
    missing = json.dumps(pages["ch03_prefill_breakdown"])
    assert "No committed full-profile run" in missing and "pi05-banner-missing" in missing
    injected = pages["ch01_flops"]["cells"][1]["metadata"]["tags"]
    assert "remove-cell" in injected
    monkeypatch.setenv("REPORT_DEVICE", "nvidia-h100")
    assert "h100" in json.dumps(book.published_sources(["ch01_flops"], nbs, fails={})["ch01_flops"])


def test_tables_of_committed_notebooks_get_todays_cell_classes(tmp_path):
    path = _executed(tmp_path, "ch01_flops", "NVIDIA H200", "2026-11-30T00:00:00+00:00")
    nb = json.loads(path.read_text())
    nb["cells"][2]["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
        "text/html": "<table class='pi05-table'><tr><td>0.205</td><td>a long sentence that may wrap</td></tr></table>"}}]
    path.write_text(json.dumps(nb))
    page = json.dumps(book.published_sources(["ch01_flops"], tmp_path / "notebooks", fails={})["ch01_flops"])
    assert "<td class='pi05-short'>0.205</td>" in page and "<td>a long sentence" in page


def test_a_failed_chapter_shows_its_last_good_run_under_a_banner(tmp_path):
    _executed(tmp_path, "ch01_flops", "NVIDIA H200", "2026-11-30T00:00:00+00:00")
    pages = book.published_sources(["ch01_flops", "ch02_roofline"], tmp_path / "notebooks",
                                   fails={"ch01_flops": "RuntimeError: boom", "ch02_roofline": "KeyError: x"})
    assert "last good run" in json.dumps(pages["ch01_flops"]) and "RuntimeError: boom" in json.dumps(pages["ch01_flops"])
    assert "pi05-banner-failed" in json.dumps(pages["ch02_roofline"])


def test_no_committed_notebooks_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_DEVICE", raising=False)
    assert notebooks.report_slug(tmp_path / "none") is None
    pages = book.published_sources(["intro"], tmp_path / "none", fails={})
    assert pages["intro"]["cells"][0]["source"].startswith("# ")
