"""The seed's conclusions judged one by one: a function per section of the seed's summary, in the
order the verdict page lists them (`SECTIONS`), and the page's closing paragraph.

Each section function records its claims on a `verdicts.Ledger` (quote, verdict, evidence, the
chapters cited) from the shared analytic and quoted facts (`seed_facts.SeedFacts`) and the GPU
figures it reads through the ledger; reading a figure just before its claim is what names it in
that claim's "figure used" column, so the reads stay beside the claim they support.
"""
from __future__ import annotations

from typing import Callable

from . import claims as figs, config, fp8_paths as FP, precision_bench as PB, prefill_bench, reference
from . import triton_matmul as TM, verdicts as V
from .seed_facts import BF, F8, NV4, SeedFacts
from .verdicts import NOT_YET, Ledger, status_of as gpu_status, text as gpu_text

q = reference.quoted


def int4_figures(ledger: Ledger) -> tuple[float | None, float | None]:
    """Chapter 5's two INT4 GPU kernel figures, time over bf16 cuBLAS on one MLP's two matmuls at 712
    tokens: torch's tinygemm (a decode kernel) and a prefill-class Triton W4A16 kernel. Its whole INT4
    prefill is timed eager only (host-bound), so no verdict reads it."""
    return (ledger.gpu("ch05_int4_fp4", "int4wo_tokens712_vs_bf16_ratio"),
            ledger.gpu("ch05_int4_fp4", "int4_prefill_kernel_tokens712_vs_bf16_ratio"))


