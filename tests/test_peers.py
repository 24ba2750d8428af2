"""Published peers per unit of hardware, and the checks every timed peer path passes."""
import math

import pandas as pd
import pytest
import torch

from pi05perf import lerobot_pi05, peers, torchao_bench


def test_peers_csv_rows_have_sources_and_known_hardware():
    df = peers.load_peers()
    assert set(df.kind) == {"hardware", "latency"}
    assert (df.source.str.len() > 0).all()
    hw = peers.hardware_specs()
    for col in ("bandwidth_gbps", "bf16_dense_tflops", "fp8_dense_tflops", "sm_count"):
        assert hw[col].notna().all() and (hw[col] > 0).all(), col
    assert set(peers.published_latencies().platform) <= set(hw.index)


def test_precision_class_takes_the_lowest_precision_named():
    assert peers.precision_class("bf16") == "bf16"
    assert peers.precision_class("fp8 (unstated)") == "fp8"
    assert peers.precision_class("fp8+fp4") == "fp8+fp4"


def test_floor_is_the_larger_of_compute_and_memory_per_stage():
    # infinite compute: the floor is bytes / bandwidth; doubling bandwidth halves it
    mem = peers.floor_ms(2, 10, 1000.0, 1e12)
    assert peers.floor_ms(2, 10, 2000.0, 1e12) == pytest.approx(mem / 2)
    # infinite bandwidth: the floor is FLOPs / rate
    comp = peers.floor_ms(2, 10, 1e12, 100.0)
    assert peers.floor_ms(2, 10, 1e12, 200.0) == pytest.approx(comp / 2)
    # 1-byte weights cost less than 2-byte weights, more views and steps cost more
    assert peers.floor_ms(2, 10, 1000.0, 1e12, weight_bytes=1.0) < mem
    assert peers.floor_ms(3, 10, 300.0, 100.0) > peers.floor_ms(2, 10, 300.0, 100.0)
    assert peers.floor_ms(2, 10, 300.0, 100.0) > peers.floor_ms(2, 5, 300.0, 100.0)


def test_per_floor_table_divides_by_the_floor_of_the_same_work():
    ours = [{"peer": "ours", "platform": "H200 SXM", "views": 2, "steps": 10, "precision": "bf16",
             "latency_ms": 20.0}]
    df = peers.per_floor_table(ours)
    assert len(df) == len(peers.published_latencies()) + 1
    assert (df.x_floor_ratio == df.latency_ms / df.floor_ms).all()
    row = df[df.peer == "ours"].iloc[0]
    hw = peers.hardware_specs().loc["H200 SXM"]
    assert row.floor_ms == pytest.approx(peers.floor_ms(2, 10, hw.bandwidth_gbps, hw.bf16_dense_tflops))
    # an FP8 row is held to the FP8 floor (1-byte weights, FP8 rate), which is lower than bf16's
    fp8 = df[(df.precision == "fp8") & (df.platform == "Jetson AGX Thor")].iloc[0]
    thor = peers.hardware_specs().loc["Jetson AGX Thor"]
    assert fp8.floor_ms < peers.floor_ms(int(fp8.views), 10, thor.bandwidth_gbps, thor.bf16_dense_tflops)


def test_each_published_floor_is_of_the_configuration_peers_csv_records():
    lat = peers.published_latencies()
    for col in peers.CONFIG_COLUMNS:
        assert lat[col].dtype.kind == "i", col
    df = peers.per_floor_table([{"peer": "ours", "platform": "H200 SXM", "views": 3, "steps": 10, "precision": "bf16",
                                 "latency_ms": 20.0}])
    hw = peers.hardware_specs()
    for r in df[df.source == "published"].itertuples():
        assert r.floor_ms == pytest.approx(peers.spec_floor_ms(r.platform, r.precision, r.image_slots, r.steps, hw,
                                                               text_tokens=r.text_tokens, horizon=r.horizon))
    ours = df[df.peer == "ours"].iloc[0]  # measured rows: their own views, 200 prompt tokens, horizon 10
    assert (ours.image_slots, ours.text_tokens, ours.horizon) == (3, 200, 10)
    assert ours.floor_ms == pytest.approx(peers.spec_floor_ms("H200 SXM", "bf16", 3, 10))
    # the prompt, the horizon and the image slots each change the floor: the configuration matters
    base = peers.spec_floor_ms("RTX 4090", "bf16", 2, 10)
    assert peers.spec_floor_ms("RTX 4090", "bf16", 2, 10, text_tokens=0) < base
    fast_mem = pd.DataFrame({"bandwidth_gbps": [1e9], "bf16_dense_tflops": [100.0]}, index=["X"])  # compute-bound
    assert peers.spec_floor_ms("X", "bf16", 2, 10, fast_mem, horizon=63) > peers.spec_floor_ms("X", "bf16", 2, 10, fast_mem)
    assert peers.spec_floor_ms("RTX 4090", "bf16", 3, 10) > base


