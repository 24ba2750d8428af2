"""Ceilings: the best candidate wins, one run measures once, chapters read this run's chapter 2."""
import datetime as dt
import json
import math

import pytest
import torch

from pi05perf import ceilings, params, results
from pi05perf.timing import Timing

T = Timing(1.0, 0.9, 1.1, 5, "test")


def _c(value, error=""):
    return ceilings.Ceiling("bfloat16 matmul", value, "TFLOP/s", T if not error else None, "s", "cuBLAS", error)


def test_best_takes_the_highest_and_never_a_failed_candidate():
    assert ceilings.best([_c(600.0), _c(820.0), _c(700.0)]).value == 820.0
    assert ceilings.best([_c(600.0), _c(math.nan, "timed out"), _c(900.0, "check failed")]).value == 600.0
    assert ceilings.best([_c(math.nan, "boom")]) is None


def test_spec_known_for_sxm_parts_only():
    assert ceilings.spec_for("NVIDIA H200")["copy_gbps"] == 4800.0
    assert ceilings.spec_for("NVIDIA H100 80GB HBM3")["bf16_tflops"] == 989.0
    assert ceilings.spec_for("NVIDIA H100 PCIe") is None and ceilings.spec_for("cpu") is None


def test_measure_on_cpu_marks_the_best_of_each_and_headline_carries_it():
    run = params.resolve("ch02_roofline", repeats=1)
    m = ceilings.measure(run, log=lambda *_: None)
    table = m.table()
    mm = table[table.unit == "TFLOP/s"]
    assert len(mm) >= 2 and m.matmul.value == mm.value.max()
    assert (table.used.str.startswith("best")).sum() == 2  # copy + matmul; no fp8 on a CPU
    head = ceilings.headline({"copy_gbps": m.copy.value, "matmul_bf16_tflops": m.matmul.value})
    assert head == {"floor_peak_bf16_tflops": m.matmul.value, "floor_copy_gbps": m.copy.value}


def test_inductor_candidate_over_its_time_budget_is_recorded_not_raised():
    c = ceilings.inductor_matmul_rate((64, 64, 64), 1, timeout_s=0.05)
    assert math.isnan(c.value) and c.error


def _ch02(base, commit, date, headline, slug="cpu", profile="smoke"):
    path = base / slug / "ch02_roofline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": {"git_commit": commit, "date": date, "profile": profile},
                                "headline": headline, "rows": []}))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "DATA_RESULTS", tmp_path / "data")
    monkeypatch.setattr(results, "BUILD_RESULTS", tmp_path / "build")
    monkeypatch.setattr(results, "ROOT", tmp_path)
    monkeypatch.setattr(results, "git_commit", lambda: "this-commit")
    return tmp_path


def test_for_run_reads_this_runs_chapter_2(store, monkeypatch):
    now = dt.datetime.now(dt.timezone.utc)
    recent, old = now.isoformat(timespec="seconds"), (now - dt.timedelta(days=3)).isoformat(timespec="seconds")
    # a CPU smoke run of this commit stores its float32 peak under the dtype-neutral key only
    _ch02(store / "build", "this-commit", recent, {"copy_gbps": 11.0, "matmul_peak_tflops": 0.5,
                                                   "matmul_bf16_tflops": None})
    _ch02(store / "data", "older-commit", recent, {"copy_gbps": 99.0, "matmul_bf16_tflops": 99.0})
    monkeypatch.setattr(ceilings, "measure_once", lambda *a, **k: pytest.fail("should not measure"))
    ceil = ceilings.for_run(params.resolve("ch03_prefill_breakdown"), log=lambda *_: None)
    assert (ceil["copy_gbps"], ceil["matmul_bf16_tflops"], ceil["source"]) == (11.0, 0.5, "chapter 2")
    # the same commit, but days old: an earlier run, not this one
    _ch02(store / "build", "this-commit", old, {"copy_gbps": 11.0, "matmul_peak_tflops": 0.5})
    monkeypatch.setattr(ceilings, "measure_once", lambda *a, **k: ({"copy_gbps": 1.0, "matmul_bf16_tflops": 2.0,
                                                                   "source": "measured in this run"}, None))
    assert ceilings.for_run(params.resolve("ch03_prefill_breakdown"), log=lambda *_: None)["copy_gbps"] == 1.0


