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
    rows = pipeline_sweep.views_steps_grid(bench, [1, 2], [10, 1], 8, 10, HEAD, 50, "graph",
                                           ["compile_graph", "compile_graph_splitkv"])
    shapes = [c[2] for c in bench.calls]
    assert HEAD not in shapes[:-1] and shapes[-1] == pipeline.Shape(2, 8, 10, 50)
    assert bench.calls[0] == ("graph", ("whole", "vision", "prefill", "denoise"), pipeline.Shape(1, 8, 10, 10))
    for v in ("compile_graph", "compile_graph_splitkv"):  # every step count, headline views only
        assert (v, ("whole",), pipeline.Shape(2, 8, 1, 10)) in bench.calls
        assert not any(c[0] == v and c[2].views == 1 for c in bench.calls)
    assert len(rows) == sum(len(c[1]) for c in bench.calls)


def test_the_best_path_is_timed_across_steps_unless_it_is_host_bound_or_already_there():
    head = ["eager", "graph", "compile_graph", "compile_graph_splitkv"]
    assert pipeline_sweep.grid_paths(head, "compile_graph_splitkv", "graph", "compile_graph", True) == [
        "compile_graph", "compile_graph_splitkv"]
    assert pipeline_sweep.grid_paths(head, "graph", "graph", "compile_graph", True) == ["compile_graph"]
    assert pipeline_sweep.grid_paths(head, "eager", "graph", None, True) == []  # host overhead: not a GPU figure
    assert pipeline_sweep.grid_paths(["eager", "eager_fused"], "eager", "eager_fused", None, False) == ["eager"]
    assert pipeline_sweep.grid_paths(head, "compile", "graph", "compile_graph", True) == ["compile_graph"]  # not at the headline


def row(variant, views, steps, ms, horizon=10, text=8):
    return {"variant": variant, "stage": "whole", "views": views, "steps": steps, "horizon": horizon,
            "text_tokens": text, "median_ms": ms}


def test_rate_table_keeps_one_column_per_path_and_no_fastest_across_them():
    rows = pd.DataFrame([row("graph", 2, 10, 4.0), row("compile_graph", 2, 10, 2.0), row("eager", 2, 10, 1.0),
                         row("graph", 2, 10, 9.0, horizon=50), row("graph", 1, 10, 3.0)])
    whole, per_path = pipeline_sweep.rate_table(rows, True, 10, 8)
    assert set(whole.variant) == {"graph", "compile_graph"}  # eager is host overhead: left out
    assert list(per_path.columns) == ["compile_graph", "graph"] and per_path.at[(2, 10), "compile_graph"] == 2.0
    assert math.isnan(per_path.at[(1, 10), "compile_graph"])  # not timed there: no stand-in from another path
    assert pipeline_sweep.rate_table(rows, False, 10, 8)[1].at[(2, 10), "eager"] == 1.0


def grid():
    return pipeline_sweep.rate_table(pd.DataFrame(
        [row("graph", v, s, 10.0 * v + 3 * s) for v in (1, 2, 3) for s in (1, 10)]
        + [row("compile_graph", 2, s, 8.0 + s) for s in (1, 10)] + [row("compile_graph_splitkv", 2, 10, 15.0)]), True, 10, 8)[1]


def test_a_covering_path_is_timed_at_every_configuration_asked():
    per_path = grid()
    steps = [(2, 1), (2, 10)]
    assert pipeline_sweep.covering_path(per_path, steps) == "compile_graph"  # fastest of those covering
    assert pipeline_sweep.covering_path(per_path, steps, prefer=("compile_graph_splitkv", "graph")) == "graph"  # 10 steps only
    assert pipeline_sweep.covering_path(per_path, [(v, 10) for v in (1, 2, 3)]) == "graph"
    assert pipeline_sweep.covering_path(per_path, [(4, 10)]) is None


def test_per_step_cost_sets_each_path_against_itself():
    slopes = pipeline_sweep.per_step_ms(grid(), 2, 10, 1)
    assert dict(slopes) == {"compile_graph": 1.0, "graph": 3.0}  # compile_graph_splitkv: no 1-step time, no figure
    assert pipeline_sweep.per_step_ms(grid(), 4, 10, 1).empty


def test_grid_table_says_where_each_path_was_timed():
    table = pipeline_sweep.grid_table(grid(), (2, 10))
    assert table.headers[2:5] == ["graph (ms)", "compile graph (ms)", "compile graph splitkv (ms)"] and table.headers[-1] == "graph (Hz)"
    note = table.footnotes[0]
    assert "graph at every configuration" in note and "compile_graph at 2 views only" in note
    assert "compile_graph_splitkv at the headline configuration only" in note and "torch.compile runs at the headline's views" in note
    assert not any("best" in h for h in table.headers)


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
