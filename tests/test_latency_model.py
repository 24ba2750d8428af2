"""The latency model: curves, fitting, predictions against known answers, and the Thor floors."""
import dataclasses
import math

import pandas as pd
import pytest

from pi05perf import config, flops, latency_model as lm


def test_curve_interpolates_and_extrapolates_along_the_end_segments():
    c = lm.Curve((100.0, 200.0, 400.0), (1.0, 2.0, 3.0))
    assert c(100) == 1.0 and c(400) == 3.0
    assert c(150) == pytest.approx(1.5) and c(300) == pytest.approx(2.5)
    assert c(50) == pytest.approx(0.5)  # first segment's slope
    assert c(600) == pytest.approx(4.0)  # last segment's slope
    assert lm.Curve((10.0,), (2.0,))(25) == pytest.approx(5.0)  # one point: through the origin
    with pytest.raises(ValueError):
        lm.Curve((2.0, 1.0), (1.0, 1.0))
    with pytest.raises(ValueError):
        lm.Curve((), ())


def test_curve_from_points_sorts_and_takes_medians():
    c = lm.Curve.from_points([300, 100, 100, 100], [3.0, 1.0, 5.0, 2.0])
    assert c.x == (100.0, 300.0) and c.y == (2.0, 3.0)


# A synthetic device whose costs are exactly what the model assumes.
TPI, TEXT, H = 256, 200, 10
VIS_PER_TOKEN, PRE_A, PRE_B, STEP_A, STEP_B, GLUE, L0 = 0.002, 0.5, 0.006, 0.2, 0.0001, 0.3, 18


def truth(views, steps, layers=L0, tpi=TPI, text=TEXT):
    T = views * tpi + text
    vision = VIS_PER_TOKEN * views * tpi
    prefill = (PRE_A + PRE_B * T) * layers / L0
    denoise = steps * (STEP_A + STEP_B * T) * layers / L0
    return {"vision": vision, "prefill": prefill, "denoise": denoise, "whole": vision + prefill + denoise + GLUE}


def row(stage, views, steps, ms, prefix=None, layers=L0, tpi=TPI, text=TEXT):
    return {"stage": stage, "views": views, "tokens_per_image": tpi, "text_tokens": text, "steps": steps,
            "horizon": H, "layers": layers, "prefix_tokens": prefix if prefix is not None else views * tpi + text,
            "median_ms": ms, "p25_ms": ms * 0.99, "p75_ms": ms * 1.01}


def calibration():
    t = truth(2, 10)
    rows = [row(s, 2, 10, t[s]) for s in ("vision", "prefill", "denoise", "whole")]
    for T in (256, 1024):  # text-only prefixes
        rows.append(row("prefill", 0, 10, PRE_A + PRE_B * T, prefix=T, text=T))
        rows.append(row("denoise", 0, 10, 10 * (STEP_A + STEP_B * T), prefix=T, text=T))
    rows.append(row("vision", 4, 10, truth(4, 10)["vision"]))
    return pd.DataFrame(rows)


def test_fit_recovers_a_linear_device_and_predicts_modified_models_exactly():
    m = lm.fit(calibration())
    assert m.layers == L0 and m.glue_ms == pytest.approx(GLUE)
    assert m.reference["views"] == 2 and m.reference["steps"] == 10
    for views, steps, layers in [(1, 10, 18), (3, 10, 18), (2, 5, 18), (2, 1, 18), (2, 10, 12), (1, 5, 12)]:
        p, t = m.predict(views, TPI, TEXT, steps, layers), truth(views, steps, layers)
        for k in t:
            assert p[k] == pytest.approx(t[k], rel=1e-9), (views, steps, layers, k)


def test_prediction_table_reports_signed_errors_and_noise():
    m = lm.fit(calibration())
    t = truth(2, 5)
    measured = pd.DataFrame([row("whole", 2, 5, t["whole"] * 1.1), row("denoise", 2, 5, t["denoise"])])
    measured["test"] = "5 steps"
    out = lm.prediction_table(m, measured).set_index("stage")
    assert out.error_pct["whole"] == pytest.approx(100 * (1 / 1.1 - 1))
    assert not out.within_iqr["whole"] and out.within_iqr["denoise"]


