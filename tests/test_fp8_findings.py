"""pi05perf.fp8_findings: picking the fastest FP8 variants and chapter 4's texts, on synthetic
variant rows (the GPU-only branches run here too: every row below is "timed")."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from pi05perf import config
from pi05perf import fp8_findings as FF
from pi05perf.report import verdict


def _row(variant, median_ms, hidden_cos=0.9995, kv_cos=0.9995, scope="graph"):
    scheme, coverage = (variant.split("/") + ["none"])[:2] if variant != "base" else ("base", "none")
    return {"variant": f"{variant}/{scope}", "scheme": scheme, "coverage": coverage, "scope": scope,
            "fast_accum": "fast_accum" in variant, "median_ms": median_ms, "p25_ms": median_ms * 0.99,
            "p75_ms": median_ms * 1.01, "n": 10, "method": "events",
            "vs_base_hidden_cos": hidden_cos, "vs_base_kv_cos": kv_cos}


def _var(*rows):
    return pd.DataFrame([_row(*r) if isinstance(r, tuple) else r for r in rows])


def test_fastest_fp8_prefers_accurate_variants_then_falls_back_to_the_fastest():
    var = _var(("base", 10.0), ("fp8_tensor/full", 5.0, 0.99), ("fp8_channel/full", 6.0), ("fp8_channel/mlp", 8.0))
    assert FF.fastest_fp8(var, "full", 0.998).variant == "fp8_channel/full/graph"  # the faster one misses the cosine
    assert FF.fastest_fp8(var, "full", 0.9999).variant == "fp8_tensor/full/graph"  # none meets it: the fastest
    assert FF.fastest_fp8(var, "attn", 0.998) is None
    untimed = _var(("base", 10.0), ("fp8_channel/full", math.nan))
    assert FF.fastest_fp8(untimed, "full", 0.998) is None
    assert FF.first_fp8(untimed, "full").variant == "fp8_channel/full/graph"


@pytest.mark.parametrize("full_ms,met", [(6.0, True), (8.0, False)])
def test_prefill_text_judges_the_target_on_the_timed_rows(full_ms, met):
    var = _var(("base", 10.0), ("fp8_channel/full", full_ms), ("fp8_channel/mlp", 9.0),
               _row("fp8_channel/full", 12.0, scope="eager"))
    base = var.iloc[0]
    mlp, full = FF.fastest_fp8(var, "mlp", 0.998), FF.fastest_fp8(var, "full", 0.998)
    text = FF.prefill_text(var, base, mlp, full, full, dtype=torch.bfloat16, scope="graph", target_ratio=0.7,
                           target_cos=0.998, fp8_floor_ms=2.0, ch03_best=10.0)
    assert f"**{'met' if met else 'not met'}** on this run" in text
    assert f"{full_ms / 10.0:.2f}×" in text and "bfloat16" in text
    assert f"{full_ms / 2.0:.2f}× this device's FP8 floor" in text
    assert ("Not tried here" in text) != met
    assert "Without compiling, fp8_channel/full/eager takes 12.00 ms" in text


def test_prefill_text_without_timings_reports_accuracy_only():
    var = _var(("base", 10.0), ("fp8_channel/full", math.nan, 0.9991, 0.9992))
    acc = FF.first_fp8(var, "full")
    text = FF.prefill_text(var, var.iloc[0], None, None, acc, dtype=torch.float32, scope="eager", target_ratio=0.7,
                           target_cos=0.998, fp8_floor_ms=None, ch03_best=None)
    assert text.startswith("FP8 could not be timed here") and "0.99910" in text and "0.99920" in text
    assert FF.prefill_text(var, None, None, None, None, dtype=torch.float32, scope="eager", target_ratio=0.7,
                           target_cos=0.998, fp8_floor_ms=None, ch03_best=None) == ""


def test_full_coverage_bound_is_the_qkvo_share_at_twice_the_speed():
    share, bound = FF.full_coverage_bound(config.GEMMA_2B, 712)
    assert 0 < share < 1 and bound == pytest.approx(1 / (1 - share / 2))
    assert FF.full_coverage_bound(config.GEMMA_2B, 64)[0] != share  # attention's share moves with the tokens


def test_claims_rows_and_text_follow_the_measurements():
    share, bound = FF.full_coverage_bound(config.GEMMA_2B, 712)
    acc = pd.Series({"vs_base_hidden_cos": 0.999})
    rows = FF.claims_rows(712, 1.05, bound, 1.6, 1.9, acc)
    assert [r["measured"] for r in rows if "measured" in r] == [1.05, 1.6, "0.9990"]
    # NVIDIA's action cosine and this run's hidden-state cosine are different quantities: separate rows,
    # and the quoted ~0.9995 is not rounded up to 1
    cos_rows = [r for r in rows if r["unit"] == "cos"]
    assert len(cos_rows) == 2 and "measured" not in cos_rows[0] and "thor_quoted" not in cos_rows[1]
    assert cos_rows[0]["thor_quoted"].startswith("~") and cos_rows[0]["thor_quoted"] != "~1.000"
    mb = pd.Series({"tokens": 16, "bound": "memory", "measured_speedup_ratio": 1.5, "predicted_speedup_ratio": 1.8})
    text = FF.claims_text(712, share, bound, 1.05, 1.6, mb, "fp8_channel/full/fast_accum", "layer_graph", 1.9)
    assert f"— {verdict('held')}" in text and f"— {verdict('not held')}" in text  # small gain held; memory claim not
    assert "At 16 tokens (memory-bound here" in text and "1.60× faster" in text
    slow = mb.copy()
    slow["measured_speedup_ratio"] = 0.9
    text = FF.claims_text(712, share, bound, bound * 1.2, None, slow, "fp8_channel/full/fast_accum", "eager", 1.9)
    assert "does not realise the halved bytes" in text and "in eager kernels" in text
    assert "only adds" in text and f"— {verdict('not held')}" in text and f"— {verdict('partly held')}" in text
    split = {"variant": "v", "twin": "t", "gemm": (9.0, 6.0), "elementwise": (4.0, 8.0)}
    slow["bf16_ms"], slow["bf16_floor_ms"] = 3.0, 1.0
    text = FF.claims_text(712, share, bound, None, None, slow, "fp8_channel/full/fast_accum", "layer_graph", 1.9,
                          scale_split=split)
    assert "not timed apart from its GEMMs in this test; chapter 7's kernel profile times them apart" in text
    assert "GEMMs 9.00 → 6.00 ms" in text and "bf16 itself takes 3.00× its floor" in text
    text = FF.claims_text(712, share, bound, None, None, None, "fp8_channel/full/fast_accum", "eager", 1.9)
    assert "could not be timed on this device" in text and "nothing could be timed here" in text


def test_memory_bound_text_reports_a_loss_as_no_gain_and_the_distance_to_the_floor():
    assert FF.realised_share(0.82, 2.0) == pytest.approx(-0.18)
    assert FF.realised_share(1.5, 2.0) == pytest.approx(0.5)
    assert math.isnan(FF.realised_share(1.2, 1.0))
    mb = pd.DataFrame([
        {"case": "slow", "measured_speedup_ratio": 0.8, "predicted_speedup_ratio": 2.0, "bf16_ms": 1.8, "bf16_floor_ms": 1.0},
        {"case": "fast", "measured_speedup_ratio": 1.5, "predicted_speedup_ratio": 2.0, "bf16_ms": 6.0, "bf16_floor_ms": 1.0},
        {"case": "untimed", "measured_speedup_ratio": math.nan, "predicted_speedup_ratio": 2.0, "bf16_ms": math.nan,
         "bf16_floor_ms": 1.0}])
    text = FF.memory_bound_text(mb)
    slow, fast = text.split("\n\n")
    assert "FP8 is slower: it takes 1.25× the bf16 time" in slow and "none of the predicted gain" in slow
    assert "% of the predicted gain" not in slow and "1.8× its floor" in slow and "far from" not in slow
    assert "(50% of the predicted gain realised)" in fast and "6.0× its floor" in fast and "far from" in fast
    assert "untimed" not in text and FF.memory_bound_text(mb.iloc[2:]) == ""


def test_fp8_kernel_words_read_the_bare_kernels_at_the_memory_bound_token_counts():
    rows = [{"gemm": g, "tokens": t, "impl": i, "median_ms": ms, "p25_ms": ms, "p75_ms": ms, "weight_gbps": gb}
            for t in (1, 16, 712) for g, i, ms, gb in (
                ("gate_up", "bf16", 0.046, 2900), ("gate_up", FF.FP8_KERNEL, 0.032 if t < 712 else 0.1, 2000),
                ("down", "bf16", 0.029, 2300), ("down", FF.FP8_KERNEL, 0.044, 760), ("down", "int4wo", 0.02, 900))]
    sweep = pd.DataFrame(rows)
    text = FF.fp8_kernel_words(sweep, 16, 0.77)
    assert "at 1–16 tokens" in text and "gate_up 32.0 µs against bf16's 46.0 µs (0.70×)" in text
    assert "down 44.0 µs against bf16's 29.0 µs (1.52×, 760 GB/s" in text
    assert f"together {(0.032 + 0.044) / (0.046 + 0.029):.2f}× bf16's time" in text and "does not realise" in text
    assert "0.77× cuBLAS bf16's time" in text
    assert "712" not in text and FF.fp8_kernel_words(sweep, 16) .endswith("in the way.")
    assert FF.fp8_kernel_words(None, 16) is None and FF.fp8_kernel_words(sweep, None) is None
    mb = pd.Series({"tokens": 16, "bound": "memory", "measured_speedup_ratio": 0.9, "predicted_speedup_ratio": 1.8})
    share, bound = FF.full_coverage_bound(config.GEMMA_2B, 712)
    verdict_text = FF.claims_text(712, share, bound, None, None, mb, "fp8_channel/full/fast_accum", "layer_graph", 1.9,
                                  kernels=text)
    assert "Chapter 5 times an FP8 GEMM of the same family alone" in verdict_text
    assert "default accumulation" in text and "chapter 4's path uses fast accumulation" not in text
    named = FF.fp8_kernel_words(sweep, 16, variant="fp8_channel/full/fast_accum", source="chapter 5 at commit abc1234")
    assert "where chapter 4's path uses fast accumulation" in named and "chapter 5 at commit abc1234" in named
    fast = sweep.assign(median_ms=[ms / 4 if i == FF.FP8_KERNEL else ms for i, ms in zip(sweep.impl, sweep.median_ms)])
    assert "realises all of the halved bytes" in FF.fp8_kernel_words(fast, 16)


def test_chapter_4_names_the_commit_of_chapter_5s_kernels_when_it_is_another_runs(monkeypatch):
    from pi05perf import results

    rows = [{"table": "sweep", "gemm": "down", "tokens": 16, "impl": i, "median_ms": ms, "p25_ms": ms, "p75_ms": ms,
             "weight_gbps": 1000.0}
            for i, ms in (("bf16", 0.03), (FF.FP8_KERNEL, 0.04))]
    doc = {"chapter": "ch05_int4_fp4", "slug": "gpu", "source": "committed", "rows": rows,
           "provenance": {"git_commit": "abc1234def"}, "headline": {}}
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [doc] if chapter in (None, "ch05_int4_fp4") else [])
    monkeypatch.setattr(results, "git_commit", lambda: "9999999fff")
    assert "from an earlier run: chapter 5 at commit abc1234, not this run" in FF.committed_kernel_evidence("gpu", 16)
    monkeypatch.setattr(results, "git_commit", lambda: "abc1234def")
    assert "at this commit" in FF.committed_kernel_evidence("gpu", 16)
    assert FF.memory_bound_tokens(pd.DataFrame([{"case": "prefill", "bound": "memory", "tokens": 64},
                                               {"case": "prefill", "bound": "compute", "tokens": 712}])) == 64
