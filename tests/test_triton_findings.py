"""Chapter 6's reading of the Triton-vs-cuBLAS tables, on hand-made tables (no GPU needed)."""
import math

import pandas as pd
import torch

from pi05perf import triton_findings, triton_matmul as TM

CONFIG = {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "num_stages": 3, "num_warps": 8}


def _timings(ratios: dict[str, float], dtype: str = "bfloat16", sms: int = 132) -> pd.DataFrame:
    """Rows as `triton_vs_cublas` writes them: cuBLAS at 1 ms, Triton at `ratio` ms, per gemm."""
    rows = []
    for gemm, ratio in ratios.items():
        for impl, ms, cfg in (("cuBLAS", 1.0, {}), ("Triton", ratio, CONFIG)):
            rows.append({"gemm": gemm, "M": 712, "N": 2048, "K": 16384, "dtype": dtype, "impl": impl, "median_ms": ms,
                         **{f: cfg.get(f, math.nan) for f in CONFIG}, "tiles_count": TM.tiles(cfg, 712, 2048),
                         "sm_count": sms, "autotune_s": 2.0 if impl == "Triton" else 0.0})
    return pd.DataFrame(rows)


def test_autotune_choices_tabulates_the_chosen_tiles_and_times_the_square(monkeypatch):
    seen = {}

    def fake_bench(shapes, device, repeats, dtypes):
        seen.update(shapes=shapes, dtypes=dtypes)
        return None, _timings({next(iter(shapes)): 1.3})

    monkeypatch.setattr(TM, "triton_vs_cublas", fake_bench)
    timings = _timings({"down_proj": 1.5, "o_proj": 1.1})
    per_shape, main_loop, square = triton_findings.autotune_choices(
        timings, "cpu", 1, ["bfloat16"], {"bfloat16": torch.bfloat16}, full=False)
    assert square == "256³" and seen["shapes"] == {"256³": (256, 256, 256)} and seen["dtypes"] == [torch.bfloat16]
    assert main_loop == {"bfloat16": 1.3}
    row = per_shape.set_index("gemm").loc["down_proj"]
    assert row.chosen == "128×256×64, 3 stages, 8 warps" and row.triton_vs_cublas_ratio == 1.5
    assert row.tiles_count == 6 * 8 and 0 < row.grid_efficiency_pct < 100


def test_autotune_text_judges_the_target_on_the_large_gemms_only():
    timings = _timings({"gate_up_proj (fused)": 1.1, "down_proj": 1.1, "o_proj": 1.6})
    per_shape = pd.DataFrame({"gemm": ["gate_up_proj (fused)", "down_proj", "o_proj"], "dtype": "bfloat16",
                              "tiles_count": [400, 48, 48], "sm_count": 132, "triton_vs_cublas_ratio": [1.1, 1.1, 1.6]})
    text = triton_findings.autotune_text(timings, per_shape, {"bfloat16": 1.05}, "256³", 1.15,
                                         ["gate_up_proj (fused)", "down_proj"])
    assert "**The target is met**" in text and "Triton takes 1.10× cuBLAS's time" in text
    assert "2 of 3 pairs are within 1.15×" in text and "over it: o_proj bfloat16 (1.60×)" in text
    assert "fewer tiles than the GPU has SMs (down_proj bfloat16: 48, o_proj bfloat16: 48)" in text
    assert "took 6 s of wall time" in text
    slow = triton_findings.autotune_text(timings, per_shape.assign(triton_vs_cublas_ratio=1.3), {}, "256³", 1.15,
                                         ["o_proj", "down_proj"])
    assert "**The target is not met**" in slow
    assert "not both timed" in triton_findings.autotune_text(timings, per_shape, {}, "256³", 1.15, ["qkv_proj (fused)"])


def test_seed_rows_put_the_seeds_speed_as_a_time_ratio_beside_each_dtype():
    rows = triton_findings.seed_rows({"bfloat16": 1.2, "float8_e4m3fn": None}, 0.5, 2.0, 4.0)
    assert [r["measured"] for r in rows] == [1.2]  # untimed dtypes have no all-dash row
    both = triton_findings.seed_rows({"bfloat16": None, "float8_e4m3fn": 0.9, "float16": 1.1}, 0.5, 2.0, 4.0)
    assert [r["measured"] for r in both] == [None, 0.9, 1.1]  # the quoted row stays, untimed here
    assert rows[0]["thor_quoted"] == 2.0 and "(4.0 ms / 2.0 ms)" in rows[0]["thor_source"]


def test_seed_contrast_reads_the_per_shape_spread_only_when_bf16_was_timed():
    timings = _timings({"o_proj": 1.5, "down_proj": 1.1})
    lines = triton_findings.seed_contrast(timings, 1.3, 0.5, 2.0, "GPU X", "3.4", "cpu", False, 2048)
    assert len(lines) == 2 and "takes **1.30×** the cuBLAS time" in lines[0]
    assert "from 1.10× on down_proj to 1.50× on o_proj" in lines[0] and "is 2.00× the *time*" in lines[0]
    assert "this run has no GPU" in lines[1] and "N = 2048 projections" in lines[1]
    untimed = triton_findings.seed_contrast(None, None, 0.5, 2.0, "cpu", None, "cpu", False, 2048)
    assert len(untimed) == 1 and untimed[0] == lines[1]
