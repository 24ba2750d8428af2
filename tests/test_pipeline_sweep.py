"""Sweeps of the whole-inference bench, with a stand-in bench: which paths run, which shapes the
grid visits, the best call per configuration and the headline keys."""
import math

import pandas as pd
import pytest
import torch

from pi05perf import pipeline, pipeline_sweep

HEAD = pipeline.Shape(views=2, text_tokens=8, steps=10, horizon=10)


def test_parameters_outside_the_sweep_are_refused():
    ok = dict(variants=["eager"], fp8_variants=[], compile_mode="default", camera_views=[1, 2], denoise_steps=[10, 1],
              headline_views=2, headline_steps=10)
    pipeline_sweep.check_parameters(**ok)
    for bad in (dict(compile_mode="reduce-overhead"), dict(variants=["warp"]), dict(fp8_variants=["fp8_nope"]),
                dict(headline_views=3), dict(headline_steps=5)):
        with pytest.raises(ValueError):
            pipeline_sweep.check_parameters(**(ok | bad))


def test_a_cpu_times_no_graphs_and_compiles_only_in_the_full_profile():
    asked = ["eager", "graph", "compile", "eager_fused"]
    assert pipeline_sweep.timed_variants(asked, torch.device("cpu"), full=False) == ["eager", "eager_fused"]
    assert pipeline_sweep.timed_variants(asked, torch.device("cpu"), full=True) == ["eager", "compile", "eager_fused"]


class FakeBench:
    def __init__(self):
        self.calls = []

    def attempt(self, variant, stages, shape):
        self.calls.append((variant, tuple(stages), shape))
        return [{"variant": variant, "stage": s} for s in stages]


def test_grid_skips_the_headline_and_ends_with_the_long_horizon():
    bench = FakeBench()
    rows = pipeline_sweep.views_steps_grid(bench, [1, 2], [10, 1], 8, 10, HEAD, 50, "graph", "compile_graph")
    shapes = [c[2] for c in bench.calls]
    assert HEAD not in shapes[:-1] and shapes[-1] == pipeline.Shape(2, 8, 10, 50)
    assert bench.calls[0] == ("graph", ("whole", "vision", "prefill", "denoise"), pipeline.Shape(1, 8, 10, 10))
    assert ("compile_graph", ("whole",), pipeline.Shape(2, 8, 1, 10)) in bench.calls  # headline views only
    assert not any(v == "compile_graph" and s.views == 1 for v, _, s in bench.calls)
    assert len(rows) == sum(len(c[1]) for c in bench.calls)


def test_rate_table_takes_the_fastest_path_per_configuration():
    rows = pd.DataFrame([
        {"variant": "graph", "stage": "whole", "views": 2, "steps": 10, "horizon": 10, "text_tokens": 8, "median_ms": 4.0},
        {"variant": "compile_graph", "stage": "whole", "views": 2, "steps": 10, "horizon": 10, "text_tokens": 8, "median_ms": 2.0},
        {"variant": "eager", "stage": "whole", "views": 2, "steps": 10, "horizon": 10, "text_tokens": 8, "median_ms": 1.0},
        {"variant": "graph", "stage": "whole", "views": 2, "steps": 10, "horizon": 50, "text_tokens": 8, "median_ms": 9.0}])
    whole, rate = pipeline_sweep.rate_table(rows, True, 10, 8)
    assert set(whole.variant) == {"graph", "compile_graph"}  # eager is host overhead: left out
    assert rate.best_ms[(2, 10)] == 2.0 and rate.best_hz[(2, 10)] == 500.0
    assert pipeline_sweep.rate_table(rows, False, 10, 8)[1].best_ms[(2, 10)] == 1.0


def test_headline_keys_name_views_steps_and_budgets():
    stages = pd.Series({"vision": 1.0, "prefill": 2.0, "denoise": 3.0})
    best = pd.Series({(2, 10): 6.0}, dtype=float)
    keys = pipeline_sweep.latency_keys(2, 10, 1, stages, 6.0, best)
    assert keys["pipeline_2view_steps10_hz"] == 1e3 / 6.0 and math.isnan(keys["pipeline_2view_steps1_best_ms"])
    assert list(keys)[:3] == ["vision_2view_ms", "prefix_prefill_ms", "denoise_steps10_ms"]
    budgets = pipeline_sweep.budget_keys({(2, 8): 6.0, (3, 8): 7.0, (2, 4): 5.0}, 2, 8)
    assert budgets == {"pipeline_3slot_text8_ms": 7.0, "pipeline_2view_text4_ms": 5.0}


def test_description_names_every_stack():
    text = pipeline_sweep.describe_text(pipeline.arch(False), HEAD)
    assert text.startswith("Model: SigLIP") and "2 views and 8 text tokens" in text
