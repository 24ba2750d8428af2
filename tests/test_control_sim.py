"""Tests of the action-buffering simulation (pi05perf.control_sim) and its sweeps (pi05perf.control_sweep)."""
from __future__ import annotations

import dataclasses
import math
import time

import pytest

from pi05perf.control_sim import STRATEGIES, SimConfig, latency_steps, latency_ticks, simulate, wilson_interval
from pi05perf.control_sweep import sweep


def test_deterministic_for_a_seed():
    a = simulate("rtc", 5, 120.0, 60, seed=7)
    b = simulate("rtc", 5, 120.0, 60, seed=7)
    assert a == b
    c = simulate("rtc", 5, 120.0, 60, seed=8)
    assert c.mean_final_error != a.mean_final_error


@pytest.mark.parametrize("s,n,lo,hi", [
    (0, 9, 0.0, 0.29915),
    (9, 9, 0.70085, 1.0),
    (50, 100, 0.40383, 0.59617),
    (1, 10, 0.01787, 0.40415),
])
def test_wilson_interval_known_values(s, n, lo, hi):
    got_lo, got_hi = wilson_interval(s, n)
    assert got_lo == pytest.approx(lo, abs=2e-5)
    assert got_hi == pytest.approx(hi, abs=2e-5)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    r = simulate("sync", 1, 0.0, 9, seed=0)
    assert (r.ci_low_pct, r.ci_high_pct) == pytest.approx(
        tuple(100 * v for v in wilson_interval(r.successes, 9)))


def test_latency_rounds_up_to_control_periods_and_ticks():
    assert latency_ticks(0.0) == 0 and latency_ticks(22.0) == 5 and latency_ticks(50.0) == 10
    assert latency_steps(0.0) == 0
    assert latency_steps(50.0) == 1
    assert latency_steps(50.1) == 2
    assert latency_steps(180.0) == 4


def test_sync_without_latency_or_disturbance_succeeds():
    cfg = SimConfig(disturbance_rate_hz=0.0)
    r = simulate("sync", 1, 0.0, 300, seed=1, config=cfg)
    assert r.success_pct >= 99.0
    assert r.control_rate_hz == pytest.approx(1000.0 / cfg.control_period_ms)
    assert r.mean_final_error < cfg.tolerance


def test_exact_chunks_without_disturbance_make_open_loop_as_good_as_sync():
    # no policy noise and no pushes: a chunk is the ideal plan, executing all of it loses nothing
    cfg = SimConfig(action_noise=0.0, error_growth=0.0, disturbance_rate_hz=0.0)
    sync = simulate("sync", 1, 0.0, 100, seed=2, config=cfg)
    naive = simulate("naive", 10, 0.0, 100, seed=2, config=cfg)
    assert sync.successes == naive.successes == 100
    assert naive.inferences_per_episode < sync.inferences_per_episode


@pytest.mark.parametrize("strategy,k", [("sync", 1), ("naive", 10), ("ensemble", 2), ("rtc", 5)])
def test_frozen_clock_makes_latency_irrelevant(strategy, k):
    # LIBERO's simulator waits for the policy: any latency behaves as zero latency
    zero = simulate(strategy, k, 0.0, 60, seed=6)
    for lat in (22.0, 180.0, 400.0):
        fr = simulate(strategy, k, lat, 60, seed=6, clock="frozen")
        assert (fr.successes, fr.mean_final_error, fr.control_rate_hz, fr.k_effective) == \
            (zero.successes, zero.mean_final_error, zero.control_rate_hz, zero.k_effective)
        assert fr.clock == "frozen" and fr.latency_ms == lat and fr.wait_ms == 0.0
    assert simulate(strategy, k, 180.0, 60, seed=6).mean_final_error != zero.mean_final_error


def test_sync_equals_async_at_zero_latency():
    sync = simulate("sync", 1, 0.0, 80, seed=4)
    for st in ("rtc", "naive"):  # ensemble averages old chunks in: not the same policy
        r = simulate(st, 1, 0.0, 80, seed=4)
        assert (r.successes, r.mean_final_error) == (sync.successes, sync.mean_final_error), st


def test_sub_period_latency_is_resolved_for_blocking_loops():
    cfg = SimConfig()
    hz = 1000.0 / cfg.control_period_ms
    a, b = simulate("sync", 1, 22.0, 80, seed=7), simulate("sync", 1, 49.0, 80, seed=7)
    assert a.latency_steps == b.latency_steps == 1  # the same in whole periods...
    assert (a.wait_ms, b.wait_ms) == (25.0, 50.0)   # ...not in ticks
    # a blocking loop cycles in wait + one period
    assert a.control_rate_hz == pytest.approx(hz * 50 / 75, rel=0.02)
    assert b.control_rate_hz == pytest.approx(hz * 50 / 100, rel=0.02)


