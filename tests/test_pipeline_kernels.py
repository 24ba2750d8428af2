"""Kernel profiles of whole-inference paths, with a stand-in bench: a failing profile is reported,
not raised, and each FP8 call is profiled beside its bf16 twin once."""
import pandas as pd

from pi05perf import pipeline, pipeline_kernels

SHAPE = pipeline.Shape(views=2, text_tokens=5, steps=4, horizon=6)


def _table(scale=1.0):
    return pd.DataFrame({"kernel": ["gemm", "attn", "add"], "kind": ["GEMM", "attention", "elementwise/fused"],
                         "count": [8.0, 4.0, 12.0], "total_ms": [scale * 1.0, scale * 0.2, scale * 0.1]})


class FakeBench:
    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def kernels(self, variant, stage, shape, runs):
        self.calls.append((variant, stage))
        if variant == self.fail:
            raise RuntimeError("no kernels\nsecond line")
        return _table(0.5 if "fp8" in variant else 1.0)


def test_profile_best_profiles_the_call_then_the_denoise_stage():
    bench = FakeBench()
    whole, step, error = pipeline_kernels.profile_best(bench, "graph", "graph", SHAPE, 3)
    assert bench.calls == [("graph", "whole"), ("graph", "denoise")] and error is None
    assert whole is not None and step is not None


def test_a_failed_profile_is_an_error_line_not_an_exception():
    whole, step, error = pipeline_kernels.profile_best(FakeBench(fail="graph"), "graph", "graph", SHAPE, 3)
    assert whole is None and step is None and error == "RuntimeError: no kernels"


def test_timeline_text_counts_the_call_and_one_step():
    per_step = pd.DataFrame({"kernels_count": [2.0, 1.0, 3.0, 0.0], "time_ms": [0.25, 0.05, 0.025, 0.0],
                             "floor_ms": [0.1, 0.01, 0.0, 0.0]}, index=["GEMM", "attention", "elementwise/fused", "other"])
    text = pipeline_kernels.timeline_text("graph", _table(), 2.0, "graph", per_step, 6.0)
    assert "runs 24 kernels, 1.30 ms" in text and "**6 kernels**" in text and "GEMMs 0.250 ms" in text


def test_fp8_twins_reuse_the_best_profile_and_profile_each_twin_once():
    bench = FakeBench()
    by_kind = pipeline_kernels.show_fp8_twins(bench, ["fp8_all_graph", "fp8_all_compile_graph"], "graph", _table(),
                                              SHAPE, 3)
    assert bench.calls == [("compile_graph", "whole"), ("fp8_all_graph", "whole"), ("fp8_all_compile_graph", "whole")]
    assert "FP8 fp8_all_graph time_ms" in by_kind.columns and "bf16 graph time_ms" in by_kind.columns


def test_fp8_twins_without_a_profile_return_none():
    assert pipeline_kernels.show_fp8_twins(FakeBench(fail="fp8_all_graph"), ["fp8_all_graph"], "graph", _table(),
                                           SHAPE, 3) is None