def test_fit_refuses_incomplete_or_mixed_calibrations():
    cal = calibration()
    with pytest.raises(ValueError, match="stages"):
        lm.fit(cal[cal.stage != "whole"])
    mixed = cal.copy()
    mixed.loc[0, "layers"] = 12
    with pytest.raises(ValueError, match="one depth"):
        lm.fit(mixed)
    moved = cal.copy()
    moved.loc[moved.stage == "whole", "views"] = 3  # whole call without its stages
    with pytest.raises(ValueError, match="three stages"):
        lm.fit(moved)


def test_fp8_scales_only_the_matmul_part_of_the_prefill():
    m = lm.fit(calibration())
    with pytest.raises(ValueError):
        m.predict(2, TPI, TEXT, 10, fp8=True)
    m8 = m.with_fp8(0.8, 2.0)
    p, p8 = m.predict(2, TPI, TEXT, 10), m8.predict(2, TPI, TEXT, 10, fp8=True)
    assert p8["prefill"] == pytest.approx(p["prefill"] * (0.2 + 0.8 / 2))
    assert p8["vision"] == p["vision"] and p8["denoise"] == p["denoise"]
    assert m.with_fp8(1.7, 2.0).fp8_matmul_share == 1.0


def test_fp8_calibration_arithmetic():
    g = pd.DataFrame({"bf16_ms": [0.1, 0.3], "fp8_ms": [0.05, 0.15]})
    f, r = lm.fp8_calibration(g, prefill_ms=9.0, layers=18)
    assert f == pytest.approx(0.8) and r == pytest.approx(2.0)


def test_ratio_words_reads_by_direction():
    assert lm.ratio_words(0.2333 / 0.4391) == "1.88× slower"  # bf16 time / FP8 time below 1: FP8 slower
    assert lm.ratio_words(1.25) == "1.25× faster" and lm.ratio_words(1.001) == "as fast"
    with pytest.raises(ValueError):
        lm.ratio_words(0.0)


def test_fp8_contrast_and_the_fp8_ratios_row_label():
    t = lm.fp8_contrast({"A": {"ch08_ratio": 0.918, "ch07_fp8_ms": 15.0, "ch07_bf16_ms": 18.0},
                         "B": {"ch08_ratio": None}})
    assert list(t.iloc[0, 1:]) == [0.918, "1.09× slower", pytest.approx(1.2), "1.20× faster"]
    assert t.iloc[1, 1:].isna().all() and all("(×)" in c for c in t.columns[[1, 3]])

    from pi05perf.report import key_label
    # the key keeps its name for committed results; its row says which way the ratio reads
    assert "slower" in key_label("fp8_whole_speedup_ratio") and key_label("prefill712_best_ms") == "prefill712 best (ms)"


def test_floors_on_thor():
    hw = config.THOR_SEED_MEASURED
    t = lm.floor_table(lm.Scenario("base"), hw).set_index("stage")
    # the prefix floor is the LLM's weights (~3.96 GB of layers + the embedding rows + K/V) over the bandwidth
    assert 3.9e9 < t.floor_bytes["prefix"] < 4.2e9
    assert t.bound["prefix"] == "memory" and t.bound["denoise"] == "memory"
    t8 = lm.floor_table(lm.Scenario("fp8", fp8=True), hw).set_index("stage")
    assert t8.floor_bytes["prefix"] == pytest.approx(t.floor_bytes["prefix"] / 2)
    assert t8.compute_ms["prefix"] == pytest.approx(t.compute_ms["prefix"] * hw.bf16_tflops / hw.fp8_tflops)
    t12 = lm.floor_table(lm.Scenario("12", layers=12), hw).set_index("stage")
    assert t12.floor_ms["vision"] == t.floor_ms["vision"]
    assert t12.floor_bytes["denoise"] < t.floor_bytes["denoise"] * 0.7
    half = lm.floor_table(lm.Scenario("5", steps=5), hw).set_index("stage")
    assert half.floor_bytes["denoise"] == pytest.approx(t.floor_bytes["denoise"] / 2)


