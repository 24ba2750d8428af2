"""The speed targets: judged from measured figures, with what stands in the way of each."""
import pandas as pd

from pi05perf import targets


def _classes(gemm_ms: float, attention_ms: float) -> pd.DataFrame:
    return pd.DataFrame({"kind": ["GEMM", "attention", "elementwise/fused", "other"],
                         "p time_ms": [gemm_ms, attention_ms, 0.1, 0.0], "floor_ms": [0.2, 0.01, 0.0, 0.0]})


def test_launch_floor_text_tells_whether_the_kernel_count_alone_rules_the_target_out():
    from pi05perf.timing import Timing

    lat = Timing(0.002, 0.002, 0.002, 9, "")  # 2 us a kernel; target 2 x 0.2 ms = 0.4 ms: room for 200
    few = targets.launch_floor_text(lat, 150, 1.0, 0.2, _classes(0.5, 0.1), "p", 18)
    many = targets.launch_floor_text(lat, 250, 1.0, 0.2, _classes(0.3, 0.1), "p", 18)
    assert "room for 200 such kernels" in few and "does not rule the target out" in few
    assert "rules the target out: fewer kernels" in many
    # a class whose time alone exceeds the target is named; without one, the sum is given
    assert "The GEMM kernels alone (0.500 ms)" in few and "kernels alone (" not in many
    assert "No class alone exceeds the target; together they take 0.500 ms" in many
    assert "other" not in few  # a class with no time is left out


def test_launch_floor_table_multiplies_the_kernel_count_by_one_kernels_cost():
    from pi05perf.timing import Timing

    t = targets.launch_floor_table(Timing(0.00127, 0.00127, 0.00127, 9, ""), 281, 1.01, 0.205).set_index("per denoise step")
    assert t.loc["kernels × that cost: the launch floor", "value"] == "0.357 ms"
    assert t.loc["kernels that fit the target if each did nothing", "value"] == "322"
    assert t.loc["one graphed kernel that does almost nothing", "value"] == "1.27 µs"


def test_a_two_condition_target_is_met_only_when_both_hold():
    fast_but_wrong = targets.Target("fp8", 10.0, 12.0, "ms", "x", also=targets.Target("cos", 0.99, 0.998, "cosine", at_least=True))
    both = targets.Target("fp8", 10.0, 12.0, "ms", "x", also=targets.Target("cos", 0.9995, 0.998, "cosine", at_least=True))
    slow = targets.Target("fp8", 15.0, 12.0, "ms", "GEMMs", also=targets.Target("cos", 0.9995, 0.998, "cosine", at_least=True))
    assert not fast_but_wrong.met and both.met and not slow.met
    assert targets.Target("cos", 0.999, 0.998, "cosine", at_least=True).met


def test_targets_table_says_what_stands_in_the_way_only_where_not_met():
    t = targets.targets_table([targets.Target("call ≤ 10 ms", 17.97, 10.0, "ms", "denoise +8.06 ms"),
                               targets.Target("fp8", 11.0, 12.58, "ms", "kernels", also=targets.Target("cos", 0.99983, 0.998, "cosine", at_least=True))])
    assert list(t.met) == ["not met", "met"]
    assert t["in the way"].tolist() == ["denoise +8.06 ms", ""]
    assert t.limit[1] == "≤ 12.6 ms; ≥ 0.99800" and t.measured[1].endswith("; 0.99983")


def test_excess_texts_rank_by_time_and_name_what_alone_exceeds_the_limit():
    gap = pd.DataFrame({"stage": ["vision", "prefix", "denoise"], "floor_ms": [0.6, 4.1, 2.0], "measured_ms": [2.5, 5.8, 10.1]})
    assert targets.stage_excess_text(gap) == "over their floors: denoise +8.10 ms, vision +1.90 ms, prefix +1.70 ms"
    per_step = pd.DataFrame({"time_ms": [0.445, 0.221, 0.235, 0.0], "floor_ms": [0.202, 0.003, 0.0, 0.0]},
                            index=["GEMM", "attention", "elementwise/fused", "other"])
    text = targets.class_excess_text(per_step, 0.41)
    assert text.startswith("GEMM 0.445 ms (2.2× its floor); elementwise/fused 0.235 ms (floor 0); attention")
    assert text.endswith("GEMM alone over the 0.410 ms limit") and "other" not in text
    by_kind = pd.DataFrame({"kind": ["GEMM", "attention"], "FP8 a time_ms": [6.7, 3.0]})
    assert targets.kinds_left_text(by_kind, "FP8 a", 12.58) == "kernel time 9.70 ms against the 12.58 ms limit: GEMM 6.70 ms, attention 3.00 ms"