def test_config_clauses_keep_what_is_stated_or_assumed_and_split_outside_brackets():
    note = "pi05_libero, MAXN; 3 image slots ASSUMED (a masked third slot; the tutorial does not say); clocks locked"
    assert peers.config_clauses(note) == "3 image slots ASSUMED (a masked third slot; the tutorial does not say)"
    assert peers.config_clauses("Triton kernels, bf16") == ""


def test_per_floor_view_shows_each_floors_configuration_and_footnotes_the_assumptions():
    pf = pd.DataFrame([
        {"peer": "A", "platform": "X", "views": 2, "image_slots": 3, "text_tokens": 208, "horizon": 10, "steps": 10,
         "precision": "fp8", "latency_ms": 50.0, "floor_ms": 25.0, "x_floor_ratio": 2.0, "note": "3 slots ASSUMED"},
        {"peer": "B", "platform": "X", "views": 2, "image_slots": 3, "text_tokens": 208, "horizon": 10, "steps": 10,
         "precision": "fp8", "latency_ms": 40.0, "floor_ms": 25.0, "x_floor_ratio": 1.6, "note": "3 slots ASSUMED"},
        {"peer": "C", "platform": "Y", "views": 1, "image_slots": 1, "text_tokens": 0, "horizon": 63, "steps": 10,
         "precision": "bf16", "latency_ms": 20.0, "floor_ms": 16.0, "x_floor_ratio": 1.25, "note": "prompt NOT STATED"},
        {"peer": "ours", "platform": "Y", "views": 2, "image_slots": 2, "text_tokens": 200, "horizon": 10, "steps": 10,
         "precision": "bf16", "latency_ms": 20.0, "floor_ms": 5.0, "x_floor_ratio": 4.0, "note": ""}])
    t = peers.per_floor_view(pf)
    col = t.headers.index("floor assumes")
    assert [r[col] for r in t.rows] == ["3×256 + 208, h10 [1]", "3×256 + 208, h10 [1]", "1×256 + 0, h63 [2]",
                                        "2×256 + 200, h10"]
    assert "[1] A, B: 3 slots ASSUMED" in t.footnotes and "[2] C: prompt NOT STATED" in t.footnotes


def test_an_assumed_configuration_is_said_with_the_ratio_at_a_padded_prompt():
    row = peers.per_floor_table([{"peer": "p", "platform": "RTX 4090", "views": 2, "steps": 10, "precision": "bf16",
                                  "latency_ms": 30.0}]).iloc[-1]
    assert peers.assumed_config_text(row) == ""  # nothing assumed
    row = row.copy()
    row["note"], row["text_tokens"], row["horizon"] = "prompt and chunk NOT STATED: 0 tokens ASSUMED", 0, 63
    text = peers.assumed_config_text(row)
    at200 = peers.spec_floor_ms("RTX 4090", "bf16", 2, 10)
    assert "not stated by its source but assumed" in text and "(0 prompt tokens, horizon 63)" in text
    assert f"is {at200:.1f} ms and the figure is at {30.0 / at200:.2f}× it" in text


def test_kv_cache_bytes():
    assert peers.kv_cache_bytes(712) == 2 * 18 * 256 * 712 * 2


def test_check_actions_accepts_real_actions_and_rejects_trivial_ones():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 10, 32, generator=g)
    actions = noise + torch.randn(1, 10, 32, generator=g)
    got = lerobot_pi05.check_actions(actions, noise)
    assert got["actions_std"] > 0 and got["displacement_ratio"] > 0
    for bad in (torch.full_like(noise, float("nan")), torch.zeros_like(noise), noise.clone(),
                torch.zeros(1, 50, 32)):
        with pytest.raises(AssertionError):
            lerobot_pi05.check_actions(bad, noise)


def test_lerobot_component_knows_every_part():
    assert lerobot_pi05.lerobot_component(
        "paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.weight") == "vision_tower"
    assert lerobot_pi05.lerobot_component(
        "paligemma_with_expert.gemma_expert.model.norm.dense.weight") == "action_expert"
    assert lerobot_pi05.lerobot_component("time_mlp_in.bias") == "action_time_proj"
    with pytest.raises(ValueError):
        lerobot_pi05.lerobot_component("something.else")


