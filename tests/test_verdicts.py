"""pi05perf.verdicts: each verdict names the figures read for it; a missing figure never crashes."""
import pandas as pd
import pytest

from pi05perf import prefill_bench, verdicts

from conftest import headline


@pytest.fixture
def ledger(ledger_of):
    return ledger_of([headline("ch07_pipeline", "pipeline_2view_steps10_best_ms", 20.5),
                      headline("ch03_prefill_breakdown", "profiled_best_mlp_share_pct", 64.7),
                      headline("ch07_pipeline", "pipeline_2view_steps10_best_ms", 99.0, "Other", "other")])


def test_each_claim_names_the_figures_read_since_the_previous_one(ledger):
    assert ledger.gpu("ch07_pipeline", "pipeline_2view_steps10_best_ms") == 20.5  # this run's, not another device's
    ledger.claim("S", "first", "held", "e")
    ledger.gpu("ch03_prefill_breakdown", "profiled_best_mlp_share_pct")
    ledger.claim("S", "second", "not held", "e", "ch01_flops")
    first, second = ledger.claims
    assert "pipeline_2view_steps10_best_ms" in first["chapters"] and "profiled_best" not in first["chapters"]
    assert "profiled_best_mlp_share_pct" in second["chapters"] and "see " in second["chapters"]
    assert ledger.device == "GPU" and ledger.chapters == ["ch03_prefill_breakdown", "ch07_pipeline"]


def test_a_figure_the_run_lacks_reads_as_not_measured(ledger):
    v = ledger.gpu("ch05_int4_fp4", "int4_prefill_kernel_tokens712_vs_bf16_ratio")
    assert v is None and verdicts.text(v) == f"({verdicts.NOT_YET})"
    assert verdicts.status_of(v, lambda _: "held") == verdicts.NOT_YET
    assert verdicts.status_of(2.0, lambda x: "held" if x > 1 else "not held") == "held"


def test_an_unknown_verdict_is_refused_and_counts_and_sections_render(ledger):
    with pytest.raises(ValueError):
        ledger.claim("S", "x", "probably", "e")
    ledger.claim("A", "one | two", "held", "e")
    ledger.claim("B", "three", "partly held", "e")
    md = ledger.sections_markdown()
    assert md.count("### ") == 2 and md.count("{list-table}") == 2 and "* - one | two" in md
    assert set(ledger.counts().conclusions_count) == {1}
    assert ledger.summary()[0].startswith("Of the seed's 2 conclusions")


def test_an_int4_prefill_claim_rests_on_gpu_kernel_times_never_on_an_eager_prefill():
    assert verdicts.int4_kernel_status(23.0, 3.06) == "not held"  # no INT4 kernel beats bf16 cuBLAS
    assert verdicts.int4_kernel_status(23.0, 0.7) == "partly held"  # the prefill-class kernel does
    assert verdicts.int4_kernel_status(None, 0.95) == "not held"  # one kernel measured, within 10% of bf16
    assert verdicts.int4_kernel_status(None, None) == verdicts.NOT_YET
    t = verdicts.int4_evidence("GPU", 23.0, 3.03)
    assert "tinygemm" in t and "23×" in t and "3.03×" in t and "one MLP's two matmuls" in t
    assert "host-bound" in t and "left out" in t  # the eager whole prefill is named as excluded, not used
    assert verdicts.NOT_YET in verdicts.int4_evidence("GPU", None, 3.03)


def test_down_proj_keeps_a_part_only_where_a_per_flop_gap_exists():
    assert verdicts.down_proj_status(0.96, 1.0) == "not held"  # no gap here, none in the seed's breakdown
    assert verdicts.down_proj_status(0.96, 1.78) == "partly held"  # the seed's own breakdown shows one on Thor
    assert verdicts.down_proj_status(0.7, 1.0) == "partly held"  # a gap on this GPU
    assert verdicts.down_proj_status(None, 1.0) == verdicts.NOT_YET
    assert verdicts.down_proj_status(None, 1.78) == "partly held"


def _latency(eager_ms=199.0, graph_ms=42.0, best_ms=18.1):
    shape = {"stage": "whole", "views": 2, "steps": 10, "horizon": 10, "text_tokens": 200}
    return pd.DataFrame([{**shape, "variant": "eager_fused", "median_ms": eager_ms},
                         {**shape, "variant": "graph", "median_ms": graph_ms},
                         {**shape, "variant": "compile_graph_splitkv", "median_ms": best_ms},
                         {**shape, "horizon": 50, "variant": "graph", "median_ms": 44.0},  # another shape
                         {**shape, "stage": "prefill", "variant": "graph", "median_ms": 8.4}])


