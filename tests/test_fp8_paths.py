"""FP8 paths in words, and chapter 7's FP8 figures read back for chapter 4."""
import math

import pandas as pd
import pytest

from pi05perf import fp8_paths as FP
from pi05perf import quantized_prefill as QP


def test_fp8_path_words_reads_the_layer_and_the_scope():
    w = FP.fp8_path_words("fp8_channel/full/fast_accum", "layer_graph")
    assert "one scale per output channel" in w and "one dynamic scale per token" in w and "fast accumulation" in w
    assert w.startswith("`fp8_channel/full/fast_accum/layer_graph`") and "one CUDA graph" in w
    w = FP.fp8_path_words("fp8_tensor/mlp/graph")
    assert "one scale per tensor" in w and "the MLP projections" in w and "whole prefill compiled" in w
    with pytest.raises(ValueError):
        FP.fp8_path_words("int8/full")


def _rows(*specs, timed=True):
    return pd.DataFrame([{"scheme": v.scheme, "scope": v.scope, "fast_accum": v.fast_accum,
                          "median_ms": 1.0 if timed else math.nan} for v in map(QP.parse_variant, specs)])


def test_fp8_tried_says_graph_only_when_a_graphed_fp8_variant_was_timed():
    tried, untried = FP.fp8_tried(_rows("base/graph", "fp8_tensor/full/graph", "fp8_channel/full/fast_accum/layer"))
    assert any("one CUDA graph" in t for t in tried) and not any("CUDA graph" in u for u in untried)
    assert any("per-tensor" in t for t in tried) and any("fast accumulation" in t for t in tried)
    tried, untried = FP.fp8_tried(_rows("base/graph", "fp8_tensor/full/layer", "fp8_tensor/full/graph", timed=False))
    assert tried == [] and any("one CUDA graph" in u for u in untried)
    assert any("static activation scales" in u for u in untried)


def _ch07_doc(fp8_table=True, gemm=(9.0, 6.0)):
    head = {"pipeline_fp8_2view_steps10_ms": 15.0, "pipeline_2view_steps10_best_ms": 18.0}
    shape = {"stage": "whole", "views": 2, "steps": 10, "text_tokens": 200, "horizon": 10, "table": "latency"}
    rows = [{**shape, "variant": v, "median_ms": ms} for v, ms in
            (("compile_graph_splitkv", 18.0), ("compile_graph", 21.0), ("graph", 42.0))]
    rows.append({**shape, "horizon": 50, "variant": "compile_graph", "median_ms": 99.0})  # another shape: not a twin
    tables = {}
    if fp8_table:
        tables["fp8"] = [{"variant": "fp8_static_compile_graph", "median_ms": 15.0},
                         {"variant": "fp8_all_compile_graph", "median_ms": 23.1}]
        tables["fp8_kernels_by_kind"] = [{"kind": "elementwise/fused", "bf16 compile_graph time_ms": 4.0,
                                          "FP8 fp8_all_compile_graph time_ms": 8.0},
                                         {"kind": "GEMM", "bf16 compile_graph time_ms": gemm[0],
                                          "FP8 fp8_all_compile_graph time_ms": gemm[1]}]
    return {"source": "committed", "slug": "gpu", "headline": head, "rows": rows, "tables": tables,
            "provenance": {"device": "GPU", "git_commit": "abcdef123", "date": "2026-01-01",
                           "parameters": {"text_tokens": 200, "action_horizon": 10,
                                          "fp8_variants": ["fp8_static_compile_graph", "fp8_all_compile_graph"]}}}