def test_torchao_headline_prefers_compiled_then_eager_and_says_which():
    df = pd.DataFrame([
        {"scheme": "int8_dyn", "mode": "eager", "speed_vs_bf16_ratio": 0.1},
        {"scheme": "int8_dyn", "mode": "compiled", "speed_vs_bf16_ratio": float("nan")},
        {"scheme": "int4_wo", "mode": "eager", "speed_vs_bf16_ratio": 0.5},
        {"scheme": "int4_wo", "mode": "compiled", "speed_vs_bf16_ratio": 1.5},
    ])
    assert torchao_bench.headline_ratio(df, "int8_dyn") == 0.1
    assert torchao_bench.headline_ratio(df, "int4_wo") == 1.5
    assert math.isnan(torchao_bench.headline_ratio(df, "float8_dyn"))
    # and the page names the mode each figure was read in
    assert [torchao_bench.headline_mode(df, s) for s in ("int8_dyn", "int4_wo", "float8_dyn")] == ["eager", "compiled", None]


def test_download_command_targets_the_gpu_image():
    cmd = peers.download_command()
    assert "--no-deps" in cmd and cmd[cmd.index("--python-version") + 1] == "3.12"
    assert all(w in cmd for w in peers.PEER_WHEELS)


def test_torchao_is_found_among_the_peer_wheels(tmp_path, monkeypatch):
    """Chapters 5 and 9 both ask `torchao_bench.available`, which looks in $PI05PERF_PEERS too."""
    import sys

    if torchao_bench.available() is not None:
        pytest.skip("torchao is installed in this environment")
    monkeypatch.delenv("PI05PERF_PEERS", raising=False)
    path = list(sys.path)
    assert torchao_bench.available() is None and sys.path == path  # unset: nothing added, nothing found
    (tmp_path / "torchao").mkdir()
    (tmp_path / "torchao" / "__init__.py").write_text('__version__ = "0.0.test"\n')
    monkeypatch.setenv("PI05PERF_PEERS", str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "torchao", raising=False)
    try:
        assert torchao_bench.available() == "0.0.test"
        assert sys.path[0] == str(tmp_path)
    finally:
        sys.modules.pop("torchao", None)


def test_measured_ceiling_floor_is_like_for_like_only():
    from pi05perf import results

    docs = [d for d in results.load_all("ch07_pipeline") if d["source"] == "committed"]
    if not docs:
        pytest.skip("no committed chapter-7 run")
    d = docs[0]
    p = d["provenance"]["parameters"]
    shape = (p["headline_views"], p["headline_steps"], p["text_tokens"], p["action_horizon"])
    got = peers.measured_ceiling_floor(d["slug"], *shape)
    if got is not None:
        assert got["x_floor_ratio"] == pytest.approx(got["best_ms"] / got["floor_ms"])
        # the same work as the spec-sheet floor, over the measured ceilings
        assert peers.floor_ms(shape[0], shape[1], got["copy_gbps"], got["peak_tflops"], text_tokens=shape[2],
                              horizon=shape[3]) == pytest.approx(got["floor_ms"], rel=0.01)
    assert peers.measured_ceiling_floor(d["slug"], shape[0], shape[1], shape[2] + 1, shape[3]) is None
    assert peers.measured_ceiling_floor("no-such-device", *shape) is None


def test_import_error_gives_the_reason_lerobot_does_not_import(monkeypatch):
    def fail():
        raise ModuleNotFoundError("No module named 'lerobot'")

    monkeypatch.setattr(lerobot_pi05, "import_lerobot", fail)
    assert lerobot_pi05.import_error() == "ModuleNotFoundError: No module named 'lerobot'"
    monkeypatch.setattr(lerobot_pi05, "import_lerobot", lambda: (object, object))
    assert lerobot_pi05.import_error() is None


def test_availability_text_says_what_is_timed_and_why_not():
    off = peers.availability_text(None, "ModuleNotFoundError: " + "x" * 300, "0.9", measure=True)
    assert off.startswith("lerobot: **not installed** (does not import here: `ModuleNotFoundError: x")
    assert "x" * 139 + "`)" in off and "x" * 140 not in off  # the reason cut at 160 characters
    assert "; torchao: **0.9**. Nothing is timed in this run" in off and "PI05PERF_PEERS" in off
    on = peers.availability_text("0.6.1", None, None, measure=True)
    assert on == "lerobot: **0.6.1**; torchao: **not installed**. Both are timed below."
    assert "Nothing is timed" in peers.availability_text("0.6.1", None, "0.9", measure=False)


def test_measured_rows_keep_the_timed_latencies_on_the_sxm_spec_sheet():
    rows = peers.measured_rows("H200", (("ours", 20.0), ("lerobot compiled", math.nan), ("lerobot eager", 180.0)), 2, 10)
    assert [r["peer"] for r in rows] == ["ours", "lerobot eager"]
    assert rows[0] == {"peer": "ours", "platform": "H200 SXM", "views": 2, "steps": 10, "precision": "bf16",
                       "latency_ms": 20.0}
    pf = peers.per_floor_table(rows)
    assert (pf[pf.source == "measured here"].x_floor_ratio > 1).all()