def latency_sources(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "延迟来源分析 — where the latency comes from"."""
    gpu, claim, gpu_name = ledger.gpu, ledger.claim, ledger.device
    spec, seedhw, b_spec, b_seed = facts.spec, facts.seedhw, facts.b_spec, facts.b_seed
    seed_mlp_ms = facts.seed_mlp_ms
    floor_at_seed_bw, weights_at_spec = facts.floor_at_seed_bw, facts.weights_at_spec
    section = "延迟来源分析 — where the latency comes from"
    claim(section, "The KV-cache prefill is memory-bandwidth-bound, not compute-bound.", facts.mlp_bound_status(),
          f"By the roofline, yes on Thor: {b_spec.intensity_flop_per_byte:.0f} FLOP/byte against a ridge of "
          f"{b_spec.ridge_flop_per_byte:.0f} (spec) or {b_seed.ridge_flop_per_byte:.0f} (the seed's bandwidth). "
          + facts.mlp_traffic_text(V.seed_prefix_fit(ledger))
          + f" On {gpu_name} the prefill is compute-bound"
          + (f" (intensity {gpu('ch02_roofline', 'prefill712_intensity_flop_per_byte'):.0f} FLOP/byte against a measured "
             f"ridge of {1e3 * gpu('ch02_roofline', 'matmul_bf16_tflops') / gpu('ch02_roofline', 'copy_gbps'):.0f})."
             if gpu("ch02_roofline", "copy_gbps") and gpu("ch02_roofline", "prefill712_intensity_flop_per_byte")
             and gpu("ch02_roofline", "matmul_bf16_tflops") else f" ({NOT_YET})."),
          "ch01_flops", "ch02_roofline", "ch08_roads_to_20hz", short="the prefill is memory-bound")
    claim(section, "Reading the weights takes about 22 ms (3.96 GB / 180 GB/s): the theoretical floor.",
          "not held" if abs(floor_at_seed_bw - q("weight_read_floor_ms")) / q("weight_read_floor_ms") > 0.2 else "held",
          f"The 180 GB/s is not a measured figure: the seed measured {seedhw.bandwidth_gbps:g} GB/s on the same board. At that "
          f"bandwidth the {q('weights_total_bf16_gb'):g} GB of weights alone take {floor_at_seed_bw:.1f} ms to read, and the 712-token "
          f"prefill's memory floor (weights, the K/V cache written, input and output: chapter 2's floor) is "
          f"{b_seed.memory_floor_ms:.1f} ms; at the spec's {spec.bandwidth_gbps:g} GB/s, {weights_at_spec:.1f} ms for the weights and "
          f"{b_spec.memory_floor_ms:.1f} ms for the memory floor. The compute floor (FLOPs at the spec's dense bf16 rate) is "
          f"{b_spec.compute_floor_ms:.1f} ms, "
          + ("below" if b_spec.compute_floor_ms < b_spec.memory_floor_ms else "above") + " the memory floor.",
          "ch01_flops", "ch02_roofline", short="a 22 ms weight-read floor")
    claim(section, f"Thor's theoretical bandwidth is ~{q('mem_bw_theoretical_gbps'):g} GB/s, its effective bandwidth "
          f"{q('mem_bw_effective_low_gbps'):g}–{q('mem_bw_effective_high_gbps'):g} GB/s.",
          "not held" if q("mem_bw_effective_low_gbps") > seedhw.bandwidth_gbps or q("mem_bw_theoretical_gbps") < spec.bandwidth_gbps else "held",
          f"NVIDIA's spec is {spec.bandwidth_gbps:g} GB/s; the seed's own Phase 0 measurement is {seedhw.bandwidth_gbps:g} GB/s, "
          "below the 'effective' range it used.", "ch02_roofline", short="~200 GB/s theoretical, 150–180 effective")
    ln_est, ln_meas = q("latency_comp_layernorm_rope_ms"), q("kv_breakdown_layernorm_ms")
    claim(section, "The 48–52 ms are weights 22 + activations 10 + unhidden compute 8 + LayerNorm/RoPE 5 + kernel overhead 3 ms.",
          "not held" if seed_mlp_ms > q("latency_comp_weight_read_ms") + q("latency_comp_compute_unhidden_ms") else "partly held",
          f"An estimate fitted to the total, contradicted by the seed's own Phase 0 breakdown: the MLP alone took {seed_mlp_ms:g} ms "
          f"(more than the 'weights + unhidden compute' of the estimate), LayerNorm {ln_meas:g} ms against the {ln_est:g} ms "
          f"assumed for LayerNorm + RoPE." + V.best_prefill_text(ledger),
          "ch03_prefill_breakdown", short="the 22 + 10 + 8 + 5 + 3 ms composition")


def tensorrt_fp8(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "为什么 TRT FP8 优化效果有限 — why TensorRT FP8 helped little"."""
    gpu, claim, gpu_name = ledger.gpu, ledger.claim, ledger.device
    spec, qkvo_share, tf, nv_bf16, nv8 = facts.spec, facts.qkvo_share, facts.tf, facts.nv_bf16, facts.nv8
    fr_prefix, tp_prefix = facts.fr_prefix, facts.tp_prefix
    section = "为什么 TRT FP8 优化效果有限 — why TensorRT FP8 helped little"
    g = gpu("ch04_fp8_tensorrt", "fp8_full_vs_mlp_only_speedup_ratio")
    claim(section, f"Full-coverage TensorRT FP8 (QKV+O+MLP) is only {q('trt_full_coverage_speedup_ratio'):g}× faster than MLP-only FP8.",
          gpu_status(g, lambda v: "held" if v < 1.15 else "not held"),
          f"Expected: QKV+O are {100 * qkvo_share:.1f}% of the FLOPs. Speed-up of FP8 everywhere over FP8 on the MLP only, "
          f"{gpu_name}: {gpu_text(g, '.2f', '×')}.", "ch01_flops", "ch04_fp8_tensorrt", short="full-coverage FP8 adds little")
    claim(section, "The MLP is already FP8, so little room is left.",
          "not held" if fr_prefix < tp_prefix / 1.5 else "partly held",
          f"On the same Thor, FlashRT's FP8 prefix takes {fr_prefix:g} ms against {tp_prefix:g} ms in TurboPi's Torch-TRT FP8 "
          f"(quoted): {tp_prefix / fr_prefix:.1f}× of room in the FP8 prefill itself. Not like for like: TurboPi's prefix is "
          f"the seed's {config.PREFIX_TOKENS} tokens, FlashRT's {q('flashrt_encoder_seq_tokens'):g} (its prompt unpadded) with "
          f"{q('flashrt_prefix_dispatch_overhead_ms'):g} ms of launch gaps; per token the room is "
          f"{(tp_prefix / config.PREFIX_TOKENS) / (fr_prefix / q('flashrt_encoder_seq_tokens')):.1f}×.",
          "ch04_fp8_tensorrt", "ch07_pipeline",
          short="no room left after FP8 MLP")
    f8 = gpu("ch04_fp8_tensorrt", "fp8_memory_bound_speedup_ratio")
    fp8_mb_variant = ledger.parameter("ch04_fp8_tensorrt", "memory_bound_variant")
    fp8_mb_path = (FP.fp8_path_words(fp8_mb_variant, PB.memory_bound_scope(True)) if fp8_mb_variant else
                   "chapter 4 names the variant; this run did not record it")
    f8_tokens = gpu("ch04_fp8_tensorrt", "fp8_memory_bound_tokens")
    claim(section, "The bottleneck is memory bandwidth: FP8 reduces the computation but the weights still have to be read.",
          figs.fp8_memory_bound_status(f8),
          f"FP8 weights are half the bytes: the memory floor of the prefill at the spec's {spec.bandwidth_gbps:g} GB/s drops from "
          f"{tf.memory_ms[BF]:.1f} to {tf.memory_ms[F8]:.1f} ms, and on Thor NVIDIA's TensorRT FP8 build runs the "
          f"whole inference {nv_bf16 / nv8:.1f}× faster than PyTorch bf16 (quoted). Measured where {gpu_name} is memory-bound "
          f"({'not measured in this run' if f8_tokens is None else f'{f8_tokens:.0f} tokens'}), this book's FP8 path "
          f"({fp8_mb_path}) runs {gpu_text(f8, '.2f', '×')} as fast as bf16"
          + ("." if f8 is None or f8 > 1.1 else ": it does not realise the halved bytes. " + V.fp8_kernel_evidence(ledger, fp8_mb_variant)
             + " A result about these kernels on this GPU, not about bandwidth."),
          "ch04_fp8_tensorrt", "ch05_int4_fp4", "ch06_triton", "ch07_pipeline", short="FP8 cannot help a bandwidth-bound prefill")
    claim(section, "QKV/O projections are only 8.6% of the computation: optimising them gains little.",
          "held" if qkvo_share < 0.12 else "not held",
          f"Counted with attention in full, the four projections are {100 * qkvo_share:.1f}% of a layer's FLOPs at 712 tokens.",
          "ch01_flops", short="QKV/O are a small share")


def int4_fp4(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "INT4/FP4 量化分析 — INT4/FP4 quantization"."""
    gpu, claim, gpu_name = ledger.gpu, ledger.claim, ledger.device
    tf, int4_bound, nv_bf16, nv8, nv4 = facts.tf, facts.int4_bound, facts.nv_bf16, facts.nv8, facts.nv4
    nv4_cos, nv8_cos = facts.nv4_cos, facts.nv8_cos
    section = "INT4/FP4 量化分析 — INT4/FP4 quantization"
    i4_tiny, i4_kernel = int4_figures(ledger)
    claim(section, "INT4 would read a quarter of the bytes: ~5.5 ms instead of ~22 ms, a 4× speed-up (FP8: 2×).",
          V.int4_premise_status(int4_bound, q("int4proj_int4_speedup_ratio")),
          f"The byte arithmetic is right; the speed-up is not: weight-only INT4 still computes in bf16, so the prefill cannot go "
          f"below its compute floor ({tf.compute_ms[BF]:.1f} ms at the spec's dense bf16 rate): at most "
          f"{int4_bound:.2f}× on Thor's spec, under half the {q('int4proj_int4_speedup_ratio'):g}× claimed (chapter 5's bound and "
          "rule). " + V.int4_evidence(gpu_name, i4_tiny, i4_kernel),
          "ch05_int4_fp4", short="INT4 gives 4×")
    claim(section, "Quantize only the LLM backbone, not SigLIP (17.2 ms, quantization-sensitive).",
          "not testable here", "SigLIP's sensitivity to quantization is not measured in this book.", "ch07_pipeline",
          short="leave SigLIP unquantized")
    c_ok = gpu("ch05_int4_fp4", "int4_correct_scale_cos")
    levels = ledger.rows("ch05_int4_fp4", "fault_levels", cite=True)
    claim(section, "INT4/FP4 is unusable on Thor: TensorRT ignores the scale factors (cos ≈ 0).",
          "partly held" if nv4_cos >= 0.99 else "held",
          f"The seed's toolchain failed, but NVIDIA's TensorRT FP8+NVFP4 build runs pi0.5 on Thor in {nv4:g} ms at cos {nv4_cos:g} "
          f"(quoted). Cosine of the INT4 model's output to bf16 on {gpu_name}, with its scales: {gpu_text(c_ok, '.4f')}. "
          + V.scale_fault_reading(levels, facts.seed_fp4_runs, float(tf.floor_ms[NV4]))
          + " The seed's log line (`[SCALE] has invalid precision FP4, ignored`) says a precision set on the scale was "
          "ignored, not that the scale values were dropped (chapter 5).", "ch05_int4_fp4", short="INT4/FP4 unusable on Thor")
    claim(section, "Ways out: wait for TensorRT 10.15+ (medium), hand-written FP4 kernels via TVM in 6–8 weeks (low).",
          "held" if q("thor_tensorrt_version_jetpack721") >= q("trt_fix_expected_version") and nv4_cos >= 0.99 else "not testable here",
          f"A later software stack did it: JetPack 7.2.1 ships TensorRT {q('thor_tensorrt_version_jetpack721'):g}, and NVIDIA's "
          f"FP8+NVFP4 build on JetPack 7.2 runs at cos {nv4_cos:g} (quoted). The TVM estimate is not testable here.",
          "ch05_int4_fp4", short="a newer TensorRT may fix FP4")
    claim(section, "FP8 runs but its scales are ignored: it is really FP16.",
          "not testable here",
          "A statement about the seed's TensorRT engines on Thor; no Thor and no TensorRT here, as chapter 4 says. It fits the "
          "open TensorRT issue chapter 4 cites (FP8/FP4 builder flags silently building higher-precision engines on Thor with "
          f"TensorRT {q('thor_tensorrt_version_jetpack70'):g}, the version JetPack 7.0/7.1 ships): a toolchain fault, not a limit "
          f"of FP8. NVIDIA's TensorRT FP8 build on a later JetPack runs in {nv8:g} ms against {nv_bf16:g} ms for "
          f"PyTorch bf16 ({nv_bf16 / nv8:.1f}×) at cos {nv8_cos:g} (quoted), but that compares two engines as well as two "
          "precisions, and it is not the seed's engine: it does not show what the seed's build ran.",
          "ch04_fp8_tensorrt", short="FP8 on Thor is really FP16")
    claim(section, "Current plan: TensorRT FP16 + CUDA graphs, 12 Hz.",
          "not testable here", f"A Thor measurement (at 3 steps, ~{q('best_3step_latency_ms'):g} ms); no Thor here.", "ch07_pipeline",
          short="TensorRT FP16 + CUDA graphs at 12 Hz")


#: what chapter 7's toy simulation may support: mechanisms, never a figure for pi0.5
SIM_MECHANICS = ("Chapter 7's toy simulation (a point steered to a goal, not pi0.5, not LIBERO) shows mechanisms only: "
                 "a simulator whose clock waits for the policy hides what latency costs; it cannot show how pi0.5 behaves.")


def action_buffering(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "Pipeline 流水线优化实验 — the action-buffering experiment"."""
    claim = ledger.claim
    openpi_pct, replan, rtc_ok, buffering_works = facts.openpi_pct, facts.replan, facts.rtc_ok, facts.buffering_works
    section = "Pipeline 流水线优化实验 — the action-buffering experiment"
    claim(section, "Buffering 10 actions: 0/9 success against 9/9 replanning every step.",
          "not testable here", "A LIBERO result on the seed's setup; this book has a simulation, not LIBERO.", "ch07_pipeline",
          short="0/9 with 10 buffered actions")
    claim(section, "A VLA needs a fresh observation at every step: any latency hiding makes it fall off a cliff.",
          "not held" if buffering_works and rtc_ok else "partly held",
          f"openpi's own pi0.5 LIBERO evaluation executes {replan:g} actions per chunk open loop at {openpi_pct:.1f}% (quoted); "
          f"RTC runs chunks asynchronously with delays above {q('rtc_min_delay_ms'):g} ms (quoted). " + SIM_MECHANICS,
          "ch07_pipeline", short="a VLA needs a fresh observation every step")
    claim(section, "Only a chunk's first action is accurate; the rest are predictions whose error accumulates.",
          "partly held" if buffering_works else "held",
          f"Error growing along the chunk is plausible (and what the simulation models), but executing {replan:g} of "
          f"{q('openpi_pi05_libero_action_horizon'):g} actions works in openpi's evaluation ({openpi_pct:.1f}%).", "ch07_pipeline",
          short="only a chunk's first action is accurate")
    claim(section, "Consistent with the KV-cache-reuse failure: VLAs are extremely sensitive to stale information.",
          "not testable here", "KV-cache reuse across frames is not tested in this book.", "ch07_pipeline",
          short="VLAs cannot use stale information (KV reuse)")


def optimisation_directions(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "优化方向分析 — optimisation directions"."""
    gpu, claim, gpu_name = ledger.gpu, ledger.claim, ledger.device
    nv8, nv4, openpi_pct, replan, rtc_ok = facts.nv8, facts.nv4, facts.openpi_pct, facts.replan, facts.rtc_ok
    buffering_works, works_elsewhere = facts.buffering_works, facts.works_elsewhere
    section = "优化方向分析 — optimisation directions"
    fp8_call, bf16_call = gpu("ch07_pipeline", "pipeline_fp8_2view_steps10_ms"), gpu("ch07_pipeline", "pipeline_2view_steps10_best_ms")
    claim(section, "Verified failures: KV reuse, INT4/FP4, FP8 (no speed-up), action buffering.",
          "partly held" if works_elsewhere else "held",
          f"KV reuse: not tested here. FP8 and FP4: working on Thor in NVIDIA's build ({nv8:g} ms FP8, {nv4:g} ms FP8+NVFP4, "
          f"quoted)" + (f"; on {gpu_name} the fastest FP8 path through the whole call takes "
                        f"{fp8_call / bf16_call:.2f}× the best bf16 call's time (chapter 7, measured)" if fp8_call and bf16_call else "")
          + f". Action buffering: works with openpi's replan-{replan:g} setting. These failed in the seed's setup, not in general.",
          "ch04_fp8_tensorrt", "ch05_int4_fp4", "ch07_pipeline", short="the list of verified failures")
    l12 = gpu("ch08_roads_to_20hz", "layers12_speedup_ratio")
    exp12 = q("opt_fewer_layers_speedup_ratio")
    claim(section, f"Fewer layers (18 → 12): about {exp12:g}× faster.",
          gpu_status(l12, lambda v: "held" if abs(v - exp12) / exp12 <= 0.1 else "partly held"),
          f"Measured on {gpu_name} (LLM and expert both cut, whole call): {gpu_text(l12, '.2f', '×')}; the vision stage does not shrink. "
          + V.layers_path_text(ledger) + " The accuracy of such a model (it needs retraining) is not measured.",
          "ch08_roads_to_20hz", short="18 → 12 layers gives ~1.5×")
    claim(section, "Distillation (2–3×) and structured pruning (1.5–2×).",
          "not testable here", "Needs training; not attempted.", "ch08_roads_to_20hz", short="distillation and pruning")
    claim(section, "Asynchronous pipelining and action chunking are ruled out (a VLA needs synchronous inference).",
          "not held" if buffering_works and rtc_ok else "partly held",
          f"openpi executes chunks ({replan:g} of {q('openpi_pi05_libero_action_horizon'):g}) at {openpi_pct:.1f}%; RTC executes them "
          "asynchronously (quoted).", "ch07_pipeline", short="asynchronous pipelines and chunking are ruled out")


def quoted_20hz_text(facts: SeedFacts, detail: bool = True) -> str:
    """The quoted Thor figures the 20 Hz verdicts rest on (the two chapter 8's verdict cites); with
    `detail`, FlashRT's two NVFP4 figures for the same call, each with the coverage and FP8
    reference its source gives, and the fastest of chapter 9's table."""
    out = (f"On Thor, pi0.5 unchanged at 10 steps (quoted, each in its own input configuration: chapter 9's table): NVIDIA's "
           f"TensorRT FP8+NVFP4 build {facts.nv4_mean:g} ms (mean) and FlashRT's FP8 build {facts.fr:g} ms (README), the two "
           f"figures chapter 8's verdict cites and the 20 Hz verdicts rest on, {facts.quoted_inside_20hz()} inside the {facts.budget:.0f} ms of 20 Hz.")
    if not detail:
        return out
    return out + (f" FlashRT gives two NVFP4 figures for 2 views: {facts.fr4_readme:g} ms in its README (NVFP4 in the encoder "
                  f"FFNs only, against {q('flashrt_fp8_replay_2view_ms'):g} ms for FP8 in the same sweep; chapter 8 fits its "
                  f"model to it) and {q('flashrt_docs_nvfp4_2view_ms'):g} ms in its docs (NVFP4 also in SigLIP's FFNs, the "
                  f"encoder's attention output and every decoder projection, against {q('flashrt_docs_fp8_2view_ms'):g} ms for "
                  "FP8 in the same batch): two NVFP4 coverages measured in different batches, not one figure twice. The "
                  f"fastest in chapter 9's table is {facts.fastest_name}, {facts.fastest_ms:g} ms; no verdict here needs it.")


def target_20hz(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "20 Hz 目标分析 — the 20 Hz target"."""
    gpu, claim = ledger.gpu, ledger.claim
    call_floor8, call_floor4, budget, rtc_ok = facts.call_floor8, facts.call_floor4, facts.budget, facts.rtc_ok
    buffering_works, quoted_20hz = facts.buffering_works, facts.quoted_20hz
    section = "20 Hz 目标分析 — the 20 Hz target"
    need = q("target20_total_ms") / budget
    claim(section, f"From {q('target20_total_ms'):g} ms, 20 Hz ({budget:.0f} ms) needs a {q('target20_speedup_needed_ratio'):g}× speed-up.",
          "held" if abs(need - q("target20_speedup_needed_ratio")) < 0.1 else "not held",
          f"{q('target20_total_ms'):g} / {budget:.0f} = {need:.2f}.", "ch08_roads_to_20hz", short="20 Hz needs 3.5× from 176 ms")
    proj_best = gpu("ch08_roads_to_20hz", "thor_projected_best_steps10_ms")
    proj_fp8 = gpu("ch08_roads_to_20hz", "thor_projected_fp8_steps10_ms")
    heldout = gpu("ch08_roads_to_20hz", "thor_heldout_max_error_pct")
    claim(section, "20 Hz cannot be reached with the current architecture.",
          "not held" if quoted_20hz else "partly held",
          quoted_20hz_text(facts) + f" The floor of the seed's call (2 views, {config.MAX_TEXT_TOKENS} prompt tokens, "
          f"10 steps, horizon 10) on Thor's spec sheet, counted as chapter 9 counts each build at its own configuration, is "
          f"{call_floor8:.1f} ms in FP8 and {call_floor4:.1f} ms in FP8+FP4. Chapter 8's kernel "
          f"model, its Thor parameters fitted to quoted Thor figures, projects chapter 7's compiled, graphed bf16 structure on "
          f"Thor at {gpu_text(proj_best, '.0f', ' ms')} (FP8: {gpu_text(proj_fp8, '.0f', ' ms')}; largest error on held-out Thor "
          f"figures {gpu_text(heldout, '.0f', '%')}).",
          "ch08_roads_to_20hz", "ch09_peers", short="20 Hz is impossible with this architecture")
    claim(section, "Every latency-hiding strategy has been shown to fail.",
          "not held" if buffering_works and rtc_ok else "partly held",
          "One implementation of one strategy (buffering a whole chunk) failed; RTC and openpi's partial chunk execution work (quoted).",
          "ch07_pipeline", short="every latency-hiding strategy failed")
    claim(section, "Model-level changes (distillation, pruning, a smaller model) are required.",
          "not held" if quoted_20hz else "partly held",
          f"NVIDIA's TensorRT FP8+NVFP4 build ({facts.nv4_mean:g} ms) and FlashRT's FP8 build ({facts.fr:g} ms) run pi0.5 "
          f"unchanged at 10 steps on Thor, each in its own input configuration (chapter 9's table)"
          + (f", {facts.quoted_inside_20hz()} inside the budget of {budget:.0f} ms (quoted): "
             "number format and software close the gap." if quoted_20hz else f" (quoted), neither inside {budget:.0f} ms."),
          "ch08_roads_to_20hz", "ch09_peers", short="model changes are required")


def seed_summary(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "总结 — summary"."""
    claim = ledger.claim
    seedhw, mlp_share, weights_gb, seed_kv = facts.seedhw, facts.mlp_share, facts.weights_gb, facts.seed_kv
    seed_floor_bw, floor_at_seed_bw = facts.seed_floor_bw, facts.floor_at_seed_bw
    tf, nv4, nv4_cos, fr_prefix, openpi_pct = facts.tf, facts.nv4, facts.nv4_cos, facts.fr_prefix, facts.openpi_pct
    rtc_ok, buffering_works, quoted_20hz = facts.rtc_ok, facts.buffering_works, facts.quoted_20hz
    works_elsewhere = facts.works_elsewhere
    section = "总结 — summary"
    claim(section, f"Root cause: the model is too big — 18 layers × 16384 MLP = {q('weights_total_bf16_gb'):g} GB of weights.",
          "held" if abs(weights_gb - q("weights_total_bf16_gb")) < 0.1 else "not held",
          f"The layers' bf16 weights are {weights_gb:.2f} GB: the figure is right (whether it is 'too big' depends on the stack: "
          f"see below).", "ch01_flops", short="3.96 GB of weights")
    claim(section, "Root cause: memory bandwidth — reading the weights takes ~22 ms, the theoretical floor.",
          "not held" if abs(floor_at_seed_bw - q("weight_read_floor_ms")) / q("weight_read_floor_ms") > 0.2 else "partly held",
          f"22 ms divides by {seed_floor_bw:g} GB/s; at the seed's measured {seedhw.bandwidth_gbps:g} GB/s it is "
          f"{floor_at_seed_bw:.1f} ms, so 22 ms is no floor on the seed's board. Whether bandwidth is the root cause of the "
          f"~{q('kv_prefill_headline_ms'):g} ms the seed's data cannot say (first section): its MLP's unfused traffic "
          f"over its time is {facts.seed_mlp_traffic_gbps['whole MLP']:.0f} GB/s, about the {seedhw.bandwidth_gbps:g} GB/s it "
          f"measured, and its matmuls ran at {facts.seed_mlp_tflops:.0f} TFLOP/s: either can be the limit.", "ch01_flops", "ch02_roofline", "ch08_roads_to_20hz",
          short="bandwidth is the root cause, ~22 ms its floor")
    claim(section, f"Root cause: the MLP dominates, {q('flops_mlp_share_pct'):g}% of the computation.",
          "held" if mlp_share > 0.85 else "partly held",
          f"Counting attention in full (the seed counted Q·Kᵀ once, without the factor 2 or the heads), the MLP is "
          f"{100 * mlp_share:.1f}% of a layer's FLOPs at 712 tokens.", "ch01_flops", short="the MLP dominates the FLOPs")
    claim(section, "The prefill is bandwidth-bound and TensorRT/quantization are close to the limit.",
          "not held" if fr_prefix < seed_kv / 2 else "partly held",
          f"FlashRT's FP8 prefix on Thor takes {fr_prefix:g} ms against the seed's {seed_kv:g} ms in bf16 (quoted); the prefix floor "
          f"in FP8 on Thor's spec (weights, the bf16 K/V cache, input and output, as chapter 4 counts it) is {tf.floor_ms[F8]:.1f} ms.", "ch02_roofline", "ch04_fp8_tensorrt",
          short="TensorRT and quantization are near the limit")
    claim(section, "Verified failures: KV reuse (VLAs are sensitive to inconsistency across frames), INT4/FP4 (Thor's TensorRT does not "
          "support the scale factors), action buffering (VLAs need real-time observations).",
          "partly held" if works_elsewhere else "held",
          f"NVFP4 runs correctly on Thor in NVIDIA's build (cos {nv4_cos:g}, quoted); buffering part of each chunk works in openpi's "
          "evaluation; KV reuse is not tested here.", "ch05_int4_fp4", "ch07_pipeline", short="the summary's list of failures")
    claim(section, "VLAs tolerate no stale information: KV reuse and action buffering both give 0%.",
          "not held" if buffering_works else "partly held",
          f"Action buffering works in openpi's LIBERO evaluation ({openpi_pct:.1f}%, quoted); KV reuse is not tested here.",
          "ch07_pipeline", short="no tolerance for stale information")
    claim(section, "Full inference is needed at every step; latency hiding cannot raise the control rate.",
          "not held" if rtc_ok else "partly held",
          f"RTC executes chunks asynchronously with inference delays above {q('rtc_min_delay_ms'):g} ms, more than the seed's "
          f"{q('pipeline_baseline_total_ms'):g} ms call, and openpi executes {facts.replan:g} actions per inference at "
          f"{openpi_pct:.1f}% on LIBERO (quoted): the control rate is set by the controller, not by the inference latency. "
          + SIM_MECHANICS, "ch07_pipeline", short="full inference at every step")
    claim(section, "Only model-level changes can break through 5 Hz.",
          "not held" if q("best_3step_hz") > 5 or quoted_20hz else "held",
          f"The seed's own 3-step run reaches ~{q('best_3step_hz'):g} Hz with the same model; NVIDIA's FP8+NVFP4 build "
          f"{1e3 / nv4:.0f} Hz (quoted).", "ch07_pipeline", "ch08_roads_to_20hz", short="only model changes break 5 Hz")
    claim(section, f"Current best: 10 steps {q('best_10step_latency_ms'):g} ms ({q('best_10step_hz'):g} Hz, 100%); "
          f"3 steps ~{q('best_3step_latency_ms'):g} ms ({q('best_3step_hz'):g} Hz, accuracy not verified).",
          "not testable here", "Thor measurements; no Thor here. Chapter 7 measures both step counts on the presented GPU.", "ch07_pipeline",
          short="the current best figures")


def phase0_findings(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "Phase 0 关键发现 — Phase 0 findings"."""
    gpu, gpu_rows, claim, gpu_name = ledger.gpu, ledger.rows, ledger.claim, ledger.device
    spec, seedhw, mlp_flops, seed_mlp_ms = facts.spec, facts.seedhw, facts.mlp_flops, facts.seed_mlp_ms
    seed_kv, seed_mlp_tflops, tf = facts.seed_kv, facts.seed_mlp_tflops, facts.tf
    mlp_compute_floor = facts.mlp_compute_floor
    section = "Phase 0 关键发现 — Phase 0 findings"
    # shares of the profiled best (graph-captured) prefill, not of eager components timed one by one
    h_mlp = gpu("ch03_prefill_breakdown", "profiled_best_mlp_share_pct")
    h_mlp = None if h_mlp is None else h_mlp / 100
    seed_sum = q("kv_breakdown_estimated_total_ms")
    claim(section, f"The MLP is {q('kv_mlp_share_claim_pct'):g}% of the KV-cache time (MLP gate+up+down: {seed_mlp_ms:g} ms).",
          "not testable here",
          f"A share of Thor's time. The seed's {q('kv_mlp_share_claim_pct'):g}% is {seed_mlp_ms:g} ms over its components' sum "
          f"({seed_sum:g} ms: {100 * seed_mlp_ms / seed_sum:.0f}%); over the {seed_kv:g} ms it measured (the base of its table's "
          f"shares) it is {100 * seed_mlp_ms / seed_kv:.0f}%. A GPU where the prefill is compute-bound spends its time in other "
          f"proportions than memory-bound Thor, so its profile cannot test a Thor share. For context only: the MLP is "
          f"{100 * facts.mlp_share:.0f}% of a layer's FLOPs at {config.PREFIX_TOKENS} tokens (chapter 1), and "
          f"{gpu_text(None if h_mlp is None else 100 * h_mlp, '.0f', '%')} of chapter 3's profiled fastest prefill on {gpu_name}.",
          "ch03_prefill_breakdown", short="the MLP is 90% of the prefill time")
    h_att = gpu("ch03_prefill_breakdown", "profiled_best_attention_share_pct")  # percent
    claim(section, f"Attention is only {q('kv_breakdown_attention_ms'):g} ms ({q('kv_attention_share_claim_pct'):g}%).",
          "not testable here",
          f"A Thor time and a share of Thor's time (quoted: {100 * q('kv_breakdown_attention_ms') / seed_kv:.1f}% of the seed's "
          f"{seed_kv:g} ms breakdown). Where the MLP streams its weights from memory (Thor, by the roofline) and where it runs "
          f"compute-bound ({gpu_name}), the shares differ, so a GPU's profile cannot test a Thor share. For context only: "
          f"attention is {100 * facts.attn_share:.1f}% of a layer's FLOPs at {config.PREFIX_TOKENS} tokens (chapter 1), and "
          f"{gpu_text(h_att, '.1f', '%')} of chapter 3's profiled fastest prefill on {gpu_name}.",
          "ch03_prefill_breakdown", short="attention is 5%")
    # chapter 3's own comparison, read back from its matmul table the way the chapter computes it
    dn, gt = gpu("ch03_prefill_breakdown", "down_proj_linear_tflops"), gpu("ch03_prefill_breakdown", "gate_proj_linear_tflops")
    dp = prefill_bench.down_proj_tiles(gpu_rows("ch03_prefill_breakdown", "matmul_sweep", cite=True))
    dp_ratio = dn / gt if dn and gt else None
    dp_why = V.down_proj_reading(dp)
    per_flop, waves = facts.seed_down_per_flop, facts.thor_down_wave_slowdown
    claim(section, f"down_proj's bandwidth is abnormally low at 712 tokens ({q('down_proj_bw_seq712_gbps'):g} against "
          f"{q('down_proj_bw_seq1_gbps'):g} GB/s at 1 token): cuBLAS is inefficient when K ≫ N.",
          V.down_proj_status(dp_ratio, per_flop),
          "At 712 tokens down_proj does 712 FLOPs per weight byte: GB/s is the wrong yardstick, and the two GB/s figures compare "
          "down_proj at 1 token with down_proj at 712 tokens, not down_proj with gate_proj. The seed's own per-FLOP comparison "
          "is its breakdown (quoted): "
          f"down_proj {q('kv_breakdown_mlp_down_ms'):g} ms against {q('kv_breakdown_mlp_gate_up_silu_ms'):g} / 2 ms per gate/up GEMM "
          f"(SiLU included), so at least {per_flop:.2f}× slower per FLOP on Thor; wave quantisation with 128×256 tiles on Thor's "
          f"SMs (chapter 3) predicts {waves:.2f}× of that. Per FLOP, {gpu_name}'s cuBLAS (nn.Linear layout) runs down_proj at "
          f"{gpu_text(dn, '.0f', ' TFLOP/s')} against gate_proj's {gpu_text(gt, '.0f', ' TFLOP/s')}: {gpu_text(dp_ratio, '.2f', '×')} "
          "its rate" + ("" if dp_ratio is None else f", a {100 * (1 - dp_ratio):.0f}% gap") + ". " + dp_why,
          "ch03_prefill_breakdown", short="the down_proj bandwidth anomaly")
    i4_tiny, i4_kernel = int4_figures(ledger)  # both over one MLP's two matmuls
    i4_traffic = facts.mlp_traffic["whole MLP"] - 0.75 * facts.mlp_bytes  # 4-bit weights, activations unchanged
    claim(section, f"INT4 would take the MLP from {seed_mlp_ms:g} to ~{q('int4_mlp_projected_ms'):g} ms, saving ~{q('int4_projected_savings_ms'):g} ms.",
          "not held" if mlp_compute_floor > 0.7 * q("int4_mlp_projected_ms") else "partly held",
          f"The MLP's {mlp_flops / 1e12:.2f} TFLOP need {mlp_compute_floor:.1f} ms at Thor's full dense bf16 rate, which weight-only INT4 "
          f"still uses; and INT4 shrinks only the weights: the {facts.mlp_traffic['whole MLP'] / 1e9:.2f} GB the seed's unfused MLP "
          f"moves become about {i4_traffic / 1e9:.2f} GB, {seedhw.memory_ms(i4_traffic):.0f} ms at its {seedhw.bandwidth_gbps:g} GB/s. "
          f"Time over bf16 cuBLAS of one MLP's two matmuls at 712 tokens, {gpu_name}: a prefill-class Triton W4A16 kernel "
          f"{gpu_text(i4_kernel, '.3g', '×')}, torch's tinygemm (a decode kernel) {gpu_text(i4_tiny, '.3g', '×')}.", "ch05_int4_fp4",
          short="INT4 saves ~35 ms of MLP")
    claim(section, f"Measured bandwidth {seedhw.bandwidth_gbps:g} GB/s is {q('hw_avg_bandwidth_pct_of_theory'):g}% of the theoretical.",
          "partly held" if abs(100 * seedhw.bandwidth_gbps / spec.bandwidth_gbps - q("hw_avg_bandwidth_pct_of_theory")) > 10 else "held",
          f"The measurement is the seed's; the 'theoretical' ~{q('mem_bw_theoretical_gbps'):g} GB/s is not the spec's "
          f"{spec.bandwidth_gbps:g} GB/s, of which {seedhw.bandwidth_gbps:g} is {100 * seedhw.bandwidth_gbps / spec.bandwidth_gbps:.0f}%.",
          "ch02_roofline", short="130.1 GB/s is 65% of theory")
    i4_tiny, i4_kernel = int4_figures(ledger)
    claim(section, f"Plan B (INT4): KV cache ~{q('planb_int4_kv_ms'):g} ms, total ~{q('planb_int4_total_ms'):g} ms, {q('planb_int4_hz'):g} Hz.",
          V.int4_kernel_status(i4_tiny, i4_kernel),
          f"A weight-only INT4 prefill still computes in bf16: it cannot go below the bf16 compute floor "
          f"({tf.compute_ms[BF]:.1f} ms on Thor's spec), and the seed's bf16 stack ran at "
          f"{seed_mlp_tflops:.0f} TFLOP/s in the MLP. " + V.int4_evidence(gpu_name, i4_tiny, i4_kernel),
          "ch05_int4_fp4", short="Plan B: 17 ms prefill, 7.4 Hz")


def quantization_validation(ledger: Ledger, facts: SeedFacts) -> None:
    """Judge the claims of the seed's section "量化方案验证结果 最终结论 — quantization validation, final conclusions"."""
    gpu, gpu_rows, claim, gpu_name = ledger.gpu, ledger.rows, ledger.claim, ledger.device
    nv_bf16, nv8, nv4 = facts.nv_bf16, facts.nv8, facts.nv4
    section = "量化方案验证结果 最终结论 — quantization validation, final conclusions"
    tr = gpu("ch06_triton", "triton_vs_cublas_bf16_graphed_ratio")
    tr_host = tr is None and TM.launched_from_python(gpu_rows("ch06_triton", "timings"))
    if tr_host:  # a run before graphed timing: its ratio holds the launches, and is labelled so
        tr = gpu("ch06_triton", "triton_vs_cublas_bf16_ratio")
    claim(section, f"Triton reaches only {q('triton_vs_cublas_pct'):g}% of cuBLAS on Thor: custom kernels are not viable.",
          "not testable here",
          f"No Thor here. Dexmal's Triton kernels run pi0.5 in {q('dexmal_rtx4090_2view_ms'):g} ms on an RTX 4090 (quoted; "
          f"{V.quoted_shape_words('Dexmal', 'RTX 4090', 2, 10) or '2 views, 10 steps'}; the seed's call has {config.MAX_TEXT_TOKENS} "
          f"prompt tokens and horizon {config.ACTION_HORIZON_LIBERO}). "
          f"Time of a tutorial-style Triton matmul over cuBLAS on the prefill matmuls, {gpu_name}: {gpu_text(tr, '.2f', '×')}"
          + (" — timed call by call from Python, so the small GEMMs' times include the Triton launch's host cost: "
             "partly host overhead, not a GPU comparison." if tr_host else "."),
          "ch06_triton", short="Triton is too slow on Thor")
    ao8, ao4 = gpu("ch09_peers", "torchao_int8_prefill712_vs_bf16_ratio"), gpu("ch09_peers", "torchao_int4wo_prefill712_vs_bf16_ratio")
    tao = gpu_rows("ch09_peers", "torchao")
    modes = sorted(set(tao["mode"].dropna())) if tao is not None and "mode" in tao else []
    claim(section, f"torchao INT8 is {q('torchao_int8_slowdown_ratio'):g}× slower than bf16; torchao INT4 lacks fbgemm-gpu-genai.",
          "not testable here",
          f"The state of torchao on Thor (no Thor here). Chapter 9 runs the same torchao schemes on our prefill, {gpu_name}"
          + (f" ({', '.join(modes)})" if modes else "") + f": INT8 dynamic at {gpu_text(ao8, '.2f', '×')} bf16's speed, INT4 weight-only "
          f"at {gpu_text(ao4, '.2f', '×')}"
          + (": uncompiled, every kernel launched from Python, so host overhead is part of these times; they say nothing about "
             "torchao's kernels on this GPU or on Thor (chapter 9's `torchao_compile` parameter times them compiled)."
             if modes == ["eager"] or not modes else "."),
          "ch09_peers", short="torchao is slow or missing")
    i8 = gpu("ch05_int4_fp4", "int8_tokens712_vs_bf16_ratio")
    claim(section, f"cuBLAS INT8 (torch._int_mm) is no faster ({q('quantlib_torch_int_mm_speed_ratio'):g}×).",
          "not testable here",
          f"A Thor kernel-dispatch question. Time of _int_mm over bf16 at 712 tokens, {gpu_name}: {gpu_text(i8, '.2f', '×')}.", "ch05_int4_fp4",
          short="cuBLAS INT8 gives nothing")
    # Host overhead is what a CUDA graph removes, so here (only here) the ungraphed timing is the figure:
    # the same model launched kernel by kernel from Python, against it in one graph.
    best10 = gpu("ch07_pipeline", "pipeline_2view_steps10_best_ms", cite=False)  # only locates the headline's shape
    pair = V.graph_gain(gpu_rows("ch07_pipeline", "latency", cite=True,
                                 which=f"whole calls {' and '.join(V.GRAPH_PAIR)}, at the headline's shape"), best10)
    claim(section, f"CUDA graphs bring nothing ({q('cudagraph_mlp_baseline_ms'):g} → {q('cudagraph_mlp_ms'):g} ms on the MLP).",
          gpu_status(None if pair is None else pair[0] / pair[1], lambda v: "partly held" if v > 1.2 else "held"),
          f"True for one MLP of a few long kernels (the seed's measurement, quoted). For the whole inference (thousands of short "
          f"kernels) graphs take Dexmal's 2-view pi0 from >{q('dexmal_cudagraph_before_ms'):g} to {q('dexmal_cudagraph_after_low_ms'):g}–"
          f"{q('dexmal_cudagraph_after_high_ms'):g} ms (quoted). On {gpu_name}, chapter 7's fused model (2 views, 10 steps) "
          + (f"takes {pair[0]:.0f} ms launched kernel by kernel from Python (`{V.GRAPH_PAIR[0]}`: host overhead, the cost a graph "
             f"removes) and {pair[1]:.1f} ms in one CUDA graph (`{V.GRAPH_PAIR[1]}`): {pair[0] / pair[1]:.1f}× faster with the graph."
             if pair else f"without and with a graph: ({NOT_YET})."), "ch07_pipeline", short="CUDA graphs bring nothing")
    claim(section, f"No quantization speed-up is usable on Thor today: stay in bf16 at ~{q('final_hz'):g} Hz.",
          "not held" if nv_bf16 / nv4 > 1.5 else "partly held",
          f"NVIDIA's TensorRT FP8 ({nv8:g} ms) and FP8+NVFP4 ({nv4:g} ms) builds on Thor against {nv_bf16:g} ms in bf16 (quoted).",
          "ch04_fp8_tensorrt", "ch05_int4_fp4", short="no quantization speed-up is usable on Thor")


SECTIONS: tuple[Callable[[Ledger, SeedFacts], None], ...] = (
    latency_sources, tensorrt_fp8, int4_fp4, action_buffering, optimisation_directions, target_20hz, seed_summary,
    phase0_findings, quantization_validation)


def judge_all(ledger: Ledger, facts: SeedFacts) -> None:
    """Record every section's claims on `ledger`, in the page's order."""
    for judge in SECTIONS:
        judge(ledger, facts)


def closing_paragraph(ledger: Ledger, facts: SeedFacts) -> str:
    """The page's closing paragraph: the ledger's counts and short names, chapter 9's like-with-like
    comparison with LeRobot, and, where a quoted Thor build fits 20 Hz, the quoted figures the 20 Hz
    verdicts rest on beside this book's fastest path of chapter 7."""
    gpu, gpu_rows, gpu_name, link = ledger.gpu, ledger.rows, ledger.device, figs.chapter_link
    best = gpu("ch07_pipeline", "pipeline_2view_steps10_best_ms")
    best_path = V.path_of(gpu_rows("ch07_pipeline", "budget"), best, name="variant")
    lines = ledger.summary()
    # like with like: GPU kernel time of both calls from chapter 9's own run; the wall-time ratio is host overhead
    ours9, lerobot9 = gpu("ch09_peers", "ours_best_2view_steps10_ms"), gpu("ch09_peers", "lerobot_compiled_2view_steps10_ms")
    ours_k, lerobot_k = (gpu("ch09_peers", f"{w}_2view_steps10_kernels_ms") for w in ("ours_best", "lerobot_compiled"))
    path9 = (V.path_of(gpu_rows("ch09_peers", "latency"), ours9) or "").removeprefix("ours ")
    if ours_k and lerobot_k:
        lines.append(f"In {link('ch09_peers')}'s run on {gpu_name}, this book's "
                     + (f"`{path9}` path (the fastest that chapter timed)" if path9 else "fastest path that chapter timed")
                     + f" spends {ours_k:.1f} ms in GPU kernels per call (2 views, 10 steps) against {lerobot_k:.1f} ms for "
                     f"LeRobot's compiled pi0.5: {lerobot_k / ours_k:.2f}× less GPU time, for the same network and shapes "
                     "with different precision placement and attention (chapter 9)."
                     + ("" if not (ours9 and lerobot9) else
                        f" On wall time, {ours9:.1f} against {lerobot9:.1f} ms ({lerobot9 / ours9:.2f}×)"
                        + (f": LeRobot's kernels fill {100 * lerobot_k / lerobot9:.0f}% of its wall time (it launches them "
                           "from Python, host-bound), so that ratio is mostly host overhead, not a GPU comparison."
                           if lerobot_k < 0.8 * lerobot9 else ".")))
    else:
        lines.append(f"The like-with-like comparison with LeRobot's compiled pi0.5 ({link('ch09_peers')}: GPU kernel time of "
                     f"both calls, 2 views, 10 steps): {NOT_YET}.")
    if facts.quoted_20hz:
        lines.append(quoted_20hz_text(facts, detail=False) + (f" On {gpu_name} the fastest path of {link('ch07_pipeline')}"
                                                + (f" (`{best_path}`)" if best_path else "")
                                                + f" runs the 2-view, 10-step call in {best:.1f} ms." if best else ""))
    return "\n\n".join(lines)
