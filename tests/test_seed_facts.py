"""pi05perf.seed_facts: the verdicts' shared facts agree with the analytic model and with each other."""
import pytest

from pi05perf import config, flops, seed_facts


@pytest.fixture(scope="module")
def facts():
    return seed_facts.seed_facts()


def test_flop_shares_and_weights_follow_the_analytic_model(facts):
    assert 0 < facts.qkvo_share < facts.mlp_share < 1
    assert facts.weights_gb == pytest.approx(flops.prefill_weight_bytes(config.GEMMA_2B) / 1e9)
    # the seed's MLP rate and bandwidth are one time divided into FLOPs and bytes
    assert facts.seed_mlp_tflops / facts.seed_mlp_gbps == pytest.approx(facts.mlp_flops / facts.mlp_bytes / 1e3)
    assert facts.mlp_compute_floor == pytest.approx(facts.spec.compute_ms(facts.mlp_flops))


def test_precision_floors_and_the_int4_bound_agree(facts):
    tf = facts.tf
    assert {seed_facts.BF, seed_facts.I4, seed_facts.F8} <= set(tf.index)
    assert tf.memory_ms[seed_facts.F8] < tf.memory_ms[seed_facts.BF]  # FP8 weights are half the bytes
    assert facts.int4_bound == pytest.approx(float(tf.speedup_vs_bf16_floor[seed_facts.I4]))
    assert facts.call_floor4 <= facts.call_floor8


def test_the_20hz_flags_follow_their_figures(facts):
    assert facts.budget == pytest.approx(50.0)
    assert facts.buffering_works == (facts.openpi_pct >= 90)
    assert facts.works_elsewhere >= facts.buffering_works  # one working counter-example is enough
    assert facts.analytic_line().startswith(f"analytic: MLP {100 * facts.mlp_share:.1f}% of FLOPs")


def test_down_proj_per_flop_figures_come_from_the_seeds_breakdown_and_the_tile_arithmetic(facts):
    from pi05perf import reference

    q = reference.quoted
    # the three MLP GEMMs have equal FLOPs: time over time is a per-FLOP ratio
    assert facts.seed_down_per_flop == pytest.approx(q("kv_breakdown_mlp_down_ms") / (q("kv_breakdown_mlp_gate_up_silu_ms") / 2))
    sms = int(q("thor_sm_count"))
    g = config.GEMMA_2B
    expect = flops.waves(712, g.mlp_dim, sms)["sm_utilisation"] / flops.waves(712, g.width, sms)["sm_utilisation"]
    assert facts.thor_down_wave_slowdown == pytest.approx(expect) and facts.thor_down_wave_slowdown >= 1


def test_the_20hz_flag_follows_the_figures_chapter_8_cites(facts):
    from pi05perf import reference

    assert facts.nv4_mean == reference.quoted("nvidia_thor_trt_fp8_nvfp4_mean_ms")
    assert facts.quoted_20hz == (min(facts.nv4_mean, facts.fr) <= facts.budget)
    assert set(facts.seed_fp4_runs) and all(ms > 0 for ms, _ in facts.seed_fp4_runs.values())


def test_the_mlp_traffic_counts_chapter_1s_ops_and_its_rate_splits_the_seeds_parts(facts):
    from pi05perf import reference

    ops = {o.name: o for o in flops.layer_ops(config.GEMMA_2B, 712)}
    per_layer = sum(ops[k].bytes for k in ("gate_proj", "up_proj", "gelu_mul", "down_proj"))
    assert facts.mlp_traffic["whole MLP"] == 18 * per_layer > facts.mlp_bytes  # activations on top of the weights
    # each part's rate is its bytes over its own time in the seed's breakdown
    down = facts.mlp_traffic["down_proj"] / (reference.quoted("kv_breakdown_mlp_down_ms") * 1e-3) / 1e9
    assert facts.seed_mlp_traffic_gbps["down_proj"] == pytest.approx(down)


def test_the_memory_bound_status_follows_the_traffic_rates(facts):
    from dataclasses import replace

    bw = facts.seedhw.bandwidth_gbps
    at_bw = replace(facts, seed_mlp_traffic_gbps={k: bw for k in facts.seed_mlp_traffic_gbps})
    split = replace(facts, seed_mlp_traffic_gbps={"a": 2 * bw, "b": bw / 2, "whole MLP": bw})
    compute = replace(facts, b_spec=facts.b_spec.copy().replace({"memory": "compute"}))
    assert at_bw.mlp_bound_status() == "held" and split.mlp_bound_status() == "partly held"
    assert compute.mlp_bound_status() == "not held"