def test_committed_fp8_whole_call_and_the_reconciling_text(monkeypatch):
    from pi05perf import results

    c4 = {"variant": "fp8_tensor/full/graph", "scope": "graph", "fp8_ms": 4.0, "bf16_ms": 5.0, "device": "GPU",
          "tokens": 712}
    mb = pd.DataFrame([{"tokens": 16, "measured_speedup_ratio": 0.8}, {"tokens": 128, "measured_speedup_ratio": 0.9}])
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [_ch07_doc()])
    c7 = FP.committed_fp8_whole_call("gpu")
    v = c7["variants"].set_index("variant")
    assert v.bf16_twin_ms.to_dict() == {"fp8_static_compile_graph": 18.0, "fp8_all_compile_graph": 21.0}
    assert c7["elementwise_ms"] == {"fp8_all_compile_graph": (4.0, 8.0)} and c7["horizon"] == 10
    text = FP.fp8_paths_text(c7, None, c4, mb)
    assert "What the evidence shows" in text and "1.10×" in text and "0.83×" in text and "4.00 → 8.00 ms" in text
    # the kinds timed apart: GEMMs save 3 ms, the elementwise work costs 4: the scales are what is slow
    assert c7["gemm_ms"] == {"fp8_all_compile_graph": (9.0, 6.0)} and "GEMMs 9.00 → 6.00 ms" in text
    assert "is what makes dynamic-scale FP8 slower" in text
    split = FP.dynamic_scale_split(c7)
    assert split["variant"] == "fp8_all_compile_graph" and FP.scale_split_explains(split)
    assert "costs more than the GEMMs save" in FP.scale_split_words(split)
    # where the GEMMs do not get faster, the text does not conclude that the scales are the cost
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [_ch07_doc(gemm=(6.0, 9.0))])
    slow_gemm = FP.committed_fp8_whole_call("gpu")
    assert not FP.scale_split_explains(FP.dynamic_scale_split(slow_gemm))
    text = FP.fp8_paths_text(slow_gemm, None, c4, mb)
    assert "not established here" in text and "is what makes dynamic-scale FP8 slower" not in text
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [_ch07_doc()])
    assert "1.11–1.25× the bf16 time" in text and "Chapter 8's FP8 whole call: not measured" in text
    monkeypatch.setattr(results, "git_commit", lambda: "0123456789abcdef")
    table = FP.fp8_paths_table(c7, None, c4)
    assert len(table) == 3 and table.fp8_vs_bf16_time_ratio.iloc[0] == pytest.approx(0.8)
    assert len(table.columns) <= 8
    # every row says where and at which commit it was measured; chapter 4's row is this tree's commit
    assert list(table.measured_on) == ["GPU (0123456)", "GPU (abcdef1)", "GPU (abcdef1)"]
    assert table.path.iloc[0].endswith(", prefill") and table.path.iloc[1].endswith(", whole call")
    assert table[FP.SCALES_COMPILED].iloc[1] == "static (calibrated once) · compiled"
    c8 = {"device": "GPU", "commit": "", "fp8_graph_prefill_ms": 2.0, "graph_prefill_ms": 1.0,
          "fp8_graph_whole_ms": 3.0, "graph_whole_ms": 2.0}
    t8 = FP.fp8_paths_table(None, c8, {**c4, "commit": "fedcba9"})
    assert list(t8.measured_on) == ["GPU (fedcba9)", "GPU (commit unknown)", "GPU (commit unknown)"]
    assert t8[FP.SCALES_COMPILED].iloc[1] == "dynamic (per call) · uncompiled"

    monkeypatch.setattr(results, "load_all", lambda chapter=None: [_ch07_doc(fp8_table=False)])
    c7 = FP.committed_fp8_whole_call("gpu")
    assert c7["variants"].empty and c7["fastest_fp8_ms"] == 15.0
    text = FP.fp8_paths_text(c7, None, c4, mb)
    assert "not compared here" in text and "What the evidence shows" not in text
    assert len(FP.fp8_paths_table(c7, None, None)) == 1

    monkeypatch.setattr(results, "load_all", lambda chapter=None: [])
    assert FP.committed_fp8_whole_call("gpu") is None
    text = FP.fp8_paths_text(None, None, None)
    assert "Chapter 7's FP8 whole call: not measured" in text and "not timed here" in text
    assert FP.fp8_paths_table(None, None, None).empty


def test_committed_fp8_pipeline_reads_chapter8_rows():
    c8 = FP.committed_fp8_pipeline()
    if c8 is not None:
        assert c8["fp8_graph_prefill_ms"] > 0 and c8["graph_prefill_ms"] > 0
        from pi05perf import results

        head = results.measured("ch08_roads_to_20hz", "fp8_whole_speedup_ratio", c8["slug"])
        if head is not None:  # the rows it reads give the chapter's own headline
            assert abs(c8["fp8_whole_speedup_ratio"] - head) < 1e-6
