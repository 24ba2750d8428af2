"""Reading the pooled simulation rows: one row per (strategy, k, setting), headline keys named
after k, and the table set beside the seed's LIBERO runs."""
import pandas as pd

from pi05perf import control_sweep


def _pooled():
    rows = []
    for strategy, pct in (("sync", 80.0), ("naive", 40.0), ("rtc", 70.0)):
        for k in (1, 10):
            for setting in ("frozen", "wall"):
                rows.append({"strategy": strategy, "k": k, "k_effective": k, "setting": setting,
                             "success_pct": pct + k + (setting == "wall"), "ci_low_pct": pct - 5, "ci_high_pct": pct + 5,
                             "control_rate_hz": 20.0 / k})
    return pd.DataFrame(rows)


def test_pooled_row_picks_strategy_k_and_setting():
    row = control_sweep.pooled_row(_pooled(), "naive", 10, "wall")
    assert (row.strategy, row.k, row.setting, row.success_pct) == ("naive", 10, "wall", 51.0)


def test_headline_keys_carry_k():
    p = _pooled()
    r = lambda s, st="wall": control_sweep.pooled_row(p, s, 10, st)  # noqa: E731
    keys = control_sweep.headline_keys(10, r("sync"), r("sync", "frozen"), r("naive"), r("rtc"))
    assert keys == {"sim_sync_success_pct": 91.0, "sim_sync_frozen_success_pct": 90.0,
                    "sim_naive_k10_success_pct": 51.0, "sim_rtc_k10_success_pct": 81.0}


def test_beside_the_seed_quotes_both_runs_with_wilson_intervals():
    p = _pooled()
    r = lambda s, st="wall": control_sweep.pooled_row(p, s, 10, st)  # noqa: E731
    t = control_sweep.beside_the_seed((9, 9), (0, 9), 10, 180.0, sync_frozen=r("sync", "frozen"),
                                      naive_frozen=r("naive", "frozen"), sync_seed=r("sync"), rtc_seed=r("rtc"))
    assert len(t) == 7 and list(t.success[:2]) == ["9/9", "0/9"]
    assert t.wilson_95[0].endswith("–100%") and t.wilson_95[1].startswith("0–")
    assert t.what.iloc[-1] == "simulation, rtc k=10 (runs every 10), wall clock, 180 ms"
