"""pi05perf.kernels on CPU: the split-K GEMV and the split-KV attention.

The kernels themselves run under Triton's interpreter (TRITON_INTERPRET=1, CPU tensors) where
triton is installed; they run in one subprocess, since the variable must be set before the
kernels are defined at import. Without triton those tests skip; the references, the FP8
packing, the bookkeeping and the input checks are tested either way."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pi05perf import kernels
from pi05perf.kernels import decode_attention as DA
from pi05perf.kernels import gemv_splitk as GS

from _interpret import HAS_TRITON, run_interpreted

# (M, N, K, config): split 1 and several; N and K that no block divides; 1, 10 and 17 rows
GEMV_CASES = [
    (10, 96, 160, {"BLOCK_N": 32, "BLOCK_K": 32, "SPLIT_K": 1}),
    (10, 96, 160, {"BLOCK_N": 32, "BLOCK_K": 32, "SPLIT_K": 3}),
    (1, 40, 70, {"BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": 4}),
    (17, 64, 128, {"BLOCK_N": 64, "BLOCK_K": 32, "SPLIT_K": 2}),
]
# (rows, keys, head_dim, config): several slices, a cache shorter than one block, rows not a multiple of 16
ATTN_CASES = [
    (80, 100, 64, {"BLOCK_Q": 16, "BLOCK_KV": 32, "KV_PER_SPLIT": 32}),
    (80, 100, 64, {"BLOCK_Q": 32, "BLOCK_KV": 16, "KV_PER_SPLIT": 64}),
    (20, 5, 32, {"BLOCK_Q": 16, "BLOCK_KV": 16, "KV_PER_SPLIT": 16}),
    (24, 61, 16, {"BLOCK_Q": 16, "BLOCK_KV": 16, "KV_PER_SPLIT": 48}),
]
# (rows, prefix keys, own keys, head_dim, config): the prefix cache and the step's own keys as two sources
ATTN2_CASES = [
    (80, 100, 10, 64, {"BLOCK_Q": 16, "BLOCK_KV": 32, "KV_PER_SPLIT": 32}),
    (20, 5, 1, 32, {"BLOCK_Q": 16, "BLOCK_KV": 16, "KV_PER_SPLIT": 16}),
    (24, 61, 40, 16, {"BLOCK_Q": 16, "BLOCK_KV": 16, "KV_PER_SPLIT": 32}),
]

_SCRIPT = r"""
import json, sys, torch
from pi05perf.kernels import decode_attention as DA, gemv_splitk as GS
cases = json.loads(sys.argv[1])
out = {"gemv": [], "attn": [], "counters_zero": None, "shape_dtype": None}
for M, N, K, cfg in cases["gemv"]:
    for w in ("bfloat16", "float8_e4m3fn"):
        out["gemv"].append(GS.check([(M, N, K)], "cpu", weights=(w,), config=cfg).iloc[0].to_dict())
    out["gemv"].append(GS.check([(M, N, K)], "cpu", weights=("float16",), config=cfg, act_dtype=torch.float16).iloc[0].to_dict())
out["counters_zero"] = all(int(c.abs().sum()) == 0 for _, c in GS._WORK.values())
for R, S, D, cfg in cases["attn"]:
    out["attn"].append(DA.check([(R, S, D)], "cpu", [cfg]).iloc[0].to_dict())
out["two_sources"] = []
for R, S, S2, D, cfg in cases["attn2"]:
    q, k, v = DA.random_inputs(R, S + S2, D, "cpu", seed=S2)
    ref = DA.reference(q, k, v)
    o = DA.decode_attention(q, k[:S], v[:S], cfg, extra_kv=(k[S:], v[S:]))
    out["two_sources"].append(float((o.float() - ref).norm() / ref.norm()))
q, k, v = DA.random_inputs(2 * 8, 40, 32, "cpu")
o = DA.decode_attention(q.view(2, 8, 32), k, v, {"BLOCK_Q": 16, "BLOCK_KV": 16, "KV_PER_SPLIT": 16})
out["shape_dtype"] = [list(o.shape), str(o.dtype)]
# the model-level swap: Attention.attend on the expert, eager and under torch.compile (the custom op's fake)
from pi05perf import model as M
g = torch.Generator().manual_seed(3)
q, k, v = (torch.randn(*s, generator=g).to(torch.bfloat16) for s in ((1, 8, 10, 32), (1, 1, 50, 32), (1, 1, 50, 32)))
ref = M.attend(q.float(), k.float(), v.float())
rel = lambda o: float((o.float() - ref).norm() / ref.norm())
prefix, own = (k[:, :, :40], v[:, :, :40]), (k[:, :, 40:], v[:, :, 40:])  # a 40-key cache and 10 own keys
compiled = torch.compile(DA.attend_split_kv, backend="aot_eager", fullgraph=True)
k2, v2 = k.expand(1, 2, 50, 32).contiguous(), v.expand(1, 2, 50, 32).contiguous()
out["model_swap"] = {"eager": rel(DA.attend_split_kv(q, *own, prefix)), "compiled": rel(compiled(q, *own, prefix)),
                     "no_prefix": rel(DA.attend_split_kv(q, k, v)),
                     "two_kv_heads": rel(DA.attend_split_kv(q, k2[:, :, 40:], v2[:, :, 40:], (k2[:, :, :40], v2[:, :, :40]))),
                     "shape": list(DA.attend_split_kv(q, *own, prefix).shape)}
