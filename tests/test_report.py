"""report.table: every DataFrame a page shows is formatted for people."""
import math

import pandas as pd
import pytest

from pi05perf import report


@pytest.mark.parametrize("value, text", [
    (2.896847e12, "2,896,847,000,000"), (130.1, "130"), (1.391, "1.39"), (0.15, "0.150"),
    (0.000123, "0.000123"), (0, "0"), (None, "–"), (float("nan"), "–"), (12345.6, "12,346"),
])
def test_num(value, text):
    assert report.num(value) == text


def test_si_and_cos():
    assert report.si(2.9e12, "FLOP") == "2.90 TFLOP"
    assert report.si(3.96e9, "B") == "3.96 GB"
    assert report.cos(0.99987) == "0.99987"
    assert report.cos(0.5) == "0.5000"
    assert report.fmt(0.0, "ms") == "0 ms" and report.fmt(None) == "n/a"


def test_table_headers_units_no_index_and_missing_footnote():
    df = pd.DataFrame({"prefill_best_ms": [1.2345, None], "matmul_tflops": [512.3, 1.0],
                       "weights_bytes": [3.96e9, 1e3], "out_cos": [0.99987, math.nan],
                       "Thor (quoted)": ["x", None]}, index=pd.RangeIndex(2))
    t = report.table(df)
    assert t.headers == ["prefill best (ms)", "matmul (TFLOP/s)", "weights", "out (cosine)", "Thor (quoted)"]
    assert t.rows[0] == ["1.23", "512", "3.96 GB", "0.99987", "x"]
    assert t.rows[1][0] == "–" and report.MISSING_NOTE in t.footnotes
    html = t._repr_html_()
    for bad in ("NaN", "None", "e+", "rows ×"):
        assert bad not in html


def test_short_cells_stay_on_one_line_and_long_text_may_wrap():
    t = report.table(pd.DataFrame({"floor_ms": [0.205], "kernel": ["nvjet_sm90_tst_128x184_64x5_2x1_v_bz_coopA"]}))
    html = t._repr_html_()
    assert "<td class='pi05-short'>0.205</td>" in html
    assert "<td>nvjet_sm90" in html


def test_headers_may_break_after_an_underscore_once():
    t = report.table(pd.DataFrame({"compile_graph_splitkv time_ms": [1.0]}))
    html = t._repr_html_()
    assert "<th>compile_<wbr>graph_<wbr>splitkv time (ms)</th>" in html
    assert report.wrap_hints(html) == html  # staging a page twice changes nothing


def test_meaningful_index_becomes_a_column():
    df = pd.DataFrame({"value_ms": [1.0]}, index=pd.Index(["a"], name="stage"))
    assert report.table(df).headers == ["stage", "value (ms)"]


def test_show_routes_dataframes(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    report.show(pd.DataFrame({"a_ms": [1.0]}))
    assert isinstance(shown[0], report.Table)


def test_verdict_badges_are_text():
    badge = report.verdict("not held")
    assert "not held" in badge and "pi05-badge" in badge
    assert all(ord(ch) < 0x2000 for ch in badge)  # no emoji
    with pytest.raises(ValueError):
        report.verdict("maybe")


def test_run_banner_names_device_commit_date():
    from pi05perf.params import resolve

    smoke = resolve("ch01_flops", profile="smoke", device="cpu")
    text = report.run_banner(smoke, "CPU", "abcdef1234", "2026-11-30T01:00:00")
    assert "Smoke run" in text and "abcdef1" in text and "2026-11-30" in text
    full = smoke.__class__(**{**smoke.__dict__, "profile": "full"})
    text = report.run_banner(full, "NVIDIA H200", "abcdef1234", "2026-11-30")
    assert "Measured on <b>NVIDIA H200</b>, full profile, commit <code>abcdef1</code>, 2026-11-30" in text


def test_point_labels_do_not_overlap():
    from pi05perf.charts import place_labels

    df = pd.DataFrame({"x": [10, 10.5, 11, 11.2, 200], "y": [100, 101, 99, 100, 5],
                       "op": ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]})
    out = place_labels(df, "x", "y", "op", x_log=True, y_log=True, height=320)
    ys = sorted(math.log10(v) for v in out.label_y[:4])
    gap_px = min(b - a for a, b in zip(ys, ys[1:])) / (math.log10(101) - math.log10(5)) * 320
    assert gap_px >= 11  # one line apart at least
    assert out.label_y.iloc[4] == pytest.approx(5)  # a lone point keeps its place