def test_denoise_floor_excludes_the_precomputable_modulations():
    hw = config.THOR_SEED_MEASURED
    t = lm.floor_table(lm.Scenario("1 step", steps=1), hw).set_index("stage")
    e, W = config.GEMMA_300M, config.GEMMA_300M.width
    # adaRMS norms have no weight of their own: what is left is the projections, the action
    # in/out projections and the prefix K/V read by every layer
    proj = e.depth * (e.q_dim * W + 2 * e.kv_dim * W + W * e.q_dim + 3 * W * e.mlp_dim)
    io = 32 * W + W + W * 32 + 32
    kv = e.depth * 2 * (2 * 256 + 200) * e.kv_dim
    assert t.floor_bytes["denoise"] == pytest.approx(2 * (proj + io + kv), rel=1e-6)


def test_end_to_end_on_a_tiny_cpu_model():
    import torch

    from pi05perf import pipeline
    from pi05perf import pipeline_bench as pb

    a = pipeline.arch(False)
    b = pb.PipelineBench(a, torch.device("cpu"), torch.float32, 2, [4, 2], log=lambda *x: None)
    R = pipeline.Shape(2, 5, 4, 6)
    rows = b.measure_many("eager_fused", pipeline.STAGES, R)
    for T in (6, 30):
        rows += b.measure_many("eager_fused", ("prefill", "denoise"), pipeline.Shape(0, T, 4, 6))
    rows.append(b.measure("eager_fused", "vision", pipeline.Shape(4, 5, 4, 6)))
    m = lm.fit(pd.DataFrame(rows))
    p = m.predict(1, a.tokens_per_image, 5, 2)
    # CPU timings of a tiny model are noisy: an extrapolated stage may even come out negative
    assert all(math.isfinite(v) for v in p.values()) and set(p) == {"vision", "prefill", "denoise", "whole"}


# ----------------------------------------------------------------------------- per-kernel model
from pi05perf import kernel_model as km, reference, thor_fit as tf  # noqa: E402

THOR = km.Device("thor", 258.0, 273.0, 20)
BIG = km.Device("gpu", 700.0, 3000.0, 132)
IDEAL = km.Params(1.0, 1.0, 0.0, 0.0)


def test_waves_step_at_multiples_of_the_sm_count():
    assert km.waves(128, 128 * 20, 20) == 1 and km.waves(128, 128 * 21, 20) == 2
    assert km.waves(128, 128 * 40, 20) == 2 and km.waves(129, 128 * 20, 20) == 2
    assert km.waves(128, 128 * 21, 132) == 1
    # a compute-bound GEMM: one tile over a multiple of the SM count costs a whole extra wave
    k20, k21 = (km.gemm("g", 128, 128 * n, 65536, "bf16", 1) for n in (20, 21))
    c20, c21 = km.kernel_ms(k20, THOR, IDEAL, False)[0], km.kernel_ms(k21, THOR, IDEAL, False)[0]
    assert c21 == pytest.approx(2 * c20)
    assert km.kernel_ms(k21, BIG, IDEAL, False)[0] == pytest.approx(km.kernel_ms(k20, BIG, IDEAL, False)[0])


def test_small_m_gemms_stream_their_weights():
    k = km.gemm("down", 10, 1024, 4096, "bf16", 1)
    comp, mem, tot = km.kernel_ms(k, THOR, IDEAL, False)
    assert mem > comp and tot == pytest.approx(mem)
    assert mem == pytest.approx(k.nbytes / 273e9 * 1e3)


