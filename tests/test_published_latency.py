"""Quoted latencies beside this device's: the quoted rows come from the reference table and the
last row (or series) is this device's measurement."""
import re

import pandas as pd
import torch

from pi05perf import peers, pipeline, published_latency, reference


def test_anchors_end_with_this_device_and_quote_the_seed():
    stages = pd.Series({"vision": 1.0, "prefill": 2.0, "denoise": 3.0})
    t = published_latency.anchors_table("graph", 6.5, "cpu", torch.bfloat16, pipeline.Shape(2, 8, 10, 10), stages)
    assert t.iloc[0].total_ms == reference.quoted("pipeline_baseline_total_ms")
    last = t.iloc[-1]
    assert last.kind == "this device (measured)" and last.total_ms == 6.5 and last.denoise_ms == 3.0
    assert last.configuration == "bfloat16, 2 views, 10 steps"


def test_by_views_leaves_an_unmeasured_view_count_empty():
    best = pd.Series({(1, 10): 4.0, (2, 10): 5.0})
    t = published_latency.by_views_table(best, [1, 2, 3], 10, "cpu", path="graph")
    ours = t[t.series == "this device (measured)"].set_index("views")
    assert len(t) == 9 and ours.ms[1] == 4.0 and pd.isna(ours.ms[3]) and set(ours.source) == {"graph, cpu"}


def anchors(**flashrt):
    stages = pd.Series({"vision": 1.0, "prefill": 2.0, "denoise": 3.0})
    t = published_latency.anchors_table("graph", 6.5, "cpu", torch.bfloat16, pipeline.Shape(2, 8, 10, 10), stages)
    for column, value in flashrt.items():
        t.loc[t.source == "FlashRT", column] = value
    return t


def test_a_breakdown_is_flagged_only_when_its_stages_exceed_its_total():
    fr = anchors().set_index("source").loc["FlashRT"]
    over = fr.vision_ms + fr.prefill_ms + fr.denoise_ms > 1.01 * fr.total_ms
    notes = published_latency.breakdown_notes(anchors())
    assert len(notes) == int(over) and all(n.startswith("FlashRT") for n in notes)  # as quoted: read from the data
    assert published_latency.breakdown_notes(anchors(total_ms=fr.vision_ms + fr.prefill_ms + fr.denoise_ms)) == []
    made_up = published_latency.breakdown_notes(anchors(vision_ms=10.0, prefill_ms=10.0, denoise_ms=10.0, total_ms=20.0))
    assert len(made_up) == 1 and "30.0 ms, 10.0 ms (50%) more than its 20 ms total" in made_up[0]
    assert published_latency.breakdown_notes(anchors(total_ms=float("nan"))) == []  # no total: nothing to check


def test_flashrts_note_adds_what_its_source_lists_beside_the_stages():
    q = reference.quoted
    stages = q("flashrt_siglip_ms") + q("flashrt_prefix_ms") + q("flashrt_denoise_ms")
    adjusted = (stages - q("flashrt_breakdown_graph_pipelining_saving_ms") + q("flashrt_breakdown_host_ms")
                - q("flashrt_breakdown_graph_autotune_saving_ms"))
    notes = published_latency.breakdown_notes(anchors(total_ms=20.0))  # any total the stages exceed
    assert len(notes) == 1 and f"come to {adjusted:.1f} ms" in notes[0]


def test_a_quoted_figure_takes_the_configuration_of_the_peers_row_that_names_its_key(monkeypatch):
    from pi05perf.thor_fit import THOR_ANCHORS

    lat = peers.published_latencies()
    lat["key"] = lat.source.str.extract(r"anchors\.csv (\w+)", expand=False)
    for r in lat.dropna(subset=["key"]).itertuples():
        c = published_latency.recorded_config(r.key, r.platform)
        assert (c["image_slots"], c["text_tokens"], c["note"]) == (r.image_slots, r.text_tokens, r.configuration)
    # a key no peers row names: its anchor's configuration, even where its value equals another row's
    a = next(a for a in THOR_ANCHORS if a.key not in set(lat.key))
    monkeypatch.setattr(peers, "published_latencies", lambda: lat.assign(value=reference.quoted(a.key)))
    c = published_latency.recorded_config(a.key, "Jetson AGX Thor")
    assert (c["image_slots"], c["text_tokens"]) == (a.image_slots, a.text_tokens)


def test_quoted_rows_show_the_configuration_their_source_records_and_say_what_is_assumed():
    stages = pd.Series({"vision": 1.0, "prefill": 2.0, "denoise": 3.0})
    t = published_latency.anchors_table("graph", 6.5, "cpu", torch.bfloat16, pipeline.Shape(2, 8, 10, 10), stages)
    dex = t[t.source.str.startswith("Dexmal")].iloc[0]
    lat = peers.published_latencies()
    row = lat[(lat.platform == "RTX 4090") & (lat.views == 2)].iloc[0]  # read, not pinned: peers.csv decides
    assert dex.recorded_as.startswith(f"{row.image_slots}×256 + {row.text_tokens} tokens, h{row.horizon}")
    assumed = bool(re.search(r"assumed|not stated", row.configuration, re.IGNORECASE))
    assert dex.recorded_as.endswith("(partly assumed)") == assumed  # marked exactly where its note says so
    assert t.iloc[0].recorded_as.endswith("h10")  # the seed states its configuration
    assert t.iloc[-1].recorded_as == "2×256 + 8 tokens, h10"  # this device: the shape it ran
    notes = published_latency.config_notes(t)
    assert any(n.startswith("Dexmal") and "ASSUMED" in n for n in notes)
    assert not any(n.startswith("seed") for n in notes)
