"""A per-kernel latency model of pi0.5 with few, named, physical parameters.

For each stage (vision, prefix, one denoise step) the kernels that run are listed from the
architecture (`config`): every GEMM with its M, N, K; attention; the elementwise work (norms,
activations, residual adds, RoPE) as bytes; and the number of kernels. Each kernel's time is

    GEMM:        max(FLOPs_waves / (peak x eff_compute), bytes / (bandwidth x eff_bw))
    attention:   max(FLOPs / (peak x eff_compute), bytes / (bandwidth x eff_bw))
    elementwise: bytes / (bandwidth x eff_bw)

plus ``t_kernel`` per kernel (the fixed cost of a kernel on the GPU: launch, ramp-up and tail,
what fusion removes), and for a stack that launches from the host each kernel takes at least
``t_launch`` (what CUDA graphs remove). ``FLOPs_waves`` is the GEMM cut into 128 x 128 output
tiles run in waves over the device's SMs: a GEMM with one tile more than a multiple of the SM
count pays a whole extra wave, and a small-M GEMM (the denoise step's M = horizon) pays a whole
128-row tile, which does not matter because such a GEMM streams its weights and is memory-bound.

Precision changes bytes per weight and activation and the compute ceiling (FP8 twice, NVFP4
four times the bf16 rate). The device gives its ceilings (bf16 peak, bandwidth, SM count);
the stack gives its precision and how fused it is. Four parameters are fitted:
``eff_compute``, ``eff_bw``, ``t_kernel_us``, ``t_launch_us``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import flops as fl
from .config import GEMMA_2B, GEMMA_300M, SIGLIP_SO400M, TOKENS_PER_IMAGE, TransformerConfig

TILE = 128  # output tile edge of a tensor-core GEMM (cuBLAS/TensorRT pick 64-256; 128 is typical)
#: bytes per weight, bytes per activation and compute-rate multiplier over bf16, per format
FORMATS: dict[str, tuple[float, float, float]] = {
    "bf16": (2.0, 2.0, 1.0),
    "fp8": (1.0, 1.0, 2.0),
    "nvfp4": (0.5 + 1 / 16, 1.0, 4.0),  # 4-bit values plus one FP8 scale per 16; FP8 activations
}
#: precision of a stack: format of attention/projection GEMMs and of MLP GEMMs
PRECISIONS: dict[str, tuple[str, str]] = {
    "bf16": ("bf16", "bf16"), "fp8": ("fp8", "fp8"), "fp8+nvfp4": ("fp8", "nvfp4"), "nvfp4": ("nvfp4", "nvfp4"),
}
#: kernels per layer (SigLIP, Gemma prefix layer, expert layer) and the share of elementwise
#: bytes left, per fusion level. ASSUMED, not fitted: eager PyTorch runs each norm, RoPE and
#: activation as several kernels; a compiler fuses elementwise chains; TensorRT/FlashRT fuse
#: norms and activations into the GEMMs' prologues and epilogues.
FUSION: dict[str, dict[str, float]] = {
    "eager": {"siglip": 16, "gemma": 24, "expert": 30, "elem_share": 1.0, "host": 1},
    "graph": {"siglip": 16, "gemma": 24, "expert": 30, "elem_share": 1.0, "host": 0},
    "compiled": {"siglip": 8, "gemma": 10, "expert": 12, "elem_share": 0.5, "host": 1},
    "compiled_graph": {"siglip": 8, "gemma": 10, "expert": 12, "elem_share": 0.5, "host": 0},
    "fused": {"siglip": 6, "gemma": 7, "expert": 8, "elem_share": 0.25, "host": 0},
}
STAGES = ("vision", "prefix", "denoise")


@dataclass(frozen=True)
class Kernel:
    """One kind of kernel of a stage, `count` times (per call of the stage)."""

    name: str
    kind: str  # gemm | attention | elementwise | launch
    flops: float = 0.0  # per kernel
    nbytes: float = 0.0  # per kernel
    count: int = 1
    M: int = 0
    N: int = 0
    K: int = 0
    rate: float = 1.0  # compute-rate multiplier over bf16 (FP8 2, NVFP4 4)


@dataclass(frozen=True)
class Device:
    """Ceilings of a device (measured or quoted), not fitted."""

    name: str
    bf16_tflops: float
    bandwidth_gbps: float
    sms: int


@dataclass(frozen=True)
class Params:
    """The fitted parameters of a device and its stacks."""

    eff_compute: float = 0.6  #: share of the peak a full-tile GEMM reaches
    eff_bw: float = 0.7  #: share of the bandwidth ceiling a streaming kernel reaches
    t_kernel_us: float = 3.0  #: fixed GPU cost per kernel
    t_launch_us: float = 10.0  #: least time per kernel when launched from the host

    def as_dict(self) -> dict[str, float]:
        return {"eff_compute": self.eff_compute, "eff_bw": self.eff_bw,
                "t_kernel_us": self.t_kernel_us, "t_launch_us": self.t_launch_us}

    @classmethod
    def from_vector(cls, v) -> "Params":
        return cls(*map(float, v))


@dataclass(frozen=True)
class Config:
    """One configuration of the call: views, text tokens, steps, action horizon, layers (LLM
    and expert), precision, fusion level, and whether the expert's adaRMS modulations are
    precomputed for the fixed step schedule (then they are not read every step)."""

    views: int = 2
    text_tokens: int = 200
    steps: int = 10
    horizon: int = 10
    layers: int = 18
    precision: str = "bf16"
    fusion: str = "fused"
    precompute: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.fusion not in FUSION:
            raise ValueError(f"fusion must be one of {sorted(FUSION)}, got {self.fusion!r}")

    @property
    def prefix_tokens(self) -> int:
        return self.views * TOKENS_PER_IMAGE + self.text_tokens

    def but(self, **kw) -> "Config":
        return replace(self, **kw)


def gemm(name: str, M: int, N: int, K: int, fmt: str, count: int) -> Kernel:
    wb, ab, rate = FORMATS[fmt]
    return Kernel(name, "gemm", 2.0 * M * N * K, N * K * wb + (M * K + M * N) * ab, count, M, N, K, rate)


def waves(M: int, N: int, sms: int) -> int:
    """Whole waves of 128 x 128 output tiles over `sms` SMs (`flops.waves` counts the tiles)."""
    return math.ceil(fl.waves(M, N, sms, TILE, TILE)["tiles"] / sms)


def _layer(cfg: TransformerConfig, M: int, kv_tokens: int, images: int, c: Config, kind: str) -> list[Kernel]:
    """The kernels of one transformer layer with M query rows. `images`: attention runs per
    image (SigLIP) over M/images rows; otherwise over `kv_tokens` keys."""
    attn_fmt, mlp_fmt = PRECISIONS[c.precision]
    fz, L = FUSION[c.fusion], cfg.depth
    _, ab, _ = FORMATS[attn_fmt]
    qkv_n = cfg.q_dim + 2 * cfg.kv_dim
    gated = cfg.kind == "gemma"  # Gemma: fused gate/up then GeLU x up; SigLIP: fc1, GeLU, fc2
    ks = [gemm("qkv_proj", M, qkv_n, cfg.width, attn_fmt, L), gemm("o_proj", M, cfg.width, cfg.q_dim, attn_fmt, L),
          gemm("gate_up_proj" if gated else "fc1", M, (2 if gated else 1) * cfg.mlp_dim, cfg.width, mlp_fmt, L),
          gemm("down_proj" if gated else "fc2", M, cfg.width, cfg.mlp_dim, mlp_fmt, L)]
    if kind == "expert" and not c.precompute:  # adaRMS: a (1, 3W, W) dense per norm, two norms a layer
        ks.append(gemm("adarms_modulation", 1, 3 * cfg.width, cfg.width, "bf16", 2 * L))
    rows = M // images
    keys = rows if images > 1 else kv_tokens
    a_flops = 4.0 * M * keys * cfg.q_dim
    a_bytes = (2 * M * cfg.q_dim + 2 * images * keys * cfg.kv_dim) * 2.0  # Q, O; K, V (16-bit)
    if c.fusion in ("eager", "graph"):  # eager attention writes and reads its score matrix
        a_bytes += 3 * cfg.num_heads * M * keys * 2.0
    ks.append(Kernel("attention", "attention", a_flops, a_bytes, L, rate=1.0))
    # elementwise: two norms, two residual adds, RoPE on q/k, the activation (read mlp-wide
    # input(s), write mlp-wide output): bytes moved, 16-bit activations
    elem = (2 * 2 + 2 * 3) * M * cfg.width * 2.0 + 2 * M * (cfg.q_dim + cfg.kv_dim) * 2.0
    elem += ((3 if gated else 2) * M * cfg.mlp_dim) * 2.0
    n_other = max(1, int(fz[kind]) - len(ks))
    ks.append(Kernel("elementwise", "elementwise", 0.0, elem * fz["elem_share"] / n_other, n_other * L))
    return ks


def stage_kernels(stage: str, c: Config) -> list[Kernel]:
    """The kernels of one call of `stage` (for denoise: ONE step) in configuration `c`."""
    if stage == "vision":
        sig, M = SIGLIP_SO400M, c.views * TOKENS_PER_IMAGE
        fmt = PRECISIONS[c.precision][0]
        patch = 3 * 14 * 14
        return ([gemm("patch_embed", M, sig.width, patch, "bf16", 1)]
                + _layer(sig, M, TOKENS_PER_IMAGE, c.views, c, "siglip")
                + [gemm("projector", M, GEMMA_2B.width, sig.width, fmt, 1)])
    if stage == "prefix":
        return _layer(GEMMA_2B.with_depth(c.layers), c.prefix_tokens, c.prefix_tokens, 1, c, "gemma")
    if stage == "denoise":
        e, H = GEMMA_300M.with_depth(c.layers), c.horizon
        io = [gemm("action_in", H, e.width, 32, "bf16", 1), gemm("action_out", H, 32, e.width, "bf16", 1)]
        return _layer(e, H, c.prefix_tokens + H, 1, c, "expert") + io
    raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


def kernel_ms(k: Kernel, dev: Device, p: Params, host: bool) -> tuple[float, float, float]:
    """(compute, memory, total) ms of ONE kernel of kind `k` on `dev` with parameters `p`."""
    peak = dev.bf16_tflops * 1e12 * k.rate * p.eff_compute
    flops = k.flops
    if k.kind == "gemm":  # whole tiles, whole waves
        flops = waves(k.M, k.N, dev.sms) * dev.sms * 2.0 * TILE * TILE * k.K
    compute = flops / peak * 1e3 if flops else 0.0
    memory = k.nbytes / (dev.bandwidth_gbps * 1e9 * p.eff_bw) * 1e3
    total = max(compute, memory) + p.t_kernel_us * 1e-3
    if host:
        total = max(total, p.t_launch_us * 1e-3)
    return compute, memory, total


def stage_ms(stage: str, c: Config, dev: Device, p: Params) -> float:
    """Predicted ms of a stage (denoise: all `c.steps` steps)."""
    host = bool(FUSION[c.fusion]["host"])
    t = sum(kernel_ms(k, dev, p, host)[2] * k.count for k in stage_kernels(stage, c))
    return t * (c.steps if stage == "denoise" else 1)


def predict(c: Config, dev: Device, p: Params) -> dict[str, float]:
    """ms per stage and for the whole call (the sum: glue outside the stages is not modelled)."""
    out = {s: stage_ms(s, c, dev, p) for s in STAGES}
    out["whole"] = sum(out.values())
    return out


def kernel_table(stage: str, c: Config, dev: Device, p: Params) -> list[dict]:
    """Per kind of kernel of a stage: shape, calls (count), FLOPs and bytes moved over all its calls
    (work_flops, moved_bytes), compute/memory/total ms (all its calls)."""
    host = bool(FUSION[c.fusion]["host"])
    rows = []
    for k in stage_kernels(stage, c):
        comp, mem, tot = kernel_ms(k, dev, p, host)
        rows.append({"kernel": k.name, "shape": f"{k.M}x{k.N}x{k.K}" if k.kind == "gemm" else "-",
                     "calls_count": k.count, "work_flops": k.flops * k.count, "moved_bytes": k.nbytes * k.count,
                     "compute_ms": comp * k.count, "memory_ms": mem * k.count, "total_ms": tot * k.count})
    return rows