def test_async_controller_switches_chunks_on_period_boundaries():
    # rtc is d whole periods late: 22 ms and 49 ms are both one period
    a, b = simulate("rtc", 5, 22.0, 60, seed=8), simulate("rtc", 5, 49.0, 60, seed=8)
    assert (a.successes, a.mean_final_error) == (b.successes, b.mean_final_error)
    c = simulate("rtc", 5, 51.0, 60, seed=8)
    assert c.latency_steps == 2 and c.mean_final_error != a.mean_final_error


def test_rtc_query_period_is_clipped_to_what_latency_allows():
    cfg = SimConfig()
    r = simulate("rtc", 10, 180.0, 20, seed=3, config=cfg)
    assert r.k_effective == cfg.horizon - r.latency_steps  # d <= s <= H - d
    assert simulate("rtc", 1, 180.0, 20, seed=3).k_effective == r.latency_steps
    assert simulate("naive", 7, 180.0, 20, seed=3).k_effective == 7


def test_rtc_equals_naive_at_zero_latency():
    # with no latency nothing is frozen and nothing blocks: same schedule, same noise
    for k in (1, 5, 10):
        r = simulate("rtc", k, 0.0, 80, seed=4)
        n = simulate("naive", k, 0.0, 80, seed=4)
        assert (r.successes, r.mean_final_error) == (n.successes, n.mean_final_error)


def test_control_rate_counts_blocking():
    cfg = SimConfig()
    lat = 180.0
    d = latency_steps(lat, cfg)
    hz = 1000.0 / cfg.control_period_ms
    sync = simulate("sync", 1, lat, 50, seed=5, config=cfg)
    naive = simulate("naive", 10, lat, 50, seed=5, config=cfg)
    rtc = simulate("rtc", 10, lat, 50, seed=5, config=cfg)
    assert naive.control_rate_hz > sync.control_rate_hz
    # steady state: sync runs 1 action per (wait + 1 period), naive k per (wait + k periods)
    w = lat / cfg.control_period_ms
    assert d == 4
    assert sync.control_rate_hz == pytest.approx(hz / (w + 1), rel=0.05)
    assert naive.control_rate_hz == pytest.approx(hz * 10 / (w + 10), rel=0.1)
    assert rtc.control_rate_hz > naive.control_rate_hz


def test_unknown_strategy_and_bad_k_raise():
    with pytest.raises(ValueError) as e:
        simulate("replan", 1, 0.0, 10, seed=0)
    for name in STRATEGIES:
        assert name in str(e.value)
    with pytest.raises(ValueError):
        sweep(["sync", "bogus"], [1], [0.0], 5, [0])
    with pytest.raises(ValueError):
        simulate("naive", 11, 0.0, 10, seed=0)
    with pytest.raises(ValueError):
        simulate("naive", 0, 0.0, 10, seed=0)
    with pytest.raises(ValueError):
        simulate("naive", 1, 0.0, 10, seed=0, clock="paused")


def test_sweep_tidy_and_pooled():
    t0 = time.perf_counter()
    df = sweep(STRATEGIES, [1, 10], [0.0, 180.0], episodes=20, seeds=[0, 1])
    assert time.perf_counter() - t0 < 2.0
    per_seed, pooled = df[~df.pooled], df[df.pooled]
    assert len(per_seed) == 4 * 2 * 2 * 2
    assert len(pooled) == 4 * 2 * 2
    assert pooled["seed"].isna().all() and (pooled["n_seeds"] == 2).all()
    assert (df.clock == "wall").all()
    for col in ("strategy", "k", "latency_ms", "wait_ms", "clock", "seed", "success_pct", "ci_low_pct",
                "ci_high_pct", "control_rate_hz", "inferences_per_episode"):
        assert col in df.columns
    row = pooled[(pooled.strategy == "naive") & (pooled.k == 10) & (pooled.latency_ms == 180.0)]
    src = per_seed[(per_seed.strategy == "naive") & (per_seed.k == 10)
                   & (per_seed.latency_ms == 180.0)]
    assert int(row.successes.iloc[0]) == int(src.successes.sum())
    assert int(row.episodes.iloc[0]) == 40
    lo, hi = wilson_interval(int(src.successes.sum()), 40)
    assert row.ci_low_pct.iloc[0] == pytest.approx(100 * lo)
    assert row.ci_high_pct.iloc[0] == pytest.approx(100 * hi)
    assert ((df.ci_low_pct <= df.success_pct) & (df.success_pct <= df.ci_high_pct)).all()


def test_config_validation_and_noise_profile():
    cfg = SimConfig(action_noise=0.01, error_growth=0.02, horizon=4)
    assert list(cfg.noise_std()) == pytest.approx([0.01, 0.03, 0.05, 0.07])
    with pytest.raises(ValueError):
        SimConfig(tolerance=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.horizon = 5  # type: ignore[misc]
    assert math.isclose(cfg.dt, 0.05)