def test_graph_gain_pairs_the_same_model_at_the_best_calls_shape():
    assert verdicts.graph_gain(_latency(), 18.1) == (199.0, 42.0)
    assert verdicts.graph_gain(_latency(), 17.0) is None  # the headline matches no row
    assert verdicts.graph_gain(_latency().iloc[1:], 18.1) is None  # no ungraphed twin
    assert verdicts.graph_gain(None, 18.1) is None


def _levels():
    return pd.DataFrame([
        {"fault": "int4, scales dropped", "layer_cos": 0.94, "model_cos": 0.012},
        {"fault": "nvfp4, scales dropped", "layer_cos": 0.97, "model_cos": 0.0008},
        {"fault": "int4, nibble order swapped", "layer_cos": -0.0006, "model_cos": 0.82},
        {"fault": "int4, group scales transposed", "layer_cos": 0.91, "model_cos": 0.92}])


def test_the_scale_fault_reading_sorts_the_seeds_runs_by_the_prefill_floor():
    runs = {"fast run": (0.58, 0.0004), "slow run": (10.2, -0.0005)}
    t = verdicts.scale_fault_reading(_levels(), runs, 4.15)
    assert "int4, nibble order swapped" in t and "scales dropped" not in t.split("(")[1]  # only layout faults at a layer
    fast, slow = t.index("fast run"), t.index("slow run")
    assert "layout fault, not dropped scales" in t[fast:slow] and "may be whole models" in t[slow:]
    only_slow = verdicts.scale_fault_reading(_levels(), runs, 0.1)  # a floor under both runs
    assert "layer or an MLP" not in only_slow and "fast run" in only_slow
    assert "not in this run" in verdicts.scale_fault_reading(None, runs, 4.15)


def _sweep(down_tflops):
    lin = prefill_bench.LINEAR_LAYOUT
    return pd.DataFrame([
        {"gemm": "down_proj", "layout": lin, "M": 712, "N": 2048, "tile": "128x184", "tiles": 72, "waves": 72 / 132,
         "tflops": down_tflops, "kernel": "k_splitK"},
        {"gemm": "down_proj", "layout": "split-K 2", "M": 712, "N": 2048, "tile": "128x184", "tiles": 144,
         "waves": 144 / 132, "tflops": down_tflops * 0.6, "kernel": "k2"},
        {"gemm": "gate_proj", "layout": lin, "M": 712, "N": 16384, "tile": "128x240", "tiles": 414, "waves": 414 / 132,
         "tflops": 600.0, "kernel": "k"}])


def test_down_proj_reads_chapter_3s_tile_comparison_from_its_table():
    from pi05perf.flops import waves

    mn = waves(712, 2048, 132, 128, 184)["sm_utilisation"] / waves(712, 16384, 132, 128, 240)["sm_utilisation"]
    gap = prefill_bench.down_proj_tiles(_sweep(0.95 * 600.0))  # a 5% gap: no tile model predicts it
    assert gap["ratio"] == pytest.approx(0.95) and gap["predicted"]["(M, N)"] == pytest.approx(mn)
    assert gap["explained"] == [] and gap["best_layout"] == prefill_bench.LINEAR_LAYOUT and not gap["same_kernel"]
    wave = prefill_bench.down_proj_tiles(_sweep(mn * 600.0))  # the gap the last wave predicts
    assert wave["explained"] == ["(M, N)"]
    assert prefill_bench.down_proj_tiles(None) is None
    assert prefill_bench.down_proj_tiles(_sweep(500.0).iloc[:2]) is None  # no gate_proj row


def test_path_of_names_the_row_a_headline_figure_timed():
    t = pd.DataFrame({"path": ["ours eager", "ours compile_graph", "lerobot_compiled (2v, H10)"],
                      "median_ms": [174.9, 20.7864, 71.84]})
    assert verdicts.path_of(t, 20.7864) == "ours compile_graph"
    assert verdicts.path_of(t, 18.0) is None and verdicts.path_of(None, 20.0) is None
    assert verdicts.path_of(t.rename(columns={"path": "variant"}), 71.84, name="variant") == "lerobot_compiled (2v, H10)"


def test_a_cited_table_is_named_in_the_next_claims_figures(ledger):
    ledger.rows("ch03_prefill_breakdown", "matmul_sweep", cite=True)
    ledger.rows("ch07_pipeline", "simulation")  # read, not cited
    ledger.claim("S", "x", "held", "e")
    assert "`table matmul_sweep`" in ledger.claims[0]["chapters"] and "simulation" not in ledger.claims[0]["chapters"]


