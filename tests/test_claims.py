"""pi05perf.claims: the intro's list of key figures no committed run holds."""
import pandas as pd

from pi05perf import claims


def test_a_figure_is_unmeasured_only_where_no_device_holds_it():
    heads = pd.DataFrame([{"chapter": "ch02_roofline", "device": "B", "slug": "b", "source": "committed",
                           "profile": "full", "key": "copy_gbps", "value": 3000.0}])
    devices = [{"slug": "a"}, {"slug": "b"}]
    missing = claims.unmeasured_figures(devices, claims.Figures(heads))
    assert len(missing) == len(claims.HEADLINE_FIGURES) - 1
    assert not any(m.startswith("copy bandwidth") for m in missing)  # device b has it, device a does not
    assert any(m.startswith("dense bf16 matmul rate") and "chapter 2" in m for m in missing)
    assert len(claims.unmeasured_figures([{"slug": "a"}], claims.Figures(heads))) == len(claims.HEADLINE_FIGURES)


def test_a_ratio_figure_divides_its_two_keys_and_is_missing_without_either():
    row = lambda key, v: {"chapter": "ch09_peers", "device": "B", "slug": "b", "source": "committed",  # noqa: E731
                          "profile": "full", "key": key, "value": v}
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
