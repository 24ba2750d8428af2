"""The measurement helpers behind chapters 2 and 3, on tiny configs on the CPU."""
import pandas as pd
import pytest
import torch

from pi05perf import config, flops, prefill_bench, timing
from pi05perf.check import relative_error

TINY = config.tiny_config(config.GEMMA_2B, depth=2)


def test_splitk_matches_plain_matmul():
    x, w_t = torch.randn(24, 64), torch.randn(64, 16)
    for splits in (1, 2, 4):
        assert relative_error(prefill_bench.splitk_linear(x, w_t, splits), x @ w_t) < 1e-6


def test_waves_fill_and_underfill():
    down = flops.waves(712, 2048, sms=132)  # 6 x 8 tiles of 128 x 256
    assert down["tiles"] == 48 and down["sm_utilisation"] == pytest.approx(48 / 132)
    full = flops.waves(128 * 12, 256 * 11, sms=132)
    assert full["tiles"] == 132 and full["sm_utilisation"] == 1.0
    assert flops.waves(712, 2048, sms=132, split_k=2)["tiles"] == 96


def test_crossover_is_where_compute_meets_memory():
    hw = config.Hardware("x", bandwidth_gbps=1000.0, bf16_tflops=500.0, fp8_tflops=None, source="test")
    t = flops.crossover_tokens(config.GEMMA_2B, hw)
    one = config.GEMMA_2B.with_depth(1)
    at, before = flops.stack_cost(one, t), flops.stack_cost(one, t - 1)
    assert at["flops"] / 500e12 >= at["min_bytes"] / 1000e9
    assert before["flops"] / 500e12 < before["min_bytes"] / 1000e9
    assert 400 < t < 600  # ~ ridge (500 FLOP/byte): each bf16 weight byte serves one FLOP per token


def test_bound_table_flags_thor_memory_bound_and_h100_compute_bound_at_712():
    table = flops.bound_table(config.GEMMA_2B, 712, [config.THOR_SPEC, config.H100_SXM_SPEC]).set_index("device")
    assert table.bound[config.THOR_SPEC.name] == "memory"
    assert table.bound[config.H100_SXM_SPEC.name] == "compute"
    assert (table.floor_ms >= table.compute_floor_ms).all() and (table.floor_ms >= table.memory_floor_ms).all()


def test_min_bytes_is_weights_plus_cache_plus_io():
    c = flops.stack_cost(config.GEMMA_2B, 712)
    kv = 18 * 2 * 712 * 256 * 2
    assert c["min_bytes"] == c["weight_bytes"] + kv + 2 * 712 * 2048 * 2
    assert c["min_bytes"] < c["bytes"]


def test_variants_checked_against_fp32_and_timed_on_cpu():
    table, fns = prefill_bench.prefill_variants(TINY, 16, torch.device("cpu"), torch.float32, 2,
                                                ["eager", "eager_fused"], tolerance=1e-4, log=lambda *_: None)
    assert list(table.variant) == ["eager", "eager_fused"] and set(fns) == {"eager", "eager_fused"}
    assert (table.rel_err_vs_fp32 < 1e-4).all() and (table.median_ms > 0).all()


def test_a_wrong_variant_is_refused_before_timing(monkeypatch):
    real = prefill_bench.fuse_projections

    def fuse_wrongly(model):  # a fused path that drops part of one layer's MLP
        real(model)
        with torch.no_grad():
            model.layers[0].mlp.gate_up_proj.weight[:8] = 0
        return model

    monkeypatch.setattr(prefill_bench, "fuse_projections", fuse_wrongly)
    with pytest.raises(AssertionError, match="relative error"):
        prefill_bench.prefill_variants(TINY, 16, torch.device("cpu"), torch.float32, 1, ["eager_fused"],
                                       tolerance=1e-4, log=lambda *_: None)


def test_layer_ops_table():
    ops = prefill_bench.time_layer_ops(TINY, 16, torch.device("cpu"), torch.float32, 2)
    assert {"q_proj", "down_proj", "attention (QKᵀ + AV)"} <= set(ops.op) and (ops.tflops > 0).all()


def test_sweep_on_cpu_falls_back_to_the_eager_layer_labelled_host_overhead():
    sweep = prefill_bench.layer_token_sweep(TINY, [4, 8], torch.device("cpu"), torch.float32, 2, [config.THOR_SPEC],
                                            tolerance=1e-4)
    assert set(sweep.series) == {"1 layer, eager (host overhead)", f"floor: {config.THOR_SPEC.name}"}
    eager = sweep[sweep.series.str.startswith("1 layer")]
    assert (eager.error == "").all() and (eager.rel_err_vs_fp32 < 1e-4).all() and (eager.per_layer_ms > 0).all()