def test_a_split_k_down_proj_kernel_is_not_judged_by_a_no_split_wave_model():
    gap = prefill_bench.down_proj_tiles(_sweep(0.95 * 600.0))  # down_proj's kernel is "k_splitK"
    assert verdicts.split_kernels(gap) == ["down_proj"]
    t = verdicts.down_proj_reading(gap)
    assert "split-K" in t and "k_splitK" in t and "factor" in t and "unexplained" in t
    assert "does not explain" not in t and "within 15%" not in t  # the model is not presented as decisive
    plain = prefill_bench.down_proj_tiles(_sweep(0.95 * 600.0).replace({"kernel": {"k_splitK": "k1"}}))
    assert verdicts.split_kernels(plain) == []
    assert "neither is within 15%" in verdicts.down_proj_reading(plain)  # a no-split kernel: the model applies
    assert verdicts.down_proj_reading(None) == "Chapter 3's tile comparison is not in this run."


def test_the_int4_premise_is_judged_by_chapter_5s_rule():
    assert verdicts.int4_premise_status(1.30, 4) == "not held"  # under half the claimed speed-up
    assert verdicts.int4_premise_status(3.0, 4) == "partly held"
    assert verdicts.int4_premise_status(3.8, 4) == "held"


def test_the_call_floor_is_chapter_9s_floor_of_the_same_call():
    from pi05perf import peers

    pf = peers.per_floor_table()
    for prec in ("fp8", "fp8+fp4", "bf16"):
        row = pf[(pf.platform == "Jetson AGX Thor") & (pf.views == 2) & (pf.steps == 10)
                 & (pf.precision.map(peers.precision_class) == prec)]
        assert len(row), prec
        r = row.iloc[0]  # each build at the configuration chapter 9 records for it
        assert peers.spec_floor_ms("Jetson AGX Thor", prec, int(r.image_slots), 10, text_tokens=int(r.text_tokens),
                                   horizon=int(r.horizon)) == pytest.approx(float(r.floor_ms))
    assert peers.spec_floor_ms("Jetson AGX Thor", "fp8", 2, 10) < peers.spec_floor_ms(
        "Jetson AGX Thor", "bf16", 2, 10)


def test_the_fastest_quoted_figure_is_the_minimum_of_chapter_9s_reference_rows(monkeypatch):
    from pi05perf import peers

    lat = pd.DataFrame([
        {"peer": "A", "platform": "Thor", "views": 2, "steps": 10, "precision": "fp8", "value": 44.0, "source": "a"},
        {"peer": "B", "platform": "Thor", "views": 2, "steps": 10, "precision": "fp8+fp4", "value": 27.1, "source": "b"},
        {"peer": "C", "platform": "Thor", "views": 1, "steps": 10, "precision": "fp8", "value": 20.0, "source": "c"},
        {"peer": "D", "platform": "Other", "views": 2, "steps": 10, "precision": "bf16", "value": 10.0, "source": "d"}])
    monkeypatch.setattr(peers, "published_latencies", lambda: lat)
    best = verdicts.fastest_quoted("Thor", views=2, steps=10)
    assert best == {"peer": "B", "precision": "fp8+fp4", "latency_ms": 27.1, "source": "b"}
    assert verdicts.fastest_quoted("Thor", views=3, steps=10) is None


def test_a_quoted_figures_shape_is_read_from_chapter_9s_reference_data():
    from pi05perf import peers

    lat = peers.published_latencies()
    r = lat[lat.platform == "RTX 4090"].iloc[0]
    words = verdicts.quoted_shape_words(r.peer[:6], "RTX 4090", int(r.views), int(r.steps))
    assert f"{int(r.text_tokens)} prompt tokens and horizon {int(r.horizon)}" in words
    assert ("ASSUMED" in words) == ("ASSUMED" in r.configuration)
    assert verdicts.quoted_shape_words("no such peer", "RTX 4090", 2, 10) == ""


def test_tables_are_cited_only_where_a_verdict_uses_them(ledger, monkeypatch):
    from pi05perf import results

    assert verdicts.seed_prefix_fit(ledger) is None
    assert "not in this run" in verdicts.fp8_kernel_evidence(ledger) and ledger.used == []  # nothing read, nothing cited
    held = [{"key": "pipeline_baseline_kv_ms", "quoted_ms": 54.0, "fitted_ms": 53.9}]
    doc = {"chapter": "ch08_roads_to_20hz", "slug": "gpu", "source": "committed", "tables": {"thor_heldout": held}}
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [doc])
    fit = verdicts.seed_prefix_fit(verdicts.Ledger("gpu"))
    assert (fit["quoted_ms"], fit["fitted_ms"], fit["eff_compute"]) == (54.0, 53.9, None)
    cited = verdicts.Ledger("gpu")
    verdicts.seed_prefix_fit(cited)
    assert cited.used == ["ch08_roads_to_20hz:table thor_heldout (pipeline_baseline_kv_ms)"]  # the efficiencies: not saved
