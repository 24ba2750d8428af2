"""pi05perf.claims: the key-figures table, its notes, and the intro's list of key figures no committed run holds."""
import pandas as pd

from pi05perf import claims

from conftest import headline


def test_a_figure_is_unmeasured_only_where_no_device_holds_it():
    heads = pd.DataFrame([headline("ch02_roofline", "copy_gbps", 3000.0, "B", "b")])
    devices = [{"slug": "a"}, {"slug": "b"}]
    missing = claims.unmeasured_figures(devices, claims.Figures(heads))
    assert len(missing) == len(claims.HEADLINE_FIGURES) - 1
    assert not any(m.startswith("copy bandwidth") for m in missing)  # device b has it, device a does not
    assert any(m.startswith("dense bf16 matmul rate") and "chapter 2" in m for m in missing)
    assert len(claims.unmeasured_figures([{"slug": "a"}], claims.Figures(heads))) == len(claims.HEADLINE_FIGURES)


def test_a_ratio_figure_divides_its_two_keys_and_is_missing_without_either():
    row = lambda key, v: headline("ch09_peers", key, v, "B", "b")  # noqa: E731
    f = next(f for f in claims.HEADLINE_FIGURES if f.over_key)
    both = claims.Figures(pd.DataFrame([row(f.key, 24.0), row(f.over_key, 16.0)]))
    assert f.value(both, "b") == 1.5
    assert f.value(claims.Figures(pd.DataFrame([row(f.key, 24.0)])), "b") is None


def test_the_fp8_rate_method_is_read_from_each_runs_ceilings_table():
    ceil = pd.DataFrame([
        {"ceiling": "fp8 e4m3 matmul", "stack": "cuBLAS (torch._scaled_mm)", "size": "8192x8192x8192",
         "timed_by": "kernel durations", "value": 1200.0, "used": None},
        {"ceiling": "fp8 e4m3 matmul", "stack": "cuBLAS (torch._scaled_mm, fast accumulation)", "size": "712x32768x2048",
         "timed_by": "kernel durations", "value": 1350.0, "used": "best (floors divide by this)"},
        {"ceiling": "bfloat16 matmul", "stack": "cuBLAS", "size": "8192x8192x8192", "timed_by": "kernel durations",
         "value": 700.0, "used": "best (floors divide by this)"}])
    words, best = claims.matmul_method_words(ceil, "fp8")
    assert "best of 2 candidates (2 shapes, with and without fast accumulation)" in words and "kernel durations" in words
    assert best.endswith("fast accumulation) at 712x32768x2048")
    old, old_best = claims.matmul_method_words(None, "fp8")  # a run before chapter 2 kept a ceilings table
    assert "CUDA events" in old and old != words and old_best == ""
    # the same method with another winning shape is the same method
    other = ceil.assign(used=[u if i != 1 else None for i, u in enumerate(ceil.used)])
    other.loc[0, "used"] = "best (floors divide by this)"
    assert claims.matmul_method_words(other, "fp8")[0] == words and claims.matmul_method_words(other, "fp8")[1] != best


def test_projected_figures_never_sit_in_a_measured_column():
    heads = pd.DataFrame([headline(c, k, v, "GPU X", "gpu-x") for c, k, v in (
        ("ch02_roofline", "copy_gbps", 3000.0), ("ch08_roads_to_20hz", "thor_projected_best_steps10_ms", 97.0))])
    rows = [claims.Figure("copy", "GB/s", "ch02_roofline", "copy_gbps"),
            claims.Figure("Thor projection", "ms", "ch08_roads_to_20hz", "thor_projected_best_steps10_ms", projected=True)]
    dev = {"slug": "gpu-x", "device": "GPU X", "commit": "abc1234"}
    df = claims.figure_table([dev], claims.Figures(heads), rows=rows).set_index("figure")
    proj = claims.projected_column(dev)
    assert "projected" in proj and "measured" not in proj and "quoted Thor figures" in proj
    assert pd.isna(df.loc["Thor projection (ms)", "GPU X (abc1234)"]) and df.loc["Thor projection (ms)", proj] == 97.0
    assert df.loc["copy (GB/s)", "GPU X (abc1234)"] == 3000.0 and pd.isna(df.loc["copy (GB/s)", proj])
    assert any(f.projected for f in claims.HEADLINE_FIGURES if f.key.startswith("thor_"))
    assert not any(f.projected for f in claims.HEADLINE_FIGURES if not f.chapter.startswith("ch08"))


def test_a_quoted_figure_that_is_not_like_with_like_is_a_dash_with_its_note():
    from pi05perf import reference

    heads = pd.DataFrame([headline("ch04_fp8_tensorrt", "fp8_prefill712_full_ms", 4.5, "GPU X", "gpu-x")])
    row = claims.Figure("fp8 prefill", "ms", "ch04_fp8_tensorrt", "fp8_prefill712_full_ms",
                        "turbopi_trt_fp8_10step_prefix_ms", "in-pipeline, not FP8", thor_unlike="its MLP ran as FP16")
    dev = {"slug": "gpu-x", "device": "GPU X", "commit": "abc1234"}
    df = claims.figure_table([dev], claims.Figures(heads), rows=[row])
    assert pd.isna(df["Thor (quoted)"].iloc[0]) and df["GPU X (abc1234)"].iloc[0] == 4.5
    notes = claims.figure_notes([dev], claims.Figures(heads), rows=[row])
    assert len(notes) == 1 and f"{reference.quoted('turbopi_trt_fp8_10step_prefix_ms'):g} ms" in notes[0]
    assert "ran as FP16" in notes[0]
    liked = claims.figure_table([dev], claims.Figures(heads), rows=[claims.Figure(
        "fp8 prefill", "ms", "ch04_fp8_tensorrt", "fp8_prefill712_full_ms", "turbopi_trt_fp8_10step_prefix_ms")])
    assert liked["Thor (quoted)"].iloc[0] == reference.quoted("turbopi_trt_fp8_10step_prefix_ms")


def test_timed_path_names_the_row_a_figure_timed_or_the_one_path_its_rows_share():
    lat = pd.DataFrame({"stage": ["prefill", "prefill", "whole"], "variant": ["graph", "compile_graph", "graph"],
                        "median_ms": [8.4, 5.64, 5.64]})
    f = claims.Figure("prefix", "ms", "ch07_pipeline", "prefix_prefill_ms", path_table="latency",
                      path_where=(("stage", "prefill"),))
    assert claims.timed_path(f, lat, 5.64) == "compile_graph"  # the whole-call row of the same median is filtered out
    assert claims.timed_path(f, lat, 7.0) is None  # two paths, none at that median
    one = claims.Figure("ratio", "×", "ch07_pipeline", "k", path_table="latency", path_where=(("stage", "whole"),))
    assert claims.timed_path(one, lat, 1.44) == "graph"  # a ratio matches no median: the rows' one path
    assert claims.timed_path(f, None, 5.64) is None
