"""The analytic FLOP model against PyTorch's FLOP counter over the lib's own model (full size,
meta device), hand-checked numbers, and the `flops` CLI."""
import json
import math
import subprocess
import sys

import pytest
import torch

from pi05perf import config
from pi05perf import flops as fl
from pi05perf import model as M
from pi05perf.__main__ import main
from pi05perf.flopcheck import count as counted, counted_flops, meta
from pi05perf.config import GEMMA_2B, GEMMA_300M, SIGLIP_SO400M, TokenBudget, THOR_SPEC

BF16 = torch.bfloat16


@pytest.mark.parametrize("tokens", [1, 256, 712, 1000])
@pytest.mark.parametrize("fused", [False, True])
def test_gemma_2b_prefill_matches_counter(tokens, fused):
    want = fl.stack_cost(GEMMA_2B, tokens, include_stem=True, fused=fused)["flops"]
    assert counted_flops(GEMMA_2B, tokens, fused=fused) == want
    assert want == fl.prefill_flops(GEMMA_2B, tokens)  # the final norm adds no matmul FLOPs


@pytest.mark.parametrize("horizon", [10, 50])
def test_expert_matches_counter(horizon, prefix=712):
    cfg = GEMMA_300M
    want = fl.stack_cost(cfg, horizon, kv_tokens=prefix + horizon, include_stem=True)["flops"]
    assert counted_flops(cfg, horizon, kv_tokens=prefix + horizon) == want
    # and without the stem (the final adaRMS modulation) the counts differ by exactly it
    assert want - fl.stack_cost(cfg, horizon, prefix + horizon)["flops"] == 2 * 3 * cfg.width * cfg.width


def test_siglip_matches_counter():
    assert counted_flops(SIGLIP_SO400M, 256) == fl.stack_cost(SIGLIP_SO400M, 256, include_stem=True, out_dim=2048)["flops"]


def test_pipeline_denoise_step_matches_counter():
    budget = TokenBudget(num_images=2, text_tokens=200, action_horizon=10)
    with torch.device("meta"):
        pi = M.Pi05().to(BF16)
    kv = [(meta(1, 1, budget.prefix_tokens, 256),) * 2 for _ in range(18)]
    got = counted(pi.denoise_step, meta(1, 10, 32), 0.5, kv)
    df = fl.pipeline_cost(budget, num_steps=3).set_index("stage")
    assert got * 3 == df.loc["denoise", "flops"]
    assert df.loc["prefix", "flops"] == fl.prefill_flops(GEMMA_2B, 712)


def test_hand_checked_numbers():
    ops = {o.name: o for o in fl.layer_ops(GEMMA_2B, 712)}
    assert ops["q_proj"].flops == 2 * 712 * 2048 * 2048
    assert (ops["q_proj"].m, ops["q_proj"].n, ops["q_proj"].k) == (712, 2048, 2048)
    assert ops["k_proj"].flops == 2 * 712 * 2048 * 256
    assert ops["attn_scores"].flops + ops["attn_values"].flops == 2 * 2 * 8 * 712 * 712 * 256
    assert ops["gate_proj"].flops == 2 * 712 * 2048 * 16384
    assert all(ops[n].flops == 0 for n in ("input_norm", "rope", "gelu_mul", "residual", "post_attn_norm"))
    assert all(ops[n].act_bytes > 0 for n in ("input_norm", "rope", "gelu_mul", "residual"))
    assert fl.prefill_flops(GEMMA_2B, 712) == pytest.approx(2.9e12, rel=0.01)
    # the seed's 3.96 GB: 18 layers of bf16 weights
    assert fl.prefill_weight_bytes(GEMMA_2B) == pytest.approx(3.96e9, rel=0.005)
    # weight bytes do not depend on tokens or batch; act bytes grow with both
    a, b = fl.stack_cost(GEMMA_2B, 10), fl.stack_cost(GEMMA_2B, 700, batch=2)
    assert a["weight_bytes"] == b["weight_bytes"] and b["act_bytes"] > 100 * a["act_bytes"]
    # the prefix LLM writes its K/V cache, the expert does not
    assert fl.stack_cost(GEMMA_2B, 712)["kv_bytes"] == 18 * 2 * 712 * 256 * 2
    assert fl.stack_cost(GEMMA_300M, 10, 722)["kv_bytes"] == 0


def test_fused_ops_same_totals():
    plain = fl.stack_cost(GEMMA_2B, 712)
    fused = fl.stack_cost(GEMMA_2B, 712, fused=True)
    assert plain["flops"] == fused["flops"] and plain["weight_bytes"] == fused["weight_bytes"]
    assert plain["kv_bytes"] == fused["kv_bytes"]
    names = [o.name for o in fl.layer_ops(GEMMA_2B, 712, fused=True)]
    assert "qkv_proj" in names and "gate_up_proj" in names and "q_proj" not in names


def test_roofline_helpers():
    assert fl.arithmetic_intensity(10, 5) == 2 and fl.arithmetic_intensity(1, 0) == math.inf
    assert fl.roofline_time_s(1e12, 1e9, 100, 100) == pytest.approx(1e-2)   # compute bound
    assert fl.roofline_time_s(1e9, 1e12, 100, 100) == pytest.approx(10.0)   # memory bound
    df = fl.pipeline_cost(TokenBudget(), 10, hardware=THOR_SPEC)
    assert list(df["stage"]) == ["vision", "prefix", "denoise"]
    assert (df["roofline_ms"] >= df[["compute_ms", "memory_ms"]].max(axis=1) - 1e-12).all()