def test_headline_figures_never_crash_on_a_missing_key():
    from pi05perf import claims

    heads = pd.DataFrame([{"chapter": "ch02_roofline", "device": "GPU X", "slug": "gpu-x", "source": "committed",
                           "profile": "full", "key": "copy_gbps", "value": 3000.0, "commit": "abc", "date": "d"}])
    figs = claims.Figures(heads)
    assert figs.get("ch02_roofline", "copy_gbps", "gpu-x") == 3000.0
    assert figs.get("ch09_peers", "ours_vs_lerobot_compiled_speedup_ratio", "gpu-x") is None
    df = claims.figure_table([{"slug": "gpu-x", "device": "GPU X", "commit": "abc1234"}], figs)
    assert list(df.columns) == ["figure", "Thor (quoted)", "quoted from", "GPU X (abc1234)", "floor"]
    assert df.iloc[0]["GPU X (abc1234)"] == 3000.0 and len(df) == len(claims.HEADLINE_FIGURES)
    assert all(f.key.endswith(("_ms", "_gbps", "_tflops", "_pct", "_ratio", "_hz")) for f in claims.HEADLINE_FIGURES)


def test_chapter_links_come_from_the_toc():
    from pi05perf import claims
    from pi05perf.book import toc_order

    first = next(n for n in toc_order() if n.startswith("ch"))
    assert claims.chapter_link(first) == f"[chapter 1]({first}.ipynb)"
    assert claims.chapter_link("ch99_not_in_toc") == "ch99_not_in_toc"


def test_headlines_everywhere_one_row_per_key_one_column_per_device(monkeypatch):
    from pi05perf import results
    from pi05perf.params import resolve

    rows = [("GPU A", "gpu-a", "committed", "full", "prefill712_best_ms", 6.4512, "abcdef1234"),
            ("GPU B", "gpu-b", "committed", "full", "prefill712_best_ms", 3.2, "1234567890"),
            ("GPU B", "gpu-b", "committed", "full", "fp8_memory_bound_tokens", 64.0, "1234567890"),
            ("cpu", "cpu", "this build", "smoke", "prefill712_best_ms", 0.5, "ffffffffff")]
    df = pd.DataFrame([dict(chapter="ch03", device=d, slug=s, source=src, profile=p, key=k, value=v, commit=c, date="")
                       for d, s, src, p, k, v, c in rows])
    monkeypatch.setattr(results, "headlines", lambda chapter=None: df)
    monkeypatch.setitem(report._CURRENT, "run", resolve("ch01_flops", profile="smoke", device="cpu"))
    smoke = report.headlines_everywhere("ch03")
    assert smoke.headers == ["figure", "GPU A (abcdef1)", "GPU B (1234567)", "cpu (smoke run, fffffff)"]
    assert smoke.rows[0] == ["prefill712 best (ms)", "6.45", "3.20", "0.500"]
    assert smoke.rows[1] == ["fp8 memory bound (tokens)", "–", "64", "–"]
    monkeypatch.setitem(report._CURRENT, "run", resolve("ch01_flops", profile="smoke", device="cpu").__class__(
        **{**resolve("ch01_flops", profile="smoke", device="cpu").__dict__, "profile": "full"}))
    assert len(report.headlines_everywhere("ch03").headers) == 3  # a full run's page: committed devices only