def test_measure_once_measures_once_per_run(store, monkeypatch):
    calls = []
    real = ceilings.measure

    def counting(run, log=print):
        calls.append(run.chapter)
        return real(run, log)

    monkeypatch.setattr(ceilings, "measure", counting)
    first, table = ceilings.measure_once(params.resolve("ch01_flops", repeats=1), log=lambda *_: None)
    second, again = ceilings.measure_once(params.resolve("ch02_roofline", repeats=1), log=lambda *_: None)
    assert calls == ["ch01_flops"] and first == second and len(table) == len(again)
    monkeypatch.setattr(results, "git_commit", lambda: "next-commit")
    ceilings.measure_once(params.resolve("ch02_roofline", repeats=1), log=lambda *_: None)
    assert calls == ["ch01_flops", "ch02_roofline"]


def test_ceiling_table_says_which_clock_read_each_candidate():
    from pi05perf.timing import quartiles

    kernels = quartiles([1.0, 1.1], "kernel durations (profiler) of a cuda-graph replay of 8 calls on distinct operand copies")
    graphed = quartiles([1.0, 1.1], "cuda-graph replay of 8 calls on distinct operand copies, events")
    assert ceilings.timed_by(kernels) == "kernel durations"
    assert ceilings.timed_by(graphed) == "graphed calls, events"
    assert ceilings.timed_by(quartiles([1.0], "cuda events, L2 flushed")) == "events"
    assert ceilings.timed_by(quartiles([1.0], "cpu wall clock")) == "cpu wall clock"
    assert ceilings.timed_by(None) == "–"


def test_time_per_call_refuses_an_unknown_clock():
    from pi05perf.kernels import time_per_call

    with pytest.raises(ValueError, match="clock"):
        time_per_call([lambda: None], "cpu", 3, clock="wall")


def test_cublas_product_is_torch_matmul_for_16_and_32_bit_operands():
    for dtype in (torch.float32, torch.bfloat16):
        assert ceilings.cublas_product(dtype, "cpu") is torch.matmul


@pytest.mark.parametrize("fast_accum", [False, True])
def test_cublas_product_fp8_is_a_unit_scaled_product_in_bf16(fast_accum):
    mm = ceilings.cublas_product(torch.float8_e4m3fn, "cpu", fast_accum)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g).to(torch.float8_e4m3fn)
    b = torch.randn(24, 32, generator=g).to(torch.float8_e4m3fn).t()  # column-major, as cuBLASLt wants
    try:
        out = mm(a, b)
    except (RuntimeError, NotImplementedError) as e:  # a torch build without the CPU kernel
        pytest.skip(f"torch._scaled_mm does not run on this CPU: {e}")
    assert out.dtype == torch.bfloat16 and out.shape == (16, 24)
    ref = a.double() @ b.double()
    assert torch.allclose(out.double(), ref, rtol=1e-2, atol=1e-1)


def test_thor_comparison_sets_thors_quoted_figures_beside_this_device():
    from pi05perf import config, reference

    here = config.Hardware("GPU (measured)", 3000.0, 700.0, None, "test")
    rows = {r["quantity"]: r for r in ceilings.thor_comparison(here, 12.5)}
    copy, peak = rows["copy bandwidth (read + write)"], rows["dense bf16 matmul peak"]
    assert copy["measured"] == 3000.0 and copy["thor_quoted"] == reference.quoted("hw_avg_bandwidth_gbps")
    assert peak["measured"] == 700.0 and peak["thor_quoted"] == reference.quoted("thor_bf16_dense_tflops")
    prefill = rows["18-layer prefill at 712 tokens"]
    assert prefill["floor"] == 12.5 and prefill["measured"] is None
    assert rows["the seed's floor (weights / bandwidth)"]["thor_quoted"] == reference.quoted("weight_read_floor_ms")
