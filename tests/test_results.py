"""The results store: provenance, unit-suffixed keys, atomic writes, smoke runs kept out of data/."""
import json

import pytest

from pi05perf import results
from pi05perf.params import resolve


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "DATA_RESULTS", tmp_path / "data")
    monkeypatch.setattr(results, "BUILD_RESULTS", tmp_path / "build")
    monkeypatch.setenv("PI05PERF_ALLOW_FULL_ON_CPU", "1")  # a "full" run without a GPU, for the store only
    monkeypatch.delenv("REPORT_DEVICE", raising=False)
    return tmp_path


def test_slug():
    assert results.device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert results.device_slug("cpu") == "cpu"


def test_full_run_writes_data_with_provenance(store):
    run = resolve("ch01_flops", profile="full", device="cpu", prefix_tokens=712)
    path = results.save(run, {"prefill712_flops": 2.9e12, "copy_gbps": 10.0}, [{"op": "q", "flops": 1}])
    assert path == store / "data" / "cpu" / "ch01_flops.json"
    doc = json.loads(path.read_text())
    prov = doc["provenance"]
    for key in ("device", "torch", "git_commit", "date", "profile", "parameters"):
        assert key in prov
    assert prov["parameters"]["prefix_tokens"] == 712 and prov["profile"] == "full"
    assert doc["headline"]["copy_gbps"] == 10.0 and doc["rows"] == [{"op": "q", "flops": 1}]
    assert not list(path.parent.glob("*.tmp"))


def test_smoke_run_never_touches_data(store):
    run = resolve("ch01_flops", profile="smoke", device="cpu")
    path = results.save(run, {"x_ms": 1.0})
    assert path.is_relative_to(store / "build") and not (store / "data").exists()


def test_key_without_unit_refused(store):
    run = resolve("ch01_flops", profile="full", device="cpu")
    with pytest.raises(ValueError, match="unit"):
        results.save(run, {"prefill": 1.0})
    assert not (store / "data").exists()


def test_headlines_merge_committed_and_this_build(store):
    results.save(resolve("ch01_flops", profile="full", device="cpu"), {"a_ms": 1.0})
    results.save(resolve("ch01_flops", profile="smoke", device="cpu"), {"a_ms": 2.0})
    df = results.headlines()
    assert sorted(df.source) == ["committed", "this build"]
    assert results.measured("ch01_flops", "a_ms") == 1.0


def test_tokens_and_count_are_units(store):
    run = resolve("ch01_flops", profile="full", device="cpu")
    path = results.save(run, {"fp8_memory_bound_tokens": 1, "thor_anchors_count": 5})
    assert json.loads(path.read_text())["headline"]["thor_anchors_count"] == 5


def test_named_tables_round_trip_beside_rows(store):
    import pandas as pd

    run = resolve("ch01_flops", profile="full", device="cpu")
    sweep = pd.DataFrame({"tokens": [1, 712], "median_ms": [0.5, float("nan")]})
    results.save(run, {"a_ms": 1.0}, rows=[{"x": 1}], tables={"sweep": sweep})
    back = results.table("ch01_flops", "sweep", "cpu")
    assert list(back.tokens) == [1, 712] and back.median_ms.isna().tolist() == [False, True]
    assert results.table("ch01_flops", "absent", "cpu") is None
    assert results.load_all("ch01_flops")[0]["rows"] == [{"x": 1}]


def test_a_run_table_reads_named_tables_and_legacy_rows():
    assert results.run_table(None, "latency") is None
    assert results.run_table({"rows": [{"table": "a", "x": 1}, {"table": "b", "x": 2}]}, "b").x.tolist() == [2]
    assert results.run_table({"tables": {"b": [{"x": 3}]}, "rows": []}, "b").x.tolist() == [3]


def test_report_device_is_the_newest_unless_asked(store, monkeypatch):
    import datetime as dt

    for slug, day in (("old-gpu", "2026-01-01"), ("new-gpu", "2026-06-01")):
        monkeypatch.setattr(results, "device_name", lambda d, s=slug: s)
        monkeypatch.setattr(results._dt, "datetime", type("D", (dt.datetime,), {
            "now": classmethod(lambda cls, tz=None, d=day: dt.datetime.fromisoformat(d + "T00:00:00+00:00"))}))
        results.save(resolve("ch01_flops", profile="full", device="cpu"), {"a_ms": 1.0})
    assert [d["slug"] for d in results.devices()] == ["new-gpu", "old-gpu"]
    assert results.report_device() == "new-gpu"
    monkeypatch.setenv("REPORT_DEVICE", "old-gpu")
    assert results.report_device() == "old-gpu"


def test_a_devices_commit_is_the_one_most_chapters_ran_at(store, monkeypatch):
    monkeypatch.setattr(results, "device_name", lambda d: "gpu")
    for chapter, commit in (("ch01_flops", "aaaaaaa1"), ("ch02_roofline", "aaaaaaa1"), ("ch03_prefill_breakdown", "bbbbbbb2")):
        monkeypatch.setenv("PI05PERF_GIT_COMMIT", commit)
        results.save(resolve(chapter, profile="full", device="cpu"), {"a_ms": 1.0})
    (dev,) = results.devices()
    assert dev["commit"] == "aaaaaaa"
    assert dev["commits"] == {"aaaaaaa": ["ch01_flops", "ch02_roofline"], "bbbbbbb": ["ch03_prefill_breakdown"]}


def test_git_commit_named_by_the_environment_wins_over_git(monkeypatch):
    # a copy of the tree on a GPU server can carry a stale .git: the commit given by the run wins
    monkeypatch.setenv("PI05PERF_GIT_COMMIT", "0123abc")
    assert results.git_commit() == "0123abc"
    assert results.git_dirty() is None
    monkeypatch.delenv("PI05PERF_GIT_COMMIT")
    assert results.git_commit() != "0123abc"