def test_reader_banner_names_every_committed_device_and_says_nothing_was_measured():
    from pi05perf.report import reader_banner

    devs = [{"slug": "b", "device": "GPU B", "commit": "abc1234", "date": "2026-11-30T01:00:00", "chapters": ["x"]},
            {"slug": "a", "device": "GPU A", "commit": "def5678", "date": "2026-11-27T01:00:00", "chapters": ["x", "y"]}]
    text = reader_banner(devs, "2026-11-30")
    assert "GPU B" in text and "GPU A" in text and "abc1234" in text and "def5678" in text
    assert "data-device='GPU B'" in text  # the browser test reads the newest device from here
    assert "Nothing on it was measured" in text
    assert "none yet" in reader_banner([], "2026-11-30")


def test_reader_banner_names_chapters_rerun_at_another_commit():
    from pi05perf.report import reader_banner

    dev = {"slug": "b", "device": "GPU B", "commit": "abc1234", "date": "2026-11-30T01:00:00",
           "chapters": ["ch01_flops", "ch02_roofline", "ch03_prefill_breakdown"],
           "commits": {"abc1234": ["ch01_flops", "ch02_roofline"], "fff0000": ["ch03_prefill_breakdown"]}}
    assert "chapter 3 at <code>fff0000</code>" in reader_banner([dev], "2026-11-30")


def test_fp8_memory_bound_verdict_never_reads_overhead_as_a_law():
    from pi05perf.claims import fp8_memory_bound_status

    assert fp8_memory_bound_status(1.6) == "not held"
    assert fp8_memory_bound_status(0.83) == "partly held"  # a path that does not realise the bytes
    assert fp8_memory_bound_status(None) == "partly held"


def test_a_backquoted_identifier_in_a_table_cell_is_set_as_code_that_may_break():
    from pi05perf.report import wrap_hints

    once = wrap_hints("<table><tr><td>chapter 7: `fp8_all_graph`</td><td>plain_text</td></tr></table>")
    assert "<code>fp8_<wbr>all_<wbr>graph</code>" in once and "`" not in once
    assert "<td class='pi05-short'>plain_text</td>" in once  # no backquotes: left as it was
    assert wrap_hints(once) == once  # staging may apply it again


def test_a_quoted_thor_figure_from_a_non_fp8_stack_is_not_labelled_fp8():
    """A key figure whose label says FP8 must not present a quoted Thor timing that
    thor_timings.csv lists at another precision as an FP8 one: its source must say it is not FP8."""
    from pathlib import Path

    import pandas as pd

    from pi05perf import claims

    timings = pd.read_csv(Path(__file__).resolve().parents[1] / "data/reference/thor_timings.csv").set_index("key")
    checked = 0
    for f in claims.HEADLINE_FIGURES:
        if not f.thor_key or f.thor_key not in timings.index or "fp8" not in f.label.lower():
            continue
        if "fp8" not in str(timings.loc[f.thor_key, "precision"]).lower():
            checked += 1
            assert "not fp8" in f.thor_source.lower(), (f.label, f.thor_source)
    assert checked  # the TurboPi prefix row (bf16 in thor_timings.csv) is one such figure


def test_a_shape_cell_breaks_only_between_its_factors():
    from pi05perf.report import wrap_hints

    once = wrap_hints("<table><tr><td>8192x16384x16384</td><td>712x2048</td></tr></table>")
    assert "<td class='pi05-short'>8192x<wbr>16384x<wbr>16384</td>" in once and "712x<wbr>2048" in once
    assert wrap_hints(once) == once


def test_truth_values_read_as_words_in_every_table():
    import numpy as np

    t = report.table(pd.DataFrame({"agree": [True, False], "flag": [np.bool_(True), None]}))
    assert t.rows == [["yes", "yes"], ["no", report.DASH]]
    assert "True" not in repr(t) and "False" not in repr(t)