def test_sweep_records_a_graph_that_cannot_be_captured_instead_of_raising():
    sweep = prefill_bench.layer_token_sweep(TINY, [4], torch.device("cpu"), torch.float32, 1, [], tolerance=1e-4,
                                            graph=True, log=lambda *_: None)
    graphed = sweep[sweep.series.str.contains("CUDA graph")]
    assert set(graphed.layers) == {1, TINY.depth}
    assert (graphed.error != "").all() and graphed.median_ms.isna().all()
    assert (sweep[sweep.series.str.contains("eager")].error == "").all()


def test_kernel_tile_read_from_cublas_and_nvjet_names():
    assert prefill_bench.kernel_tile("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroup") == (128, 256)
    assert prefill_bench.kernel_tile("nvjet_tst_192x128_64x4_2x1_v_bz_coopA_TNT") == (192, 128)
    assert prefill_bench.kernel_tile("triton_poi_fused_mul_0") is None


def test_declared_split_reads_the_schedule_from_the_kernel_name():
    assert prefill_bench.declared_split("nvjet_sm90_tst_128x184_64x5_2x1_v_bz_coopA_splitK_TNT") == "split-K"
    assert prefill_bench.declared_split("sm90_xmma_gemm_bf16_split_k_kernel") == "split-K"
    assert prefill_bench.declared_split("cutlass_gemm_streamk_128x128") == "stream-K"
    assert prefill_bench.declared_split("nvjet_sm90_tst_128x240_64x4_2x1_v_bz_coopA_TNT") is None
    assert prefill_bench.declared_split("") is None


def test_matmul_sweep_names_the_kernel_and_counts_tiles_both_ways():
    mm = prefill_bench.matmul_sweep({"down": (24, 16, 64)}, torch.device("cpu"), torch.float32, 1, splits=(1, 2))
    assert list(mm.layout) == ["linear (W[N,K], x@W.T)", "row-major (W[K,N], x@W)", "split-K 2"]
    assert mm.kernel.str.startswith("aten::").all() and (~mm.tile_named).all()
    tiles = mm.set_index("layout").tiles
    assert tiles["split-K 2"] == 2 * tiles["linear (W[N,K], x@W.T)"]


def test_thor_down_proj_is_2_4_waves_and_loses_a_fifth():
    w = flops.waves(712, 2048, sms=20)
    assert w["tiles"] == 48 and w["waves"] == pytest.approx(2.4) and w["sm_utilisation"] == pytest.approx(0.8)


def test_component_floors_cover_every_profiled_group():
    floors = prefill_bench.component_floors(config.GEMMA_2B, 712, peak_tflops=800.0, copy_gbps=4000.0)
    assert set(floors) == {"qkvo_proj", "gate_up_proj", "down_proj", "attention", "elementwise"}
    # gate and up are two GEMMs of down_proj's FLOPs each: twice its compute floor
    assert floors["gate_up_proj"] == pytest.approx(2 * floors["down_proj"])
    assert all(v > 0 for v in floors.values())


def test_timing_reports_median_and_spread():
    t = timing.time_fn(lambda: torch.randn(64, 64) @ torch.randn(64, 64), "cpu", repeats=5)
    assert t.n == 5 and t.p25_ms <= t.median_ms <= t.p75_ms
    a, b = timing.Timing(1.0, 0.9, 1.1, 5, ""), timing.Timing(1.05, 1.0, 1.2, 5, "")
    assert timing.spread_overlaps(a, b) and not timing.spread_overlaps(a, timing.Timing(2.0, 1.9, 2.1, 5, ""))


def test_target_gap_text_ranks_the_groups_over_their_floors():
    import pandas as pd

    g = pd.DataFrame({"group": ["gate_up_proj", "attention", "elementwise"], "total_ms": [2.4, 0.55, 0.88],
                      "floor_ms": [2.46, 0.11, 0.45]})
    text = prefill_bench.target_gap_text(g, 6.06, 4.14, 0.46)
    assert "1.25× the floor is 5.17 ms; the timed prefill is 0.88 ms above it" in text
    assert text.index("attention +0.44") < text.index("elementwise +0.43")  # largest excess first
    over, caveat = text.split(" **", 1)
    assert "gate_up_proj" not in over and "gaps between kernels 0.46 ms" in over
    # a group faster than its floor says the ceiling is low, by how much
    assert caveat.startswith("gate_up_proj ran at 0.98× its floor") and "at least 2.5% low" in caveat
    fair = g.assign(floor_ms=[2.3, 0.11, 0.45])
    assert "**" not in prefill_bench.target_gap_text(fair, 6.06, 4.14, 0.46)
    assert prefill_bench.target_gap_text(g, 5.0, 4.14, None).startswith("The prefill meets 1.25×")