def test_precision_halves_bytes_and_doubles_the_rate():
    b, f = km.gemm("g", 712, 2048, 16384, "bf16", 1), km.gemm("g", 712, 2048, 16384, "fp8", 1)
    assert f.nbytes == pytest.approx(b.nbytes / 2) and f.rate == 2 * b.rate and f.flops == b.flops
    n4 = km.gemm("g", 712, 2048, 16384, "nvfp4", 1)
    assert n4.nbytes < f.nbytes and n4.rate == 4
    c = km.Config(precision="bf16")
    gb = sum(k.nbytes * k.count for k in km.stage_kernels("prefix", c) if k.kind == "gemm")
    g8 = sum(k.nbytes * k.count for k in km.stage_kernels("prefix", c.but(precision="fp8")) if k.kind == "gemm")
    assert g8 == pytest.approx(gb / 2)


def test_stage_times_scale_with_steps_layers_and_views_and_fusion_removes_kernels():
    c, p = km.Config(), km.Params()
    assert km.stage_ms("denoise", c.but(steps=5), THOR, p) == pytest.approx(km.stage_ms("denoise", c, THOR, p) / 2)
    assert km.stage_ms("prefix", c.but(layers=12), THOR, p) < km.stage_ms("prefix", c, THOR, p)
    assert km.stage_ms("vision", c.but(views=3), THOR, p) > km.stage_ms("vision", c, THOR, p)
    n = {f: sum(k.count for k in km.stage_kernels("prefix", c.but(fusion=f))) for f in ("eager", "compiled", "fused")}
    assert n["fused"] < n["compiled"] < n["eager"]
    # host launches cost where kernels are short (a denoise step), not where they are long
    assert km.stage_ms("denoise", c.but(fusion="eager"), THOR, p) > km.stage_ms("denoise", c.but(fusion="graph"), THOR, p)
    assert km.stage_ms("prefix", c.but(fusion="eager"), THOR, p) >= km.stage_ms("prefix", c.but(fusion="graph"), THOR, p)
    with pytest.raises(ValueError):
        km.Config(precision="int3")
    with pytest.raises(ValueError):
        km.stage_kernels("decode", c)


def _synthetic(truth: km.Params, dev: km.Device):
    rows = pd.DataFrame([{"fusion": f, "stage": s, "views": v, "steps": n, "text_tokens": 200, "horizon": 10,
                          "layers": 18, "median_ms": 1.0}
                         for f in ("graph", "compiled_graph") for s in ("vision", "prefix", "denoise")
                         for v in (1, 3) for n in (1, 10) if s == "denoise" or n == 10])
    rows["median_ms"] = [fn(truth) for fn in tf.gpu_predictors(rows, dev)]
    return rows


def test_fit_keeps_parameters_physical_and_recovers_a_model_device():
    truth = km.Params(0.5, 0.8, 4.0, 10.0)
    rows = _synthetic(truth, BIG)
    p = tf.fit(tf.gpu_predictors(rows, BIG), rows.median_ms.tolist(), tf.GPU_FREE, start=km.Params(0.3, 0.5, 1.0, 10.0))
    assert 0 < p.eff_compute <= 1 and 0 < p.eff_bw <= 1 and p.t_kernel_us > 0 and p.t_launch_us > 0
    pred = [fn(p) for fn in tf.gpu_predictors(rows, BIG)]
    assert max(abs(a / b - 1) for a, b in zip(pred, rows.median_ms)) < 0.02


def test_cross_device_uses_the_other_devices_ceilings():
    # a fabricated second device (never written anywhere): 1.4x the bandwidth, same SMs
    truth = km.Params(0.5, 0.8, 4.0, 10.0)
    other = km.Device("gpu2", 700.0, 3000.0 * 1.4, 132)
    a, b = _synthetic(truth, BIG), _synthetic(truth, other)
    assert (b.median_ms <= a.median_ms + 1e-12).all() and (b.median_ms < a.median_ms).any()
    _, out = tf.cross_device(a, BIG, b, other)
    assert out.error_pct.abs().max() < 3
    _, naive = tf.cross_device(a, BIG, b, BIG)  # with the wrong ceilings it must miss
    assert naive.error_pct.abs().max() > out.error_pct.abs().max()


