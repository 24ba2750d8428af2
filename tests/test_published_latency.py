"""Quoted latencies beside this device's: the quoted rows come from the reference table and the
last row (or series) is this device's measurement."""
import pandas as pd
import torch

from pi05perf import pipeline, published_latency, reference


def test_anchors_end_with_this_device_and_quote_the_seed():
    stages = pd.Series({"vision": 1.0, "prefill": 2.0, "denoise": 3.0})
    t = published_latency.anchors_table("graph", 6.5, "cpu", torch.bfloat16, pipeline.Shape(2, 8, 10, 10), stages)
    assert t.iloc[0].total_ms == reference.quoted("pipeline_baseline_total_ms")
    last = t.iloc[-1]
    assert last.kind == "this device (measured)" and last.total_ms == 6.5 and last.denoise_ms == 3.0
    assert last.configuration == "bfloat16, 2 views, 10 steps"


def test_by_views_leaves_an_unmeasured_view_count_empty():
    best = pd.Series({(1, 10): 4.0, (2, 10): 5.0})
    t = published_latency.by_views_table(best, [1, 2, 3], 10, "cpu")
    ours = t[t.series == "this device (measured)"].set_index("views").ms
    assert len(t) == 9 and ours[1] == 4.0 and pd.isna(ours[3])