def _gpu_sweep(down_tflops: float, down_kernel: str = "nvjet_sm90_128x184_splitK") -> pd.DataFrame:
    """A `matmul_sweep` table as a GPU run writes it: nvjet kernel names that declare their tiles."""
    lin = prefill_bench.LINEAR_LAYOUT
    row = dict(M=712, tile_named=True, weight_gbps=300.0, median_ms=1.0, p25_ms=0.9, p75_ms=1.1)
    return pd.DataFrame([
        {**row, "gemm": "down_proj", "layout": lin, "N": 2048, "tile": "128x184", "tiles": 72, "waves": 72 / 132,
         "tflops": down_tflops, "kernel": down_kernel},
        {**row, "gemm": "down_proj", "layout": "split-K 2", "N": 2048, "tile": "128x184", "tiles": 144,
         "waves": 144 / 132, "tflops": 2 * down_tflops, "kernel": "k2", "median_ms": 0.5, "p25_ms": 0.45, "p75_ms": 0.55},
        {**row, "gemm": "gate_proj", "layout": lin, "N": 16384, "tile": "128x240", "tiles": 414, "waves": 414 / 132,
         "tflops": 600.0, "kernel": "nvjet_sm90_128x240"}])


def test_down_proj_text_names_the_kernels_the_split_and_the_best_layout():
    mm = _gpu_sweep(300.0)
    text = prefill_bench.down_proj_text(mm)
    assert "`nvjet_sm90_128x184_splitK`" in text and "`nvjet_sm90_128x240`" in text
    assert "0.50× gate_proj's rate with a different kernel" in text
    # the (N, M) tiles predict the 0.50x, but a split-K kernel's grid is not the no-split tile count
    assert "within 15% (tiles along N, M), but down_proj's kernel declares split-K" in text
    assert "**split-K 2** at 600 TFLOP/s (2.00× nn.Linear)" in text and "within the noise" not in text
    plain = _gpu_sweep(300.0, down_kernel="nvjet_sm90_128x184")
    text = prefill_bench.down_proj_text(plain)
    assert "declares split" not in text and "the gap is the last wave's idle SMs." in text


def test_down_proj_text_never_compares_nn_linear_with_itself():
    mm = _gpu_sweep(300.0)
    mm.loc[mm.layout == "split-K 2", "tflops"] = 100.0  # nn.Linear's own layout is the fastest
    text = prefill_bench.down_proj_text(mm)
    assert "no other layout beats nn.Linear's own (300 TFLOP/s)" in text
    assert "1.00× nn.Linear" not in text and "within the noise" not in text


def test_autotune_text_tells_host_time_from_gpu_time_by_kernel_durations():
    lin, at = prefill_bench.LINEAR_LAYOUT, prefill_bench.AUTOTUNE_LAYOUT
    rows = pd.DataFrame([{"layout": lin, "kernel": "k", "median_ms": 0.074, "kernel_ms": 0.070},
                         {"layout": at, "kernel": "k", "median_ms": 0.145, "kernel_ms": 0.071}]).set_index("layout")
    text = prefill_bench.autotune_text(rows)
    assert "the same kernel as nn.Linear" in text and "host overhead" in text
    # the same extra time spent in the kernels is not host overhead
    gpu = rows.assign(kernel=["k", "k2"], kernel_ms=[0.070, 0.140])
    text = prefill_bench.autotune_text(gpu)
    assert "a kernel of its own choice" in text and "host overhead" not in text
    assert prefill_bench.autotune_text(rows.drop(index=at)) == ""
    assert prefill_bench.autotune_text(rows.assign(kernel_ms=float("nan"))) == ""


def test_matmul_sweep_records_each_calls_kernel_time():
    mm = prefill_bench.matmul_sweep({"down": (24, 16, 64)}, torch.device("cpu"), torch.float32, 1, splits=(1,))
    assert (mm.kernel_ms > 0).all()