def test_leave_one_out_never_fits_on_the_held_out_point():
    seen = []

    def spy(preds, obs, free):
        seen.append(list(obs))
        return km.Params(0.5, 0.5, 1.0, 1.0)

    obs = [1.0, 2.0, 3.0, 4.0]
    preds = [lambda p, v=v: v * p.eff_bw for v in obs]
    out = tf.leave_one_out(preds, obs, fitter=spy)
    assert len(out) == 4
    for i, fitted_on in enumerate(seen):
        assert obs[i] not in fitted_on and len(fitted_on) == 3
    assert [v for _, v in out] == pytest.approx([0.5 * v for v in obs])


def test_thor_anchors_are_quoted_and_floors_are_lower_bounds():
    a = tf.anchor_table(reference.quoted)
    assert len(a) == len(tf.THOR_ANCHORS) and set(a["stack"]) <= set(tf.STACKS)
    fl = tf.floors(a, THOR)
    p = km.Params()
    pred = a.apply(lambda r: tf.stack_ms(r.stack, r.stage, THOR, p, int(r.views), int(r.steps),
                                         image_slots=int(r.image_slots), text_tokens=int(r.text_tokens)), axis=1)
    assert (fl > 0).all() and (fl <= pred).all()
    whole = tf.stack_ms("seed", "whole", THOR, p)
    assert whole == pytest.approx(sum(tf.stack_ms("seed", s, THOR, p) for s in km.STAGES))