def test_compare_with_seed():
    df = fl.compare_with_seed(712).set_index("op")
    for op in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert df.loc[op, "ours_over_seed_method_ratio"] == 1.0
        assert df.loc[op, "seed_printed_flops"] == pytest.approx(df.loc[op, "seed_method_flops"], rel=0.01)
    assert df.loc["attn_scores", "ours_over_seed_method_ratio"] == 16.0  # x2 multiply-add, x8 query heads
    assert df.loc["attn_scores", "seed_printed_flops"] == pytest.approx(df.loc["attn_scores", "seed_method_flops"], rel=0.01)
    assert df.loc["attn_values", "seed_method_flops"] == 0 and math.isnan(df.loc["attn_values", "ours_over_seed_method_ratio"])
    assert math.isnan(df.loc["attn_values", "seed_printed_flops"])  # the seed prints no such row
    assert "GeGLU" in df.loc["gate_proj", "note"]
    assert df.loc["total_18_layers", "seed_printed_flops"] == 2.83e12
    assert df.loc["total_18_layers", "ours_flops"] == fl.prefill_flops(GEMMA_2B, 712)
    assert all(df["note"].str.len() > 0)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pi05perf", *args], capture_output=True, text=True)


def test_cli_json():
    r = run_cli("flops", "--model", "gemma_2b", "--tokens", "712", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"model", "tokens", "ops", "layers", "total_flops", "total_weight_bytes"} <= set(out)
    assert out["model"] == "gemma_2b" and out["tokens"] == 712 and out["layers"] == 18
    assert all(set(o) == {"name", "flops", "weight_bytes"} for o in out["ops"])
    ops = {o["name"]: o for o in out["ops"]}
    assert ops["q_proj"]["flops"] == 2 * 712 * 2048 * 2048
    assert out["total_flops"] == 18 * sum(o["flops"] for o in out["ops"]) == fl.prefill_flops(GEMMA_2B, 712)
    assert out["total_weight_bytes"] == fl.prefill_weight_bytes(GEMMA_2B)


def test_cli_table_and_expert(capsys):
    assert main(["flops", "--model", "gemma_300m", "--tokens", "10", "--kv-tokens", "722"]) == 0
    text = capsys.readouterr().out
    assert "attn_scores" in text and "input_norm_mod" in text


@pytest.mark.parametrize("args, needle", [
    (["--model", "gemma_7b", "--tokens", "712"], "--model"),
    (["--model", "gemma_2b", "--tokens", "0"], "--tokens"),
    (["--model", "gemma_2b", "--tokens", "-5"], "--tokens"),
])
def test_cli_bad_arguments(args, needle):
    r = run_cli("flops", *args)
    assert r.returncode == 2
    assert needle in r.stderr
    if needle == "--model":
        assert "gemma_2b" in r.stderr and "siglip_so400m" in r.stderr


def test_floor_bytes_of_a_denoise_step_are_expert_weights_plus_kv_read():
    from pi05perf.config import Hardware

    b = TokenBudget(num_images=2, text_tokens=200)
    hw = Hardware("test", 1000.0, 100.0, None, "test")
    one, ten = (fl.pipeline_cost(b, n, hardware=hw).set_index("stage").loc["denoise"] for n in (1, 10))
    cfg = GEMMA_300M
    kv_read = cfg.depth * 2 * b.prefix_tokens * cfg.kv_dim * 2
    assert one.floor_bytes >= one.weight_bytes + kv_read  # weights once per step, the cache read
    assert one.floor_bytes < one.weight_bytes + kv_read + 1e6  # plus small inputs and outputs only
    assert ten.floor_bytes == 10 * one.floor_bytes
    assert one.floor_ms == pytest.approx(max(one.compute_ms, one.floor_bytes / 1e9))
    assert one.floor_ms <= one.roofline_ms


def test_budget_table_grows_with_slots_and_text():
    from pi05perf.config import Hardware

    hw = Hardware("test", 1000.0, 100.0, None, "test")
    t = fl.budget_table([TokenBudget(2, 48), TokenBudget(2, 200), TokenBudget(3, 200)], hardware=hw)
    assert list(t.prefix_tokens) == [560, 712, 968]
    assert t.call_flops.is_monotonic_increasing and t.call_floor_ms.is_monotonic_increasing
    assert (t.call_flops == t.vision_flops + t.prefix_flops + t.denoise_flops).all()


def test_hardware_floor_is_the_larger_of_compute_and_memory_time():
    hw = config.Hardware("toy", bandwidth_gbps=100.0, bf16_tflops=10.0, fp8_tflops=None, source="test")
    assert hw.compute_ms(10e12) == pytest.approx(1000.0) and hw.memory_ms(100e9) == pytest.approx(1000.0)
    assert hw.floor_ms(10e12, 1e9) == pytest.approx(1000.0)  # compute-bound
    assert hw.floor_ms(1e9, 100e9) == pytest.approx(1000.0)  # memory-bound