def test_measured_ceiling_text_compares_the_spec_floor_with_chapter_7s():
    pf = peers.per_floor_table(peers.measured_rows("H200", (("ours best (measured)", 20.0),), 2, 10))
    mine = pf[pf.peer == "ours best (measured)"]
    spec = peers.hardware_specs().loc["H200 SXM"]
    text = peers.measured_ceiling_text(mine, None, 20.0)
    assert f"H200 SXM: {spec.bandwidth_gbps:.0f} GB/s" in text and "is not available" in text
    c7 = {"peak_tflops": 700.0, "copy_gbps": 4000.0, "floor_ms": 10.0, "best_ms": 21.0, "x_floor_ratio": 2.1}
    text = peers.measured_ceiling_text(mine, c7, 20.0)
    assert "(700 TFLOP/s and 4000 GB/s)" in text and "ours best here is at 2.00× that measured-ceiling floor" in text
    assert f"rather than {float(mine.x_floor_ratio.iloc[0]):.2f}× the spec-sheet one" in text


def test_torchao_table_labels_eager_as_host_overhead_and_dashes_an_empty_error():
    ao = pd.DataFrame([{"scheme": "bf16", "mode": "eager", "median_ms": 15.0, "speed_vs_bf16_ratio": 1.0,
                        "cos_vs_bf16": 1.0, "error": ""},
                       {"scheme": "int4_wo", "mode": "compiled", "median_ms": float("nan"),
                        "speed_vs_bf16_ratio": float("nan"), "cos_vs_bf16": float("nan"), "error": "ImportError: x"}])
    t = peers.torchao_table(ao)
    assert t.rows[0][1] == "eager (host overhead)" and t.rows[0][-1] == "–"
    assert t.rows[1][1] == "compiled" and t.rows[1][-1] == "ImportError: x"
    assert any("error –" in n for n in t.footnotes)


def test_compiled_comparison_calls_a_host_bound_lerobot_so_and_compares_kernel_times():
    nan = float("nan")
    host = lerobot_pi05.compiled_comparison_text("v", 18.0, 16.0, 259.0, 102.0, 40.0, "default")
    assert "**5.67×** faster" in host and "**host-bound**" in host and "mostly host overhead" in host
    assert "**2.50×** less than lerobot compiled" in host
    gpu = lerobot_pi05.compiled_comparison_text("v", 18.0, 16.0, 259.0, 102.0, 95.0, "default")
    assert "GPU-bound" in gpu and "host-bound" not in gpu
    unknown = lerobot_pi05.compiled_comparison_text("v", 18.0, nan, 259.0, 102.0, nan, "default")
    assert "not known here" in unknown and "host-bound" not in unknown
    assert "no compiled time" in lerobot_pi05.compiled_comparison_text("v", 18.0, 16.0, 259.0, nan, nan, "default")


def test_kernel_time_sums_the_kernels_and_survives_a_failing_profile():
    ms, err = lerobot_pi05.kernel_time_ms(lambda: torch.ones(64, 64) @ torch.ones(64, 64), "cpu", runs=1)
    assert ms > 0 and err == ""

    def broken():
        raise RuntimeError("no profile")

    ms, err = lerobot_pi05.kernel_time_ms(broken, "cpu", runs=1)
    assert math.isnan(ms) and err == "RuntimeError: no profile"


def test_latency_table_puts_kernel_time_on_ours_best_and_lerobot_compiled_only():
    nan = float("nan")
    ours = pd.DataFrame([{"variant": "graph", "median_ms": 42.0, "p25_ms": 41.0, "p75_ms": 43.0, "max_rel_err": 0.01},
                         {"variant": "best", "median_ms": 18.0, "p25_ms": 17.9, "p75_ms": 18.1, "max_rel_err": 0.01}])
    lat = pd.DataFrame([
        {"path": "lerobot_eager", "stage": "whole", "views": 2, "horizon": 10, "median_ms": 259.0, "actions_std": 1.1,
         "displacement_ratio": 0.5, "error": ""},
        {"path": "lerobot_compiled", "stage": "whole", "views": 2, "horizon": 10, "median_ms": 102.0, "actions_std": 1.1,
         "displacement_ratio": 0.5, "cos_vs_eager": 0.99999, "error": "", "kernels_ms": nan,
         "kernels_error": "RuntimeError: boom"}])
    t = lerobot_pi05.latency_table(ours, {"splitkv": "no triton"}, lat, "best", 16.5)
    assert list(t.kernels_ms.fillna(-1)) == [-1, 16.5, -1, -1, -1]
    assert t.check.iloc[2] == "FAILED: no triton"
    assert "cos vs eager" not in t.check.iloc[3] and "kernel time FAILED" not in t.check.iloc[3]  # NaN is no error
    assert t.check.iloc[4].endswith("; kernel time FAILED: RuntimeError: boom") and "cos vs eager 0.99999" in t.check.iloc[4]
