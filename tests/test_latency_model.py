"""The latency model: curves, fitting, predictions against known answers, and the Thor floors."""
import math

import pandas as pd
import pytest

from pi05perf import config, latency_model as lm


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


def test_seed_efficiency_and_projection():
    eff = lm.seed_efficiency(54.0)
    floor = lm.floor_table(lm.Scenario("base"), config.THOR_SEED_MEASURED).set_index("stage").floor_ms["prefix"]
    assert eff == pytest.approx(54.0 / floor) and eff > 1
    p = lm.thor_projection([lm.Scenario("a"), lm.Scenario("b", steps=1)], {"seed": eff})
    for name, g in p.groupby("scenario"):
        g = g.set_index("stage")
        assert g.floor_ms["whole"] == pytest.approx(g.floor_ms[["vision", "prefix", "denoise"]].sum())
        assert g.projected_seed_ms["whole"] == pytest.approx(eff * g.floor_ms["whole"])
        assert g.projected_seed_hz["whole"] == pytest.approx(1e3 / g.projected_seed_ms["whole"])
    wa = p[(p.stage == "whole") & (p.scenario == "a")].projected_seed_ms.iloc[0]
    wb = p[(p.stage == "whole") & (p.scenario == "b")].projected_seed_ms.iloc[0]
    assert wb < wa


def test_implied_bandwidth():
    s = lm.Scenario("fp8", fp8=True)
    nbytes = lm.floor_table(s, config.THOR_SPEC).floor_bytes.sum()
    assert lm.implied_bandwidth_gbps(s, 40.0) == pytest.approx(nbytes / 0.040 / 1e9)


def test_end_to_end_on_a_tiny_cpu_model():
    import torch

    from pi05perf import pipeline_bench as pb

    a = pb.arch(False)
    b = pb.PipelineBench(a, torch.device("cpu"), torch.float32, 2, [4, 2], log=lambda *x: None)
    R = pb.Shape(2, 5, 4, 6)
    rows = b.measure_many("eager_fused", pb.STAGES, R)
    for T in (6, 30):
        rows += b.measure_many("eager_fused", ("prefill", "denoise"), pb.Shape(0, T, 4, 6))
    rows.append(b.measure("eager_fused", "vision", pb.Shape(4, 5, 4, 6)))
    m = lm.fit(pd.DataFrame(rows))
    p = m.predict(1, a.tokens_per_image, 5, 2)
    assert all(math.isfinite(v) and v > 0 for k, v in p.items() if k != "whole") and math.isfinite(p["whole"])