print("RESULT" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(_SCRIPT, json.dumps({"gemv": GEMV_CASES, "attn": ATTN_CASES, "attn2": ATTN2_CASES}),
                       skip_reason="triton is not installed: the kernels cannot run here (their references are tested below)")


# --------------------------------------------------------------------------- kernels, interpreted
def test_splitk_gemv_matches_float32_for_every_split_and_weight_dtype(interpreted):
    rows = pd.DataFrame(interpreted["gemv"])
    assert len(rows) == 3 * len(GEMV_CASES)
    assert rows.error.isna().all(), rows.error.dropna().tolist()
    assert rows.ok.all(), rows.to_string()
    assert (rows.rel_err < 1e-2).all()


def test_splitk_gemv_leaves_its_counters_at_zero_for_the_next_call(interpreted):
    # the last program of each column tile resets its counter: a CUDA-graph replay starts clean
    assert interpreted["counters_zero"] is True


def test_split_kv_attention_matches_float32(interpreted):
    rows = pd.DataFrame(interpreted["attn"])
    assert len(rows) == len(ATTN_CASES)
    assert rows.error.isna().all(), rows.error.dropna().tolist()
    assert rows.ok.all(), rows.to_string()


def test_split_kv_attention_over_two_sources_matches_their_concatenation(interpreted):
    # the prefix cache and the step's own keys, attended as one set of keys without a copy
    errs = interpreted["two_sources"]
    assert len(errs) == len(ATTN2_CASES) and max(errs) < 1e-2, errs


def test_split_kv_attention_keeps_the_query_shape_and_dtype(interpreted):
    assert interpreted["shape_dtype"] == [[2, 8, 32], "torch.bfloat16"]


def test_split_kv_attention_stands_in_for_the_models_attention(interpreted):
    # eager, compiled (the custom op's fake keeps the graph whole) and the fallback for 2 K/V heads
    swap = interpreted["model_swap"]
    assert swap["shape"] == [1, 8, 10, 32]
    assert max(swap["eager"], swap["compiled"], swap["no_prefix"], swap["two_kv_heads"]) < 2e-2, swap


# --------------------------------------------------------------------------- references and bookkeeping
def test_fp8_row_packing_round_trips_within_e4m3_precision():
    w = torch.randn(48, 64, dtype=torch.float64) * torch.logspace(-2, 2, 48, dtype=torch.float64)[:, None]
    w8, s = GS.quantize_fp8_rows(w)
    assert w8.dtype == torch.float8_e4m3fn and s.shape == (48,) and (s > 0).all()
    assert w8.float().abs().amax(dim=1).sub(448).abs().max() < 1e-3  # every row uses the full range
    back = w8.double() * s.double()[:, None]
    rel = ((back - w).norm(dim=1) / w.norm(dim=1)).max()
    assert rel < 0.05  # 3 mantissa bits: a few percent per element, whatever the row's magnitude


def test_gemv_reference_applies_the_channel_scale():
    x, w, s = torch.randn(3, 8), torch.randn(5, 8), torch.rand(5) + 0.5
    torch.testing.assert_close(GS.reference(x, w, s), x @ (w * s[:, None]).t())
    torch.testing.assert_close(GS.reference(x, w), x @ w.t())


def test_gemv_configs_fit_the_shapes_they_are_tried_on():
    cfgs = GS.autotune_configs()
    assert all(c["BLOCK_N"] >= 16 and c["BLOCK_K"] >= 16 and c["BLOCK_N"] & (c["BLOCK_N"] - 1) == 0 for c in cfgs)
    assert max(c["SPLIT_K"] for c in cfgs) == GS.MAX_SPLIT
    # every denoise-step shape keeps at least one config that splits K (more programs than tiles)
    for n, k in ((2048, 1024), (256, 1024), (1024, 2048), (8192, 1024), (1024, 4096)):
        kept = [c for c in cfgs if GS.fits(c, n, k)]
        assert any(c["SPLIT_K"] > 1 for c in kept)
        assert all(c["SPLIT_K"] * c["BLOCK_K"] <= k for c in kept)
    assert not GS.fits({"BLOCK_N": 128, "BLOCK_K": 128, "SPLIT_K": 1}, 40, 256)  # tile wider than N
    assert GS.programs({"BLOCK_N": 64, "SPLIT_K": 4}, 256) == 16


def test_gemv_rejects_what_it_cannot_compute(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.randn(10, 32, dtype=torch.bfloat16)
    with pytest.raises(ValueError):
        GS.gemv_splitk(x, torch.randn(16, 31, dtype=torch.bfloat16))
    with pytest.raises(TypeError):
        GS.gemv_splitk(x.float(), torch.randn(16, 32))
    with pytest.raises(ValueError):  # FP8 weights without their scale
        GS.gemv_splitk(x, torch.randn(16, 32).to(torch.float8_e4m3fn))
    with pytest.raises(ValueError):  # not a skinny GEMM
        GS.gemv_splitk(torch.randn(100, 32, dtype=torch.bfloat16), torch.randn(16, 32, dtype=torch.bfloat16))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):  # CPU tensors, no interpreter
            GS.gemv_splitk(x, torch.randn(16, 32, dtype=torch.bfloat16))


def test_gemv_ratio_sums_over_shapes_and_refuses_a_missing_one():
    t = pd.DataFrame([{"gemm": "a", "impl": "cuBLAS bf16", "median_ms": 1.0}, {"gemm": "a", "impl": "T", "median_ms": 3.0},
                      {"gemm": "b", "impl": "cuBLAS bf16", "median_ms": 3.0}, {"gemm": "b", "impl": "T", "median_ms": 1.0}])
    assert GS.ratio(t, "T") == pytest.approx(1.0)
    failed = pd.concat([t, pd.DataFrame([{"gemm": "c", "impl": "cuBLAS bf16", "median_ms": 1.0},
                                         {"gemm": "c", "impl": "T", "median_ms": math.nan}])])
    assert GS.ratio(failed, "T") is None
    assert GS.ratio(t, "missing") is None


def test_check_flags_an_error_above_its_tolerance():
    if not HAS_TRITON or not kernels.runnable("cpu"):
        # without a runnable kernel the exception is recorded, and the row is not ok
        df = GS.check([(4, 16, 16)], "cpu", weights=("bfloat16",))
        assert not df.ok.any() and df.error.notna().all()
        df = DA.check([(16, 8, 16)], "cpu")
        assert not df.ok.any() and df.error.notna().all()
    else:
        assert not GS.check([(4, 16, 16)], "cpu", weights=("bfloat16",), rtol=0.0).ok.any()


def test_attention_reference_is_softmax_attention():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(n, 32, generator=g, dtype=torch.float64) for n in (12, 20, 20))
    expected = F.scaled_dot_product_attention(q[None, None], k[None, None], v[None, None])[0, 0]
    torch.testing.assert_close(DA.reference(q, k, v).double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(DA.sdpa(q.float(), k.float(), v.float()).double(), expected, atol=1e-5, rtol=1e-5)
    assert DA.reference(q.view(3, 4, 32), k, v).shape == (3, 4, 32)


def test_attention_splits_cover_the_cache():
    for cfg in DA.configs():
        assert cfg["KV_PER_SPLIT"] % cfg["BLOCK_KV"] == 0  # a slice is whole blocks
        n = DA.splits(cfg, 722)
        assert (n - 1) * cfg["KV_PER_SPLIT"] < 722 <= n * cfg["KV_PER_SPLIT"]  # no empty slice, no key left out
    assert DA.programs({"BLOCK_Q": 16, "KV_PER_SPLIT": 64}, 80, 722) == 5 * 12


def test_attention_rejects_what_it_cannot_compute(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = DA.random_inputs(8, 10, 32, "cpu")
    with pytest.raises(ValueError):
        DA.decode_attention(q, k[:, :16], v)
    with pytest.raises(TypeError):
        DA.decode_attention(q.float(), k, v)
    with pytest.raises(ValueError):  # head_dim not a power of two
        DA.decode_attention(*DA.random_inputs(8, 10, 24, "cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            DA.decode_attention(q, k, v)


def test_best_vs_sdpa_takes_the_fastest_timed_config():
    t = pd.DataFrame([{"impl": "SDPA", "median_ms": 2.0}, {"impl": "Triton split-KV", "median_ms": 3.0},
                      {"impl": "Triton split-KV", "median_ms": 1.0}, {"impl": "Triton split-KV", "median_ms": math.nan}])
    assert DA.best_vs_sdpa(t) == pytest.approx(0.5)
    assert DA.best_vs_sdpa(t[t.impl == "SDPA"]) is None


def test_time_per_call_divides_by_the_number_of_calls():
    calls = [lambda: torch.ones(4).sum() for _ in range(3)]
    t = kernels.time_per_call(calls, "cpu", 3)
    assert t.median_ms > 0 and "3 operand copies" in t.method
    assert kernels.copies_past_l2(1 << 20, "cpu") == 1
