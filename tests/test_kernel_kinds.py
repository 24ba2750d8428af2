"""Kernel tables by class, per denoise step: one reduction of a profile serves both the per-step
class table and the side-by-side table of several paths."""
import pandas as pd

from pi05perf import kernel_kinds as kk

FLOORS = {"GEMM": 0.1, "attention": 0.01, "elementwise/fused": 0.0, "other": 0.0}


def _table(kinds, counts, ms):
    return pd.DataFrame({"kernel": [f"k{i}" for i in range(len(kinds))], "kind": kinds, "count": counts, "total_ms": ms})


STEP = _table(["GEMM", "GEMM", "attention", "other"], [20.0, 10.0, 10.0, 3.0], [1.0, 0.5, 0.3, 0.01])
OTHER = _table(["GEMM", "elementwise/fused"], [40.0, 50.0], [2.0, 0.7])  # no attention, no other


def test_path_classes_equal_a_direct_groupby_of_the_profile():
    direct = STEP.groupby("kind").agg(kernels_count=("count", "sum"), time_ms=("total_ms", "sum")) / 10
    direct = direct.reindex(kk.KERNEL_CLASSES, fill_value=0.0)
    direct["floor_ms"] = [FLOORS[k] for k in direct.index]
    direct["x_floor_ratio"] = direct.time_ms / direct.floor_ms.where(direct.floor_ms > 0)
    got = kk.path_classes(kk.classes_per_step({"p": STEP}, 10, FLOORS), "p")
    pd.testing.assert_frame_equal(got, direct, check_exact=True)
    assert got.x_floor_ratio.isna().tolist() == [False, False, True, True]  # floor 0: no ratio


def test_with_paths_equals_reducing_both_profiles_at_once():
    both = kk.kernels_by_kind({"cg": OTHER, "p": STEP})
    numeric = both.columns.drop("kind")
    both[numeric] = both[numeric] / 10
    both["floor_ms"] = both.kind.map(FLOORS)
    got = kk.with_paths(kk.classes_per_step({"p": STEP}, 10, FLOORS), {"cg": OTHER}, 10, FLOORS)
    pd.testing.assert_frame_equal(got, both, check_exact=True)
    assert list(got.columns) == ["kind", "cg kernels_count", "cg time_ms", "p kernels_count", "p time_ms", "floor_ms"]


def test_share_by_kind_adds_up_to_the_whole_call():
    t = kk.share_by_kind(STEP)
    assert t.share_pct.sum() == 100.0
    assert t.loc["GEMM", "kernels_count"] == 30.0 and abs(t.loc["GEMM", "time_ms"] - 1.5) < 1e-12
