"""Sweeps and tables over the action-buffering simulation (:mod:`pi05perf.control_sim`).

:func:`sweep` runs :func:`~pi05perf.control_sim.simulate` for every combination of strategy, k,
latency and seed on one clock and returns one tidy row per run followed by rows pooled over
seeds (:func:`pool_over_seeds`: successes summed, Wilson interval recomputed).
:func:`success_text` and :func:`intervals_overlap` read those rows for the chapter's tables.
What the simulation models, and what it cannot tell, is in :mod:`pi05perf.control_sim`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .control_sim import STRATEGIES, SimConfig, SimResult, _check_strategy, simulate, wilson_interval

__all__ = ["sweep", "pool_over_seeds", "success_text", "intervals_overlap", "pooled_row", "headline_keys",
           "beside_the_seed"]


def success_text(row) -> str:
    """'62% [57-67]': a pooled row's success with its Wilson 95 % interval."""
    return f"{row.success_pct:.0f}% [{row.ci_low_pct:.0f}–{row.ci_high_pct:.0f}]"


def intervals_overlap(a, b) -> bool:
    """True when two rows' Wilson intervals overlap: the simulation cannot tell them apart."""
    return not (a.ci_high_pct < b.ci_low_pct or b.ci_high_pct < a.ci_low_pct)


def pooled_row(pooled: pd.DataFrame, strategy: str, k: int, setting: str) -> pd.Series:
    """The pooled simulation row of one strategy, k and setting (`pooled` carries a setting column)."""
    return pooled[(pooled.strategy == strategy) & (pooled.k == k) & (pooled.setting == setting)].iloc[0]


def headline_keys(kmax: int, sync_seed: pd.Series, sync_frozen: pd.Series, naive_seed: pd.Series,
                  rtc_seed: pd.Series) -> dict[str, float]:
    """Headline keys of the simulated success rates: sync, naive and rtc at the seed's latency on
    the wall clock (naive and rtc at k = `kmax`), sync on the frozen clock."""
    return {
        "sim_sync_success_pct": float(sync_seed.success_pct),
        "sim_sync_frozen_success_pct": float(sync_frozen.success_pct),
        f"sim_naive_k{kmax}_success_pct": float(naive_seed.success_pct),
        f"sim_rtc_k{kmax}_success_pct": float(rtc_seed.success_pct),
    }


def beside_the_seed(seed: tuple[int, int], buffered: tuple[int, int], kmax: int, seed_lat: float, *,
                    sync_frozen: pd.Series, naive_frozen: pd.Series, sync_seed: pd.Series,
                    rtc_seed: pd.Series) -> pd.DataFrame:
    """The seed's two LIBERO runs (`seed`, `buffered`: successes, episodes) with their Wilson 95 %
    intervals, openpi's published LIBERO figure, and the simulation's rows that mirror them."""
    from .reference import quoted

    (seed_ok, seed_n), (buf_ok, buf_n) = seed, buffered
    b_lo, b_hi = wilson_interval(seed_ok, seed_n)
    p_lo, p_hi = wilson_interval(buf_ok, buf_n)
    return pd.DataFrame([
        {"what": "seed, LIBERO (clock frozen), replan every step", "kind": "Thor (quoted)", "success": f"{seed_ok}/{seed_n}",
         "wilson_95": f"{100 * b_lo:.0f}–{100 * b_hi:.0f}%", "rate_hz": quoted("pipeline_baseline_effective_hz")},
        {"what": "seed, LIBERO (clock frozen), 10 buffered actions", "kind": "Thor (quoted)", "success": f"{buf_ok}/{buf_n}",
         "wilson_95": f"{100 * p_lo:.0f}–{100 * p_hi:.0f}%", "rate_hz": quoted("pipeline_buffered_effective_hz")},
        {"what": f"openpi, LIBERO, pi0.5, executes {quoted('openpi_libero_replan_steps'):.0f} of {quoted('openpi_pi05_libero_action_horizon'):.0f} actions",
         "kind": "published (quoted)", "success": f"{quoted('openpi_pi05_libero_average_pct'):.2f}% (average of 4 suites)",
         "wilson_95": "-", "rate_hz": None},
        {"what": "simulation, sync, clock frozen", "kind": "simulation", "success": success_text(sync_frozen),
         "wilson_95": "in success", "rate_hz": sync_frozen.control_rate_hz},
        {"what": f"simulation, naive k={kmax}, clock frozen", "kind": "simulation", "success": success_text(naive_frozen),
         "wilson_95": "in success", "rate_hz": naive_frozen.control_rate_hz},
        {"what": f"simulation, sync, wall clock, {seed_lat:g} ms", "kind": "simulation", "success": success_text(sync_seed),
         "wilson_95": "in success", "rate_hz": sync_seed.control_rate_hz},
        {"what": f"simulation, rtc k={kmax} (runs every {rtc_seed.k_effective}), wall clock, {seed_lat:g} ms",
         "kind": "simulation", "success": success_text(rtc_seed), "wilson_95": "in success", "rate_hz": rtc_seed.control_rate_hz},
    ])


