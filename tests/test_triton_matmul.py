"""pi05perf.triton_matmul on CPU: the search space, the input checks, the ratio bookkeeping of
the chapter 6 benchmark, and the kernel itself under Triton's interpreter where triton is
installed (a subprocess: TRITON_INTERPRET must be set before the kernel is defined)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from pi05perf import triton_matmul as TM

from _interpret import run_interpreted
HOPPER_SMEM_BYTES = 227 * 1024  # the most shared memory one block may use on sm_90

_SCRIPT = r"""
import json, torch
from pi05perf import triton_matmul as TM
out = []
for dtype in (torch.bfloat16, torch.float16, torch.float8_e4m3fn):
    for cfg in (dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=32, GROUP_M=4), dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=16, GROUP_M=2)):
        # K = 128 divides both BLOCK_K (unmasked loads), K = 70 neither; M, N not multiples of the tiles
        df = TM.check_triton_matmul([(64, 96, 128), (37, 50, 70)], dtype, device="cpu", config=cfg)
        out += df[["M", "N", "K", "dtype", "b_layout", "rel_err", "ok", "error"]].to_dict("records")
print("RESULT" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def interpreted():
    return pd.DataFrame(run_interpreted(_SCRIPT, skip_reason="triton is not installed: the kernel cannot run here"))


def test_kernel_matches_float32_in_every_dtype_layout_and_tail(interpreted):
    assert set(interpreted.dtype) == {"bfloat16", "float16", "float8_e4m3fn"}
    assert set(interpreted.b_layout) == {"row-major b", "column-major b"}
    assert interpreted.error.isna().all(), interpreted.error.dropna().tolist()
    assert interpreted.ok.all(), interpreted.to_string()


def test_search_space_is_valid_and_fits_hopper_shared_memory():
    for fp8 in (False, True):
        cfgs = TM.autotune_configs(fp8)
        assert 6 <= len(cfgs) <= 12  # every config is a compile and a benchmark per shape
        for c in cfgs:
            assert set(c) == {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_stages", "num_warps"}
            assert all(c[k] >= 16 and c[k] & (c[k] - 1) == 0 for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
            stage = (c["BLOCK_M"] + c["BLOCK_N"]) * c["BLOCK_K"] * (1 if fp8 else 2)
            assert stage * c["num_stages"] <= HOPPER_SMEM_BYTES, c
        assert len({tuple(sorted(c.items())) for c in cfgs}) == len(cfgs)  # no duplicate compiles


def test_search_space_holds_the_large_hopper_tiles():
    big = {(c["BLOCK_M"], c["BLOCK_N"]) for c in TM.autotune_configs() if c["num_warps"] == 8}
    assert {(128, 256), (256, 128), (128, 128)} <= big


def test_rejects_bad_input_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a = torch.randn(4, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError):
        TM.triton_matmul(a, torch.randn(9, 4, dtype=torch.bfloat16))
    with pytest.raises(TypeError):
        TM.triton_matmul(a.float(), torch.randn(8, 4))
    with pytest.raises(TypeError):
        TM.triton_matmul(a, torch.randn(8, 4, dtype=torch.float16))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):  # CPU tensors, not interpreting
            TM.triton_matmul(a, torch.randn(8, 4, dtype=torch.bfloat16))


def test_benchmark_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert TM.triton_available() is False
    with pytest.raises(RuntimeError):
        TM.triton_vs_cublas({"x": (32, 32, 32)}, "cpu", 1)


def test_ratio_sums_the_shapes_both_timed():
    t = pd.DataFrame([{"gemm": "a", "dtype": "bfloat16", "impl": "Triton", "median_ms": 3.0},
                      {"gemm": "a", "dtype": "bfloat16", "impl": "cuBLAS", "median_ms": 2.0},
                      {"gemm": "b", "dtype": "bfloat16", "impl": "Triton", "median_ms": 1.0},
                      {"gemm": "b", "dtype": "bfloat16", "impl": "cuBLAS", "median_ms": 2.0}])
    assert TM.triton_ratio(t, "bfloat16") == pytest.approx(1.0)
    assert TM.triton_ratio(t, "float8_e4m3fn") is None
    assert TM.triton_ratio(None, "bfloat16") is None
    # a shape only cuBLAS timed is left out of both sums
    extra = pd.concat([t, pd.DataFrame([{"gemm": "c", "dtype": "bfloat16", "impl": "cuBLAS", "median_ms": 50.0}])])
    assert TM.triton_ratio(extra, "bfloat16") == pytest.approx(1.0)


def test_tiles_counts_partial_tiles():
    cfg = {"BLOCK_M": 128, "BLOCK_N": 256}
    assert TM.tiles(cfg, 712, 2048) == 6 * 8
    assert TM.tiles(cfg, 128, 256) == 1
    assert TM.tiles(None, 712, 2048) is None
    assert math.ceil(712 / 64) * math.ceil(2048 / 128) == TM.tiles({"BLOCK_M": 64, "BLOCK_N": 128}, 712, 2048)


def test_timings_launched_from_python_are_told_from_graphed_ones():
    eager = pd.DataFrame({"method": ["cuda events, L2 flushed"] * 2})
    graphed = pd.DataFrame({"method": ["cuda-graph replay of 8 calls on distinct operand copies, events"] * 2})
    assert TM.launched_from_python(eager) and not TM.launched_from_python(graphed)
    assert TM.launched_from_python(pd.concat([eager.iloc[:1], graphed.iloc[:1]]))  # any eager row taints the ratio
    assert not TM.launched_from_python(None) and not TM.launched_from_python(pd.DataFrame())


def test_grid_efficiency_counts_padding_and_the_last_wave():
    cfg = {"BLOCK_M": 128, "BLOCK_N": 256}
    # 712 rows pad to 768; 6 x 8 = 48 tiles fill one wave of 48 SMs exactly
    assert TM.grid_efficiency(cfg, 712, 2048, 48) == pytest.approx(712 / 768)
    # the same 48 tiles on 132 SMs: one wave, 84 SMs idle
    assert TM.grid_efficiency(cfg, 712, 2048, 132) == pytest.approx(712 * 2048 / (132 * 128 * 256))
    assert TM.grid_efficiency({"BLOCK_M": 128, "BLOCK_N": 128}, 1024, 1024, 64) == 1.0
    assert TM.grid_efficiency(None, 712, 2048, 132) is None


def test_limit_text_tells_the_main_loop_from_the_grid():
    per_shape = pd.DataFrame([{"gemm": "gate_up", "dtype": "bfloat16", "triton_vs_cublas_ratio": 1.21},
                              {"gemm": "qkv", "dtype": "bfloat16", "triton_vs_cublas_ratio": 1.05},
                              {"gemm": "down", "dtype": "float8_e4m3fn", "triton_vs_cublas_ratio": 1.3}])
    text = TM.limit_text(per_shape, {"bfloat16": 1.18, "float8_e4m3fn": 1.02}, 1.15, "8192³")
    bf16, fp8 = text.split("float8_e4m3fn:")
    assert "gate_up (1.21×)" in bf16 and "qkv" not in bf16 and "main loop alone is over" in bf16
    assert "down (1.30×)" in fp8 and "excess at these shapes is the grid's" in fp8
    assert "not told apart" in TM.limit_text(per_shape, {}, 1.15, "8192³")
    assert TM.limit_text(per_shape, {}, 1.5, "8192³").startswith("Every pair is within")