def test_each_anchor_is_modelled_at_its_own_image_slots_and_prompt(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("key,stack,stage,views,image_slots,text_tokens,steps,precision,fusion,note\n"
                   "a,flashrt_fp8,prefix,2,2,10,10,fp8,fused,\nb,nvidia_trt_fp8,whole,2,3,208,10,fp8,fused,x\n")
    a, b = tf.load_anchors(csv)
    assert (a.image_slots, a.text_tokens, a.prefix_tokens) == (2, 10, 522) and b.prefix_tokens == 3 * 256 + 208
    c = tf.stage_config("nvidia_trt_fp8", "vision", views=2, image_slots=3, text_tokens=208)
    assert (c.views, c.text_tokens, c.prefix_tokens) == (3, 208, 976)
    assert tf.stage_config("seed", "prefix", views=2).prefix_tokens == 712  # slots default to the views
    table = tf.anchor_table(lambda key: 10.0, (a, b))
    assert list(table.prefix_tokens) == [522, 976]
    p = km.Params()
    preds = [fn(p) for fn in tf.thor_predictors(table, THOR)]
    assert preds[0] == pytest.approx(tf.stack_ms("flashrt_fp8", "prefix", THOR, p, text_tokens=10))
    assert preds[0] < tf.stack_ms("flashrt_fp8", "prefix", THOR, p)  # 522 tokens cost less than 712
    assert preds[1] == pytest.approx(tf.stack_ms("nvidia_trt_fp8", "whole", THOR, p, image_slots=3, text_tokens=208))
    assert preds[1] > tf.stack_ms("nvidia_trt_fp8", "whole", THOR, p, text_tokens=208)  # a third image slot costs
    assert list(tf.floors(table, THOR)) == pytest.approx(
        [fn(km.Params(1.0, 1.0, 0.0, 0.0)) for fn in tf.thor_predictors(table, THOR)])


def test_a_stack_can_mix_precisions_by_stage():
    """FlashRT's README NVFP4 run: NVFP4 in the encoder (prefix) FFNs only; its whole call costs
    more than an all-stage NVFP4 stack would and less than all-FP8."""
    p = km.Params()
    ms = {s: tf.stack_ms("flashrt_nvfp4", s, THOR, p) for s in km.STAGES}
    fp8 = {s: tf.stack_ms("flashrt_fp8", s, THOR, p) for s in km.STAGES}
    assert ms["vision"] == pytest.approx(fp8["vision"]) and ms["denoise"] == pytest.approx(fp8["denoise"])
    assert ms["prefix"] < fp8["prefix"]


def test_roofline_prefill_floor_is_chapter1s_and_below_the_kernel_model_floor():
    from pi05perf import flops

    roof = tf.roofline_prefill_floor_ms("seed")
    c = tf.stage_config("seed", "prefix")
    assert c.prefix_tokens == 712
    assert roof == pytest.approx(flops.bound_table(config.GEMMA_2B, 712, [config.THOR_SPEC]).floor_ms[0])
    spec = tf.thor_device(config.THOR_SPEC.bandwidth_gbps, config.THOR_SPEC.bf16_tflops, int(reference.quoted("thor_sm_count")))
    kernel_floor = tf.stack_ms("seed", "prefix", spec, km.Params(1.0, 1.0, 0.0, 0.0))
    assert roof < kernel_floor  # the unfused stack's own floor is above the work's


def test_path_label_names_the_horizon():
    assert tf.path_label("graph", 2.0, 10.0, 50.0) == "graph, 2 views, 10 steps, horizon 50"
    assert tf.path_label("graph", 1, 1, 10) == "graph, 1 view, 1 step, horizon 10"


def test_gpu_stage_rows_reads_chapter7_defensively():
    assert tf.gpu_stage_rows(None).empty and tf.gpu_stage_rows([{"variant": "graph"}]).empty
    rows = tf.gpu_stage_rows([
        {"variant": "graph", "stage": "prefill", "views": 2, "steps": 10, "median_ms": 9.0},
        {"variant": "eager", "stage": "prefill", "views": 2, "steps": 10, "median_ms": 25.0},
        {"variant": "compile_graph", "stage": "whole", "views": 2, "steps": 10, "median_ms": 22.0},
        {"variant": "graph", "stage": "prefill", "views": 0, "steps": 10, "median_ms": 3.0},
        {"token_budget": 1}])
    assert list(rows.stage) == ["prefix"] and rows.fusion[0] == "graph" and rows.text_tokens[0] == 200
    assert tf.gpu_device("x", {"copy_gbps": 3000, "matmul_bf16_tflops": 700}).bandwidth_gbps == 3000
    assert tf.gpu_device("x", {"copy_gbps": 3000, "matmul_bf16_tflops": 700, "floor_copy_gbps": 3100}).bandwidth_gbps == 3100
    assert tf.gpu_device("x", {}) is None


def test_projection_range_contains_the_full_fit():
    p = km.Params()
    spread = [km.Params(0.6, 0.6, 3.0, 10.0), km.Params(0.6, 0.8, 3.0, 10.0)]
    out = tf.project([("a", "flashrt_fp8", {}), ("b", "seed", {"steps": 3})], THOR, p, spread, error_pct=10)
    assert (out.low_ms <= out.projected_ms).all() and (out.projected_ms <= out.high_ms).all()


def test_cross_table_from_committed_runs_with_a_fabricated_second_gpu(tmp_path, monkeypatch):
    """The H100's committed chapter 2/7 results and a FABRICATED second GPU (faster stages,
    1.4x the bandwidth), written to a temporary results folder only."""
    import json
    import shutil

    from pi05perf import results

    src = results.DATA_RESULTS / "nvidia-h100-80gb-hbm3"
    if not (src / "ch07_pipeline.json").exists():
        pytest.skip("no committed H100 results")
    base = tmp_path / "results"
    shutil.copytree(src, base / "h100", ignore=shutil.ignore_patterns("ch0[13-68]*"))
    (base / "fake").mkdir()
    for name, scale in (("ch02_roofline", None), ("ch07_pipeline", 0.8)):
        doc = json.loads((src / f"{name}.json").read_text())
        if scale is None:
            doc["headline"]["copy_gbps"] *= 1.4
        else:
            for r in doc["rows"]:
                if isinstance(r.get("median_ms"), (int, float)):
                    r["median_ms"] *= scale
        (base / "fake" / f"{name}.json").write_text(json.dumps(doc))
    monkeypatch.setattr(results, "DATA_RESULTS", base)
    monkeypatch.setattr(results, "BUILD_RESULTS", tmp_path / "none")
    gpus = tf.committed_gpus(results.load_all)
    assert sorted(gpus) == ["fake", "h100"]
    assert gpus["fake"][0].bandwidth_gbps == pytest.approx(1.4 * gpus["h100"][0].bandwidth_gbps)
    t = tf.cross_table(gpus)
    assert set(t.direction) == {"fake → h100", "h100 → fake"}
    assert len(t) == len(gpus["fake"][1]) + len(gpus["h100"][1]) and t.error_pct.notna().all()
    one = tf.cross_table({"h100": gpus["h100"]})
    assert set(one.direction) == {"h100, held out"} and len(one) == len(gpus["h100"][1])


def test_thor_timings_csv_restates_each_stacks_precision_and_fusion():
    """data/reference/thor_timings.csv names each anchor's precision and fusion for the reader;
    they must be what the model fits with (`STACKS`), and every key must be a quoted figure."""
    import pandas as pd

    from pi05perf import reference
    from pi05perf import thor_fit as tf

    df = pd.read_csv(tf.THOR_TIMINGS, keep_default_na=False)
    assert df["key"].is_unique and set(df["stack"]) <= set(tf.STACKS)
    for r in df.itertuples():
        stages = ("vision", "prefix", "denoise") if r.stage == "whole" else (r.stage,)
        configs = [tf.stage_config(r.stack, s) for s in stages]
        assert r.precision == "/".join(sorted({c.precision for c in configs})), r.key
        assert r.fusion == "/".join(sorted({c.fusion for c in configs})), r.key
        assert reference.quoted(r.key) > 0


def test_kernel_table_columns_carry_their_units():
    from pi05perf.results import UNIT_SUFFIXES

    rows = pd.DataFrame(km.kernel_table("denoise", km.Config(precision="fp8", fusion="fused"), THOR, IDEAL))
    assert {"calls_count", "work_flops", "moved_bytes"} <= set(rows.columns) and "bytes" not in rows
    numeric = [c for c in rows.columns if c not in ("kernel", "shape")]
    assert all(c.endswith(UNIT_SUFFIXES) for c in numeric)
    down = rows[rows.kernel == "down_proj"].iloc[0]
    k = next(k for k in km.stage_kernels("denoise", km.Config(precision="fp8", fusion="fused")) if k.name == "down_proj")
    assert down.moved_bytes == k.nbytes * k.count and down.calls_count == k.count


def test_count_gap_text_signs_the_gap_of_the_assumed_kernel_count():
    text = tf.count_gap_text(218, [("nvidia-h200", 299.0), ("gpu-b", 200.0)])
    assert "(218) is 27% below the count on nvidia-h200, 9% above the count on gpu-b" in text
    assert "assumed, not fitted" in text


def test_work_floor_counts_the_work_not_the_stacks_fusion():
    anchors = tf.anchor_table(reference.quoted).set_index("key")
    slow = dataclasses.replace(config.THOR_SPEC, bandwidth_gbps=config.THOR_SPEC.bandwidth_gbps / 2)
    seed_kv = anchors.loc["pipeline_baseline_kv_ms"]
    # the prefix anchor's work floor is chapter 1's roofline floor of the same prefill (plus its prompt's embedding rows)
    assert tf.work_floor_ms(seed_kv, config.THOR_SPEC) == pytest.approx(tf.roofline_prefill_floor_ms("seed"), rel=1e-3)
    assert tf.work_floor_ms(seed_kv, slow) > tf.work_floor_ms(seed_kv, config.THOR_SPEC)
    # no fusion assumed: never above the kernel model's floor of a stack's own kernels where the stack reads the
    # same weights (one that precomputes the expert's modulations reads fewer than the work as chapter 1 counts it)
    thor = tf.thor_device(config.THOR_SPEC.bandwidth_gbps, config.THOR_SPEC.bf16_tflops, 20)
    plain = tf.anchor_table(lambda key: 1.0, [  # every stack that reads the modulation weights, at every stage
        tf.Anchor(f"{s}_{stage}", s, stage) for s, (_, stages) in tf.STACKS.items()
        if not any(v[2] for v in stages.values()) for stage in ("vision", "prefix", "denoise", "whole")])
    work = plain.apply(lambda a: tf.work_floor_ms(a, config.THOR_SPEC), axis=1)
    assert (work <= tf.floors(plain, thor) * 1.001).all()
    # a whole call is its three stages
    whole = anchors.loc["pipeline_baseline_total_ms"]
    parts = sum(tf.work_floor_ms(anchors.loc[f"pipeline_baseline_{s}_ms"], config.THOR_SPEC) for s in ("vision", "kv", "denoise"))
    assert tf.work_floor_ms(whole, config.THOR_SPEC) == pytest.approx(parts)


def test_mlp_traffic_adds_the_unfused_activations_to_the_weights():
    cfg = config.GEMMA_2B
    m = flops.ops_traffic(cfg, 712)
    assert m["weight_bytes"] == 3 * cfg.width * cfg.mlp_dim * 2 * cfg.depth
    assert m["bytes"] == m["weight_bytes"] + m["activation_bytes"] and m["activation_bytes"] > 0
    assert flops.ops_traffic(cfg, 64)["activation_bytes"] < m["activation_bytes"]  # activations scale with the tokens
    # the text follows the bandwidth: at or above the copy rate it cannot separate the limits, well below it can
    at = tf.seed_mlp_text(46.5, m["bytes"] / 46.5e-3 / 1e9, 258, cfg, 712)
    below = tf.seed_mlp_text(46.5, 3 * m["bytes"] / 46.5e-3 / 1e9, 258, cfg, 712)
    assert "cannot separate" in at and "cannot separate" not in below and "below the" in below and "about the" in at
    fit = {"fitted_ms": 53.9, "quoted_ms": 54.0, "eff_bw": 0.5, "eff_compute": 1.0, "spec_gbps": 200.0}
    assert "at 100 GB/s with its matmuls at full rate" in tf.seed_mlp_text(46.5, 130, 258, cfg, 712, fit)
    assert "at 100 GB/s with its matmuls at 60% of the bf16 peak" in tf.seed_fit_words({**fit, "eff_compute": 0.6})
    assert "matmuls" not in tf.seed_fit_words({**fit, "eff_compute": None}) and tf.seed_fit_words(None) == ""


def test_the_traffic_reading_is_one_band_around_the_copy_rate():
    assert [tf.traffic_reading(g, 100.0) for g in (79.0, 81.0, 100.0, 119.0, 121.0)] == [
        "below", "about", "about", "about", "above"]
    assert "cannot separate" in tf.traffic_limit_words("above") and "cannot separate" not in tf.traffic_limit_words("below")


def test_chapter_2_recomputes_chapter_8s_fit_of_the_seeds_prefix():
    thor = tf.thor_device(reference.quoted("thor_bandwidth_gbps"), reference.quoted("thor_bf16_dense_tflops"),
                          int(reference.quoted("thor_sm_count")))
    fit = tf.seed_prefix_fit(reference.quoted, thor)
    used = tf.fit_set(tf.anchor_table(reference.quoted), thor)
    full, held, _ = tf.thor_leave_one_out(used, thor)  # chapter 8's full fit
    row = held.set_index("key").loc[tf.SEED_PREFIX]
    assert fit["fitted_ms"] == pytest.approx(row.fitted_ms) and fit["eff_bw"] == pytest.approx(full.eff_bw)
    assert tf.seed_prefix_fit(lambda k: 1e-3 if k == tf.SEED_PREFIX else reference.quoted(k), thor) is None  # below its floor
