"""pi05perf.verdicts: each verdict names the figures read for it; a missing figure never crashes."""
import pandas as pd
import pytest

from pi05perf import results, verdicts


@pytest.fixture
def ledger(monkeypatch):
    heads = pd.DataFrame([
        {"chapter": "ch07_pipeline", "device": "GPU", "slug": "gpu", "source": "committed", "profile": "full",
         "key": "pipeline_2view_steps10_best_ms", "value": 20.5},
        {"chapter": "ch03_prefill_breakdown", "device": "GPU", "slug": "gpu", "source": "committed", "profile": "full",
         "key": "profiled_best_mlp_share_pct", "value": 64.7},
        {"chapter": "ch07_pipeline", "device": "Other", "slug": "other", "source": "committed", "profile": "full",
         "key": "pipeline_2view_steps10_best_ms", "value": 99.0}])
    monkeypatch.setattr(results, "headlines", lambda: heads)
    monkeypatch.setattr(results, "devices", lambda: [{"slug": "gpu", "device": "GPU"}, {"slug": "other", "device": "Other"}])
    monkeypatch.setattr(results, "load_all", lambda chapter=None: [])
    return verdicts.Ledger("gpu")


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
