"""pi05perf.seed_claims: every section of the seed is judged, on any run, and each verdict names its figures."""
import pandas as pd
import pytest

from pi05perf import seed_claims, seed_facts, verdicts
from pi05perf.report import VERDICTS

from conftest import headline


@pytest.fixture
def ledger(ledger_of):
    return ledger_of([headline("ch07_pipeline", "pipeline_2view_steps10_best_ms", 20.5),
                      headline("ch03_prefill_breakdown", "profiled_best_mlp_share_pct", 64.7)])


@pytest.fixture(scope="module")
def facts():
    return seed_facts.seed_facts()


def test_every_section_is_judged_in_the_pages_order(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    t = ledger.table()
    sections = list(dict.fromkeys(t.section))
    assert len(sections) == len(seed_claims.SECTIONS)
    assert sections[0].endswith("where the latency comes from") and sections[-1].endswith("final conclusions")
    assert set(t.status) <= {*VERDICTS, verdicts.NOT_YET}
    assert t.short.str.len().gt(0).all() and t.evidence.str.len().gt(0).all()


def test_a_claim_on_a_figure_the_run_lacks_says_so_and_one_it_has_cites_it(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    t = ledger.table().set_index("short")
    fewer_layers = t.loc["18 → 12 layers gives ~1.5×"]  # the run has no chapter 8
    assert fewer_layers.status == verdicts.NOT_YET and f"({verdicts.NOT_YET})" in fewer_layers.evidence
    # a Thor share: the run's profiled share is read and cited, as context, never as the test
    mlp = t.loc["the MLP is 90% of the prefill time"]
    assert mlp.status == "not testable here" and "65%" in mlp.evidence and "`profiled_best_mlp_share_pct`" in mlp.chapters


def test_the_closing_paragraph_counts_the_verdicts_and_names_the_fastest_path(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    text = seed_claims.closing_paragraph(ledger, facts)
    assert text.startswith(f"Of the seed's {len(ledger.claims)} conclusions")
    if facts.quoted_20hz:  # the figures the 20 Hz verdicts rest on, beside this run's fastest call
        assert f"{facts.nv4_mean:g} ms" in text and f"{facts.fr:g} ms" in text and "call in 20.5 ms" in text
    # chapter 9 is not in this run: the like-with-like comparison with LeRobot says so
    assert "LeRobot's compiled pi0.5" in text and f"{verdicts.NOT_YET}." in text and "less GPU time" not in text


def test_no_verdict_reads_an_eager_prefill_or_the_toy_simulation(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    used = " ".join(ledger.table().chapters)
    assert "int4wo_prefill_vs_bf16_ratio" not in used  # chapter 5's whole INT4 prefill is timed eager only
    assert "sim_" not in used  # the simulation shows mechanisms, never a figure for pi0.5
    t = ledger.table().set_index("short")
    assert "host-bound" in t.loc["INT4 gives 4×"].evidence and "host-bound" in t.loc["Plan B: 17 ms prefill, 7.4 Hz"].evidence


def test_the_mlp_share_is_read_against_both_of_the_seeds_totals(ledger, facts):
    from pi05perf import reference

    seed_claims.judge_all(ledger, facts)
    ev = ledger.table().set_index("short").loc["the MLP is 90% of the prefill time"].evidence
    q = reference.quoted
    on_sum = round(100 * q("kv_mlp_total_ms") / q("kv_breakdown_estimated_total_ms"))
    on_measured = round(100 * q("kv_mlp_total_ms") / q("kv_breakdown_measured_total_ms"))
    assert f"{on_sum}%" in ev and f"{on_measured}%" in ev and "not 90%" not in ev


def test_cuda_graphs_are_judged_on_the_same_model_with_and_without_a_graph(ledger_of, facts):
    shape = {"stage": "whole", "views": 2, "steps": 10, "horizon": 10, "text_tokens": 200}
    latency = [{**shape, "variant": "eager_fused", "median_ms": 199.0}, {**shape, "variant": "graph", "median_ms": 42.0},
               {**shape, "variant": "compile_graph_splitkv", "median_ms": 18.1}]
    doc = {"chapter": "ch07_pipeline", "slug": "gpu", "source": "committed", "tables": {"latency": latency}, "rows": []}
    ledger = ledger_of([headline("ch07_pipeline", "pipeline_2view_steps10_best_ms", 18.1)], [doc])
    seed_claims.quantization_validation(ledger, facts)
    graphs = ledger.table().set_index("short").loc["CUDA graphs bring nothing"]
    assert graphs.status == "partly held" and "4.7×" in graphs.evidence and "host overhead" in graphs.evidence
    # the two whole calls compared are the figures used; the headline best only locates their shape
    assert "`table latency (whole calls eager_fused and graph" in graphs.chapters
    assert "pipeline_2view_steps10_best_ms" not in graphs.chapters
    doc["tables"]["latency"] = latency[1:]  # no ungraphed twin: not judged
    ledger = verdicts.Ledger("gpu")
    seed_claims.quantization_validation(ledger, facts)
    assert ledger.table().set_index("short").loc["CUDA graphs bring nothing"].status == verdicts.NOT_YET


def test_the_memory_bound_verdict_counts_the_mlps_activation_traffic(ledger_of, facts):
    from dataclasses import replace

    def judged(rates: dict[str, float]) -> pd.Series:
        ledger = ledger_of([headline("ch02_roofline", "copy_gbps", 4000.0)])
        seed_claims.latency_sources(ledger, replace(facts, seed_mlp_traffic_gbps=rates))
        return ledger.table().set_index("short").loc["the prefill is memory-bound"]

    bw, parts = facts.seedhw.bandwidth_gbps, list(facts.seed_mlp_traffic_gbps)
    at = judged({p: bw for p in parts})  # every part streams at the copy rate
    assert at.status == "held" and at.evidence.count(f"about the {bw:g}") == len(parts) and "cannot separate" in at.evidence
    split = judged({parts[0]: 2 * bw, parts[1]: bw / 2, "whole MLP": bw})
    assert split.status == "partly held" and f"above the {bw:g}" in split.evidence and f"below the {bw:g}" in split.evidence
    slow = judged({p: bw / 2 for p in parts})  # the bytes cannot explain the time
    assert slow.status == "partly held" and "cannot separate" not in slow.evidence and "do not explain" in slow.evidence
    assert f"{facts.seed_mlp_gbps:.0f} GB/s" in at.evidence and "not DRAM" not in at.evidence


def test_attention_share_of_thor_is_not_judged_on_a_gpu_profile(ledger_of, facts):
    # the rule: a GPU's profiled share is context, never the test, whether it agrees with the seed's 5% or not
    for share in (5.0, 40.0):
        ledger = ledger_of([headline("ch03_prefill_breakdown", "profiled_best_attention_share_pct", share)])
        seed_claims.phase0_findings(ledger, facts)
        row = ledger.table().set_index("short").loc["attention is 5%"]
        assert row.status == "not testable here" and f"{share:.1f}%" in row.evidence


def test_the_closing_paragraph_compares_kernel_time_and_labels_the_wall_ratio_host_overhead(ledger_of, facts):
    ledger = ledger_of([headline("ch09_peers", "ours_best_2view_steps10_ms", 20.0),
                        headline("ch09_peers", "lerobot_compiled_2view_steps10_ms", 80.0),
                        headline("ch09_peers", "ours_best_2view_steps10_kernels_ms", 16.0),
                        headline("ch09_peers", "lerobot_compiled_2view_steps10_kernels_ms", 24.0)])
    seed_claims.judge_all(ledger, facts)
    text = seed_claims.closing_paragraph(ledger, facts)
    assert "1.50× less GPU time" in text and "4.00×" in text and "host overhead" in text
