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

__all__ = ["sweep", "pool_over_seeds", "success_text", "intervals_overlap"]


def success_text(row) -> str:
    """'62% [57-67]': a pooled row's success with its Wilson 95 % interval."""
    return f"{row.success_pct:.0f}% [{row.ci_low_pct:.0f}–{row.ci_high_pct:.0f}]"


def intervals_overlap(a, b) -> bool:
    """True when two rows' Wilson intervals overlap: the simulation cannot tell them apart."""
    return not (a.ci_high_pct < b.ci_low_pct or b.ci_high_pct < a.ci_low_pct)


_POOL_SUM = ("successes", "episodes")
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
