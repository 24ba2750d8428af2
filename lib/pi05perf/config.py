"""Architecture configs of pi0.5 (from openpi) and the hardware the book compares.

Numbers come from openpi's `gemma.py`, `siglip.py` and `pi0_config.py`
(see ../shared/ANCHORS.md); hardware figures are vendor specs unless marked.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TransformerConfig:
    """One transformer stack. `kind` selects the block: gemma (RMSNorm, RoPE, GeGLU)
    or siglip (LayerNorm with bias, learned positions, GELU MLP)."""

    name: str
    kind: str  # "gemma" | "siglip"
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int = 0
    adaptive_norm: bool = False  # pi0.5's action expert conditions its norms on the timestep

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def with_depth(self, depth: int) -> "TransformerConfig":
        return replace(self, depth=depth)


GEMMA_2B = TransformerConfig("gemma_2b", "gemma", width=2048, depth=18, mlp_dim=16384,
                             num_heads=8, num_kv_heads=1, head_dim=256, vocab_size=257152)
GEMMA_300M = TransformerConfig("gemma_300m", "gemma", width=1024, depth=18, mlp_dim=4096,
                               num_heads=8, num_kv_heads=1, head_dim=256, adaptive_norm=True)
SIGLIP_SO400M = TransformerConfig("siglip_so400m", "siglip", width=1152, depth=27, mlp_dim=4304,
                                  num_heads=16, num_kv_heads=16, head_dim=72)

MODELS: dict[str, TransformerConfig] = {c.name: c for c in (GEMMA_2B, GEMMA_300M, SIGLIP_SO400M)}

# SigLIP So400m/14 at 224x224: (224/14)^2 = 256 patches per image.
IMAGE_SIZE = 224
PATCH_SIZE = 14
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2
MAX_TEXT_TOKENS = 200  # pi0.5's max_token_len
ACTION_DIM = 32
ACTION_HORIZON_LIBERO = 10  # pi05_libero
ACTION_HORIZON_DEFAULT = 50
#: openpi's LIBERO policy (`libero_policy.LiberoInputs`) fills three image slots -- base,
#: left wrist and a right wrist that LIBERO lacks: zeros, masked out of attention, but still
#: encoded by SigLIP and carried through the prefill -- so openpi computes 3 x 256 + 200 = 968
#: prefix tokens where the seed (and this book's headline) count two views.
OPENPI_LIBERO_IMAGE_SLOTS = 3
PREFIX_TOKENS = 712  # the seed's prefill: 2 images x 256 tokens + a 200-token prompt
#: An ESTIMATE (nothing is tokenized here) of a real pi0.5 LIBERO prompt's length before padding
#: to max_token_len. openpi's pi05_libero sets `discrete_state_input=False`, so its tokenizer
#: writes no state into the prompt: BOS + the instruction + "\n" -- an instruction of ~10-15
#: words is ~12-18 Gemma tokens, about 16 in all (FlashRT, which trims the pad, counts ~10).
#: With discrete state (openpi's default for pi0.5; lerobot's pi05 processor always does it) the
#: prompt is "Task: <instruction>, State: <state values 0-255>;\nAction: ", far longer. openpi
#: computes the 200 padded positions anyway (masked, not skipped); an engine that trims the
#: padding computes ~16.
TYPICAL_PROMPT_TOKENS = 16


@dataclass(frozen=True)
class TokenBudget:
    """How many tokens each stage of one pi0.5 inference sees."""

    num_images: int = 2
    text_tokens: int = MAX_TEXT_TOKENS
    action_horizon: int = ACTION_HORIZON_LIBERO

    @property
    def image_tokens(self) -> int:
        return self.num_images * TOKENS_PER_IMAGE

    @property
    def prefix_tokens(self) -> int:
        return self.image_tokens + self.text_tokens


def tiny_config(cfg: TransformerConfig, width: int = 64, depth: int = 2, num_heads: int = 4,
                head_dim: int = 16, mlp_dim: int | None = None,
                vocab_size: int | None = None) -> TransformerConfig:
    """A small config with the same block structure as `cfg`, for CPU tests.

    Gemma keeps one K/V head (GQA) and its adaptive_norm flag; SigLIP keeps K/V heads ==
    heads. mlp_dim keeps cfg's width:mlp ratio unless given. Use the same num_heads and
    head_dim for the LLM and the action expert: their layers attend jointly.
    """
    if mlp_dim is None:
        mlp_dim = max(8, round(cfg.mlp_dim / cfg.width * width))
    if vocab_size is None:
        vocab_size = min(cfg.vocab_size, 512)
    return replace(cfg, name=f"{cfg.name}_tiny", width=width, depth=depth, mlp_dim=mlp_dim,
                   num_heads=num_heads, head_dim=head_dim,
                   num_kv_heads=1 if cfg.kind == "gemma" else num_heads, vocab_size=vocab_size)


def model_config(name: str) -> TransformerConfig:
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]


@dataclass(frozen=True)
class Hardware:
    """Ceilings of one device. `source` says whether a figure is a spec or a measurement."""

    name: str
    bandwidth_gbps: float
    bf16_tflops: float
    fp8_tflops: float | None
    source: str

    @property
    def ridge_bf16(self) -> float:
        """FLOPs per byte at which bf16 compute and memory take equal time."""
        return self.bf16_tflops * 1e12 / (self.bandwidth_gbps * 1e9)

    def compute_ms(self, flops: float) -> float:
        """Time of `flops` at the dense bf16 peak."""
        return flops / (self.bf16_tflops * 1e12) * 1e3

    def memory_ms(self, nbytes: float) -> float:
        """Time of moving `nbytes` at the bandwidth."""
        return nbytes / (self.bandwidth_gbps * 1e9) * 1e3

    def floor_ms(self, flops: float, nbytes: float) -> float:
        """The roofline floor: the larger of the two."""
        return max(self.compute_ms(flops), self.memory_ms(nbytes))


def _quoted(key: str) -> float:
    from .reference import quoted  # the CSV in data/reference is the one source of quoted figures

    return quoted(key)


THOR_SPEC = Hardware("Thor (spec, quoted)", _quoted("thor_bandwidth_gbps"), _quoted("thor_bf16_dense_tflops"),
                     _quoted("thor_fp8_dense_tflops"), "NVIDIA spec: 273 GB/s LPDDR5X; 2070 sparse FP4 = ~258 dense BF16")
THOR_SEED_MEASURED = Hardware("Thor (seed-measured bandwidth, quoted)", _quoted("hw_avg_bandwidth_gbps"),
                              _quoted("thor_bf16_dense_tflops"), _quoted("thor_fp8_dense_tflops"),
                              "seed, Phase 0: average copy bandwidth; compute at spec")
H100_SXM_SPEC = Hardware("H100 SXM (spec, quoted)", _quoted("h100_bandwidth_gbps"), _quoted("h100_bf16_dense_tflops"),
                         _quoted("h100_fp8_dense_tflops"), "NVIDIA spec: HBM3 3.35 TB/s, dense BF16 989, FP8 1979")
