"""The analytic and quoted facts the verdict page's claims share (`seed_facts()`).

Everything here comes from the reference data (`reference.quoted`), the analytic model
(`flops`, `precision_bench.precision_floors`, `peers.spec_floor_ms`) and chapter 9's reference
table: no GPU measurement. The per-claim GPU figures are read by `seed_claims` through the
`verdicts.Ledger`, so that each verdict names the figures it used.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import config, flops, peers, precision_bench, reference
from .config import Hardware
from .thor_fit import seed_fit_words, traffic_limit_words, traffic_reading
from .verdicts import fastest_quoted

# chapter 4/5's names of the precisions in `precision_bench.precision_floors`
BF = "bf16 weights, bf16 compute"
I4 = "INT4 weight-only (group 128), bf16 compute"
F8 = "FP8 weights, FP8 compute"
NV4 = "NVFP4 weights, FP4 compute"
THOR = "Jetson AGX Thor"
TOKENS = 712  # the seed's prefill length
#: the two parts of the MLP the seed's breakdown times apart, as `flops.layer_ops` names their ops
MLP_PARTS: dict[str, tuple[str, ...]] = {"gate+up+activation": ("gate_proj", "up_proj", "gelu_mul"),
                                         "down_proj": ("down_proj",)}


@dataclass(frozen=True)
class SeedFacts:
    """The facts the verdicts share; names as the verdict code reads them."""

    spec: Hardware  # Thor's spec sheet (quoted)
    seedhw: Hardware  # Thor with the seed's measured bandwidth
    b_spec: pd.Series  # `flops.bound_table` row on the spec
    b_seed: pd.Series  # ... on the seed's bandwidth
    mlp_share: float  # of a layer's FLOPs at 712 tokens
    qkvo_share: float
    attn_share: float  # attention (scores and values) of a layer's FLOPs at 712 tokens
    weights_gb: float  # the layers' bf16 weights
    mlp_bytes: float  # bf16 MLP weights of all layers (weights only: `mlp_traffic` counts the activations too)
    mlp_flops: float  # all layers' MLP FLOPs at 712 tokens
    mlp_traffic: dict[str, float]  # DRAM bytes of all layers' MLP, unfused as chapter 1 counts them: part -> bytes
    seed_mlp_ms: float
    seed_kv: float
    seed_mlp_gbps: float  # the MLP's weight bytes only over the seed's time
    seed_mlp_tflops: float
    seed_mlp_traffic_gbps: dict[str, float]  # `mlp_traffic` over the seed's times: part -> GB/s
    seed_down_tflops: float  # the seed's down_proj: its FLOPs over its time
    seed_floor_bw: float
    floor_at_seed_bw: float
    weights_at_spec: float
    tf: pd.DataFrame  # precision floors on Thor's spec, indexed by precision (BF, I4, F8)
    int4_bound: float
    call_floor8: float
    call_floor4: float
    nv_bf16: float
    nv8: float
    nv4: float
    nv4_cos: float
    nv8_cos: float
    nv4_mean: float  # NVIDIA's FP8+NVFP4 mean, the figure chapter 8's verdict cites
    fr: float
    fr4_readme: float  # FlashRT's NVFP4 2-view figure in its README: chapter 8's anchor
    fr_prefix: float
    tp_prefix: float
    fastest_ms: float
    fastest_name: str
    mlp_compute_floor: float
    openpi_pct: float
    replan: float
    budget: float  # ms per inference at 20 Hz
    seed_down_per_flop: float  # the seed's down_proj time over one gate/up GEMM's (equal FLOPs; the SiLU counted in)
    thor_down_wave_slowdown: float  # down_proj per FLOP against gate_proj by wave quantisation on Thor (chapter 3's tiles)
    seed_fp4_runs: dict[str, tuple[float, float]]  # the seed's 4-bit runs on Thor: name -> (ms, cos), quoted
    rtc_ok: bool
    buffering_works: bool
    quoted_20hz: bool  # a figure chapter 8's verdict cites (NVIDIA's mean, FlashRT's FP8) is inside the budget
    works_elsewhere: bool  # something the seed lists as failed works in another setup (quoted)

    def mlp_bound_status(self) -> str:
        """The claim "the prefill is memory-bound" on the seed's own figures: "not held" where Thor's
        roofline says compute-bound; "held" where every part of the seed's MLP, its traffic counted
        unfused (`mlp_traffic`), streams about the seed's measured bandwidth (`thor_fit.traffic_reading`);
        "partly held" otherwise (the times do not pin the limit)."""
        if self.b_spec.bound != "memory":
            return "not held"
        bw = self.seedhw.bandwidth_gbps
        return "held" if all(traffic_reading(g, bw) == "about" for g in self.seed_mlp_traffic_gbps.values()) else "partly held"

    def mlp_traffic_text(self, fit: dict | None) -> str:
        """What the seed's MLP times say about its limit, its bytes counted as chapter 1 counts them and
        read against its measured bandwidth as chapter 2 reads them (`thor_fit.traffic_reading`,
        `traffic_limit_words`), then chapter 8's fit of the seed's prefix (`thor_fit.seed_fit_words`;
        `fit` None where the run lacks it)."""
        bw, gb, t = self.seedhw.bandwidth_gbps, self.seed_mlp_traffic_gbps, self.mlp_traffic
        parts = [p for p in t if p != "whole MLP"]
        why = {"above": "faster than it copies, so not every intermediate went to DRAM at that rate",
               "about": "its bytes could set its time", "below": "its bytes do not explain its time"}
        per_part = "; ".join(f"{p} {gb[p]:.0f} GB/s, {traffic_reading(gb[p], bw)} the {bw:g} measured "
                             f"({why[traffic_reading(gb[p], bw)]})" for p in parts)
        whole = traffic_reading(gb["whole MLP"], bw)
        return (f"Counting every byte the seed's MLP moves with the activation as a kernel of its own (the breakdown's "
                "'gate+up+SiLU' line; chapter 1's op table: weights and activations of "
                f"gate, up, the activation and down), its {self.seed_mlp_ms:g} ms move {t['whole MLP'] / 1e9:.2f} GB: "
                f"{gb['whole MLP']:.0f} GB/s, {whole} the {bw:g} GB/s it measured; its {self.mlp_bytes / 1e9:.2f} GB of weights "
                f"alone, {self.seed_mlp_gbps:.0f} GB/s, while its matmuls ran at {self.seed_mlp_tflops:.0f} of "
                f"{self.spec.bf16_tflops:.0f} TFLOP/s (down_proj alone {self.seed_down_tflops:.0f}). Part by part, as the "
                f"breakdown times them: {per_part}. " + traffic_limit_words(whole) + seed_fit_words(fit))

    def quoted_inside_20hz(self) -> str:
        """How many of the two quoted figures the 20 Hz verdicts rest on (NVIDIA's mean, FlashRT's FP8)
        fit the budget: "both", "one" or "neither"."""
        return "both" if max(self.nv4_mean, self.fr) <= self.budget else "one" if self.quoted_20hz else "neither"

    def analytic_line(self) -> str:
        return (f"analytic: MLP {100 * self.mlp_share:.1f}% of FLOPs, QKV+O {100 * self.qkvo_share:.1f}%, "
                f"weights {self.weights_gb:.2f} GB")


def seed_facts() -> SeedFacts:
    """Compute the shared facts from the reference data and the analytic model."""
    q = reference.quoted
    G = config.GEMMA_2B
    spec, seedhw = config.THOR_SPEC, config.THOR_SEED_MEASURED
    bt = flops.bound_table(G, TOKENS, [spec, seedhw]).set_index("device")
    b_spec, b_seed = bt.iloc[0], bt.iloc[1]
    ops = {o.name: o for o in flops.layer_ops(G, TOKENS)}
    layer_flops = sum(o.flops for o in ops.values())
    mlp_share = sum(ops[k].flops for k in ("gate_proj", "up_proj", "down_proj")) / layer_flops
    qkvo_share = sum(ops[k].flops for k in ("q_proj", "k_proj", "v_proj", "o_proj")) / layer_flops
    attn_share = sum(ops[k].flops for k in ("attn_scores", "attn_values")) / layer_flops
    weights_gb = flops.prefill_weight_bytes(G) / 1e9
    mlp_bytes = flops.ops_traffic(G, TOKENS)["weight_bytes"]
    mlp_flops = G.depth * sum(ops[k].flops for k in ("gate_proj", "up_proj", "down_proj"))
    seed_mlp_ms, seed_kv = q("kv_mlp_total_ms"), q("kv_breakdown_measured_total_ms")
    seed_mlp_gbps = mlp_bytes / (seed_mlp_ms * 1e-3) / 1e9
    seed_mlp_tflops = mlp_flops / (seed_mlp_ms * 1e-3) / 1e12
    # The seed's breakdown times "gate+up+SiLU" and down_proj apart: every MLP op's weights and activations
    # read and written once each (chapter 1's op table, `flops.layer_ops`: the activation a kernel of its own)
    mlp_traffic = {part: flops.ops_traffic(G, TOKENS, names)["bytes"] for part, names in MLP_PARTS.items()}
    mlp_traffic["whole MLP"] = flops.ops_traffic(G, TOKENS)["bytes"]
    seed_part_ms = {"gate+up+activation": q("kv_breakdown_mlp_gate_up_silu_ms"), "down_proj": q("kv_breakdown_mlp_down_ms"),
                    "whole MLP": seed_mlp_ms}
    seed_mlp_traffic_gbps = {part: mlp_traffic[part] / (ms * 1e-3) / 1e9 for part, ms in seed_part_ms.items()}
    seed_down_tflops = G.depth * ops["down_proj"].flops / (seed_part_ms["down_proj"] * 1e-3) / 1e12
    seed_floor_bw = q("weight_read_floor_bandwidth_gbps")
    floor_at_seed_bw = seedhw.memory_ms(q("weights_total_bf16_gb") * 1e9)
    weights_at_spec = spec.memory_ms(q("weights_total_bf16_gb") * 1e9)
    # Floors divide by the spec's bandwidth: the seed's measured 130.1 GB/s is no floor (FlashRT's FP8 denoise
    # on Thor runs at about that rate; chapter 8 lists the anchors that beat it).
    # The 712-token prefill's floor per weight / compute precision on Thor's spec, as chapters 4 and 5 count it
    # (`precision_bench.precision_floors`: weights once, the bf16 K/V cache written, input and output).
    thor_dev = {"name": "Thor (quoted)", "bandwidth_gbps": q("thor_bandwidth_gbps"),
                "tflops": {"bf16": q("thor_bf16_dense_tflops"), "fp8": q("thor_fp8_dense_tflops"),
                           "fp4": q("thor_fp4_dense_tflops")}}
    tf = precision_bench.precision_floors(G, TOKENS, [thor_dev]).set_index("precision")
    int4_bound = float(tf.speedup_vs_bf16_floor[I4])  # chapter 5's "at most" on Thor's spec
    # The whole call's floor on Thor's spec sheet, counted as chapter 9 counts it (`peers.floor_ms`).
    call_floor8, call_floor4 = (peers.spec_floor_ms(THOR, p, 2, 10) for p in ("fp8", "fp8+fp4"))
    nv_bf16, nv8, nv4 = q("nvidia_thor_pytorch_bf16_compile_ms"), q("nvidia_thor_trt_fp8_ms"), q("nvidia_thor_trt_fp8_nvfp4_ms")
    nv4_cos, nv8_cos = q("nvidia_thor_nvfp4_cos"), q("nvidia_thor_fp8_cos")
    nv4_mean, fr4_readme = q("nvidia_thor_trt_fp8_nvfp4_mean_ms"), q("flashrt_nvfp4_2view_ms")
    fr, fr_prefix, tp_prefix = q("flashrt_fp8_2view_ms"), q("flashrt_prefix_ms"), q("turbopi_trt_fp8_10step_prefix_ms")
    fastest = fastest_quoted(THOR, views=2, steps=10)  # chapter 9's reference data (peers.csv)
    fastest_ms = fastest["latency_ms"] if fastest else min(nv4_mean, fr)
    fastest_name = f"{fastest['peer']}, {fastest['precision'].upper()}" if fastest else "quoted builds"
    # down_proj against gate_proj per FLOP (the three MLP GEMMs have equal FLOPs): the seed's breakdown, and the
    # wave arithmetic chapter 3 does for Thor (128x256 tiles assumed, `flops.waves`'s defaults)
    seed_down_per_flop = q("kv_breakdown_mlp_down_ms") / (q("kv_breakdown_mlp_gate_up_silu_ms") / 2)
    sms = int(q("thor_sm_count"))
    thor_down_wave_slowdown = (flops.waves(TOKENS, G.mlp_dim, sms)["sm_utilisation"]
                               / flops.waves(TOKENS, G.width, sms)["sm_utilisation"])
    seed_fp4_runs = {name: (q(f"fp4test_{key}_ms"), q(f"fp4test_{key}_cos")) for name, key in (
        ("Torch-TensorRT NVFP4 run", "torch_trt_nvfp4"), ("PyTorch NVFP4 run", "pytorch_nvfp4"), ("W4A8 run", "w4a8"))}
    mlp_compute_floor = spec.compute_ms(mlp_flops)
    openpi_pct, replan = q("openpi_pi05_libero_average_pct"), q("openpi_libero_replan_steps")
    budget = 1e3 / q("target20_target_hz")
    rtc_ok = q("rtc_min_delay_ms") > q("pipeline_baseline_total_ms")
    buffering_works = openpi_pct >= 90
    quoted_20hz = min(nv4_mean, fr) <= budget  # chapter 8's rule, on the figures it cites
    works_elsewhere = (nv_bf16 / nv8 > 1.5) or (nv4_cos >= 0.99) or buffering_works
    return SeedFacts(
        spec=spec, seedhw=seedhw, b_spec=b_spec, b_seed=b_seed, mlp_share=mlp_share, qkvo_share=qkvo_share,
        attn_share=attn_share, weights_gb=weights_gb, mlp_bytes=mlp_bytes, mlp_flops=mlp_flops, mlp_traffic=mlp_traffic,
        seed_mlp_ms=seed_mlp_ms, seed_kv=seed_kv, seed_mlp_gbps=seed_mlp_gbps, seed_mlp_tflops=seed_mlp_tflops,
        seed_mlp_traffic_gbps=seed_mlp_traffic_gbps, seed_down_tflops=seed_down_tflops, seed_floor_bw=seed_floor_bw,
        floor_at_seed_bw=floor_at_seed_bw, weights_at_spec=weights_at_spec, tf=tf, int4_bound=int4_bound,
        call_floor8=call_floor8, call_floor4=call_floor4, nv_bf16=nv_bf16, nv8=nv8, nv4=nv4, nv4_cos=nv4_cos,
        nv8_cos=nv8_cos, nv4_mean=nv4_mean, fr=fr, fr4_readme=fr4_readme, fr_prefix=fr_prefix, tp_prefix=tp_prefix,
        fastest_ms=fastest_ms, fastest_name=fastest_name,
        mlp_compute_floor=mlp_compute_floor, openpi_pct=openpi_pct, replan=replan, budget=budget,
        seed_down_per_flop=seed_down_per_flop, thor_down_wave_slowdown=thor_down_wave_slowdown,
        seed_fp4_runs=seed_fp4_runs, rtc_ok=rtc_ok, buffering_works=buffering_works, quoted_20hz=quoted_20hz,
        works_elsewhere=works_elsewhere)
