"""pi05perf.seed_claims: every section of the seed is judged, on any run, and each verdict names its figures."""
import pandas as pd
import pytest

from pi05perf import results, seed_claims, seed_facts, verdicts
from pi05perf.report import VERDICTS


@pytest.fixture
def ledger(monkeypatch):
    heads = pd.DataFrame([
        {"chapter": "ch07_pipeline", "device": "GPU", "slug": "gpu", "source": "committed", "profile": "full",
         "key": "pipeline_2view_steps10_best_ms", "value": 20.5},
        {"chapter": "ch03_prefill_breakdown", "device": "GPU", "slug": "gpu", "source": "committed", "profile": "full",
         "key": "profiled_best_mlp_share_pct", "value": 64.7}])
    monkeypatch.setattr(results, "headlines", lambda: heads)
    monkeypatch.setattr(results, "devices", lambda: [{"slug": "gpu", "device": "GPU"}])
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [])
    return verdicts.Ledger("gpu")


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


def test_a_claim_on_a_figure_the_run_lacks_says_so_and_one_it_has_is_judged(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    t = ledger.table().set_index("short")
    fewer_layers = t.loc["18 → 12 layers gives ~1.5×"]  # the run has no chapter 8
    assert fewer_layers.status == verdicts.NOT_YET and f"({verdicts.NOT_YET})" in fewer_layers.evidence
    mlp = t.loc["the MLP is 90% of the prefill time"]  # 64.7% measured: under the 75% the claim needs
    assert mlp.status == "partly held" and "65%" in mlp.evidence and "`profiled_best_mlp_share_pct`" in mlp.chapters


def test_the_closing_paragraph_counts_the_verdicts_and_names_the_fastest_path(ledger, facts):
    seed_claims.judge_all(ledger, facts)
    text = seed_claims.closing_paragraph(ledger, facts)
    assert text.startswith(f"Of the seed's {len(ledger.claims)} conclusions")
    if facts.quoted_20hz:
        assert f"{facts.fastest_ms:g} ms" in text and "runs it in 20.5 ms" in text
    assert "LeRobot" not in text  # chapter 9 is not in this run: no like-with-like comparison to state
