"""pi05perf.lowbit_findings: chapter 5's fault and verdict texts on synthetic tables (including
the branches a CPU smoke run never reaches: a whole-prefill speed-up and a Triton kernel ratio)."""
from __future__ import annotations

import pandas as pd
import pytest

from pi05perf import lowbit_findings as LF
from pi05perf.report import verdict


def _levels():
    rows = [("int4, correct", 0.999, 1.0, 0.998, 1.0, 0.99),
            ("int4, scales dropped", 0.95, 80.0, 0.9, 6e3, 0.02),
            ("int4, nibble order swapped", 0.01, 1.02, -0.03, 0.98, 0.6),
            ("nvfp4, E2M1 codes read as int4", 0.4, 3.0, 0.3, 9.0, 0.8),
            ("nvfp4, block scales transposed", 0.97, 1.1, 0.95, 1.2, 0.97)]
    return pd.DataFrame(rows, columns=["fault", "layer_cos", "layer_norm_ratio", "mlp_cos", "mlp_norm_ratio", "model_cos"])


def test_fault_levels_text_names_the_layout_faults_and_the_weights_time():
    thor_nvfp4 = pd.Series({"weight_gb": 1.5, "memory_ms": 6.0})
    text = LF.fault_levels_text(_levels(), 712, thor_nvfp4, 300.0)
    assert "At one layer, only layout faults do:\nint4, nibble order swapped (" in text
    assert "take at least 5.00 ms to read at Thor's quoted\n300 GB/s (6.00 ms" in text
    assert "is **+0.010**" in text  # the lowest layer cosine
    assert "magnitude (norm ratio 80" in text


def test_seed_runs_are_split_by_the_whole_prefill_floor():
    from pi05perf.reference import quoted

    runs = {n: quoted(f"{k}_ms") for n, k in LF.SEED_FP4_RUNS}
    cut = sorted(runs.values())[1]  # the fastest run below the floor, the other two at or above it
    short, whole = LF.seed_fp4_runs(cut)
    assert [n for n, _ in short] == [min(runs, key=runs.get)] and len(whole) == 2
    text = LF.seed_levels_text(cut)
    assert "faster than a whole NVFP4 prefill can be" in text and "they may have been whole prefills" in text
    text = LF.seed_levels_text(0.0)  # every run long enough: no run is said to be a layer or an MLP
    assert "something smaller" not in text and "dropped scales" in text
    assert "took longer than that" not in LF.seed_levels_text(1e9)


def test_fault_levels_text_restricts_the_layer_reading_to_the_fast_run():
    from pi05perf.reference import quoted

    fast = min(quoted(f"{k}_ms") for _, k in LF.SEED_FP4_RUNS)
    thor_nvfp4 = pd.Series({"weight_gb": 1.5, "memory_ms": fast * 2})
    text = LF.fault_levels_text(_levels(), 712, thor_nvfp4, 300.0)
    assert "took longer than that floor" in text and "do not rule out a whole prefill" in text
    assert LF.seed_levels_text(fast * 2) in text


def test_int4_claims_rows_keep_the_eager_prefill_out_and_put_speed_as_the_inverse_of_time():
    i4 = pd.Series({"vs_base_hidden_cos": 0.995})
    rows = LF.int4_claims_rows(712, 712, 1.25, 712, 4.0, 2.0, 1.1, 1.05, i4, None)
    measured = {r["quantity"]: r.get("measured") for r in rows}
    assert measured["INT4 weight-only speedup over bf16, 712-token prefill"] is None  # eager: host overhead
    assert measured["same, one MLP's matmuls (712 tokens), tinygemm (decode kernel)"] == pytest.approx(0.8)
    assert measured["same, one MLP's matmuls (712 tokens), Triton W4A16 (prefill kernel)"] == pytest.approx(0.25)
    assert measured["INT4 cosine to bf16, with scales, final hidden state, random weights"] == 0.995
    # NVIDIA's action cosine is another quantity: its own row, quoted only, approximate
    nv = next(r for r in rows if r["quantity"].startswith("FP8+NVFP4 cosine"))
    assert "measured" not in nv and nv["thor_quoted"].startswith("~")
    assert measured["4-bit cosine to bf16, scales ignored"] is None
    assert "host overhead" in LF.INT4_ROWS_NOTE
    assert LF.int4_claims_rows(712, 64, None, 64, None, None, 1.1, 1.05, None, None)[1]["measured"] is None


def test_int4_claims_text_rests_on_the_kernels_not_the_eager_prefill():
    text = LF.int4_claims_text(712, 712, 1.1, 1.25, 0.9, 2.0, True, 0.991, "GPU X", "0.10", 4.0)
    assert f"— {verdict('not held')}" in text and f"— {verdict('partly held')}" in text
    assert "kernel by kernel, one MLP's matmuls run at 0.80×" in text and "the whole prefill runs at" not in text
    assert "W4A16 kernel (Triton) at 1.11× the speed" in text and "timed only eagerly: host overhead" in text
    assert LF.seed_levels_text(4.0) in text
    assert "cos\n0.991 or better" in text and "on GPU X the bare kernel" in text
    assert "see the torchao table (uncompiled: host overhead" in text
    text = LF.int4_claims_text(712, 64, 1.1, None, None, None, False, 0.991, "cpu", None, 4.0)
    assert "1.10×. (The whole" in text and "not reproduced here" in text and "not re-run (torchao absent)" in text