_POOL_MEAN = ("control_rate_hz", "inferences_per_episode", "mean_final_error")


def pool_over_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Pool per-seed rows of :func:`sweep`: successes and episodes are summed and the
    Wilson interval recomputed; rates and errors are episode-weighted means."""
    keys = ["strategy", "k", "k_effective", "clock", "latency_ms", "latency_steps", "wait_ms"]
    rows = []
    for key, g in per_seed.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        s, n = int(g["successes"].sum()), int(g["episodes"].sum())
        lo, hi = wilson_interval(s, n)
        w = g["episodes"].to_numpy(float)
        row.update(seed=pd.NA, n_seeds=len(g), successes=s, episodes=n,
                   success_pct=100.0 * s / n, ci_low_pct=100.0 * lo, ci_high_pct=100.0 * hi)
        for c in _POOL_MEAN:
            row[c] = float(np.average(g[c].to_numpy(float), weights=w))
        ok = g["successes"].to_numpy(float)
        tts = g["mean_time_to_success_s"].to_numpy(float)
        row["mean_time_to_success_s"] = (float(np.nansum(tts * ok) / ok.sum())
                                         if ok.sum() else float("nan"))
        row["pooled"] = True
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["seed"] = out["seed"].astype("Int64")
    return out


def sweep(strategies: Iterable[str] = STRATEGIES, ks: Iterable[int] = (1, 2, 5, 10),
          latencies_ms: Iterable[float] = (0.0, 50.0, 180.0), episodes: int = 200,
          seeds: Sequence[int] = (0, 1, 2), config: SimConfig | None = None,
          clock: str = "wall") -> pd.DataFrame:
    """Every combination on one clock, one tidy row per (strategy, k, latency_ms, seed) with
    ``pooled == False``, followed by one row per (strategy, k, latency_ms) pooled
    over seeds (``pooled == True``, ``seed`` is <NA>, ``n_seeds`` set).

    Columns: strategy, k, k_effective, clock, latency_ms, latency_steps, wait_ms, seed, n_seeds,
    successes, episodes, success_pct, ci_low_pct, ci_high_pct, control_rate_hz,
    inferences_per_episode, mean_final_error, mean_time_to_success_s, pooled.
    ``sync`` ignores k: its rows repeat for each k so that plots can facet by k.
    """
    strategies, ks, lats, seeds = list(strategies), list(ks), list(latencies_ms), list(seeds)
    for st in strategies:
        _check_strategy(st)
    cfg = config or SimConfig()
    rows = []
    cache: dict[tuple, SimResult] = {}
    for st in strategies:
        for k in ks:
            for lat in lats:
                for sd in seeds:
                    ck = (st, 1 if st == "sync" else k, lat, sd)
                    if ck not in cache:
                        cache[ck] = simulate(st, ck[1], lat, episodes, sd, cfg, clock)
                    r = cache[ck].as_dict()
                    r["k"] = int(k)
                    rows.append(r)
    per_seed = pd.DataFrame(rows)
    per_seed["n_seeds"] = 1
    per_seed["pooled"] = False
    per_seed["seed"] = per_seed["seed"].astype("Int64")
    pooled = pool_over_seeds(per_seed)
    cols = ["strategy", "k", "k_effective", "clock", "latency_ms", "latency_steps", "wait_ms", "seed", "n_seeds",
            "successes", "episodes", "success_pct", "ci_low_pct", "ci_high_pct",
            "control_rate_hz", "inferences_per_episode", "mean_final_error",
            "mean_time_to_success_s", "pooled"]
    return pd.concat([per_seed[cols], pooled[cols]], ignore_index=True)
