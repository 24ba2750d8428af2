"""Hold the analytic FLOP model against PyTorch's own FLOP counter.

The lib's model is built at full size on the `meta` device (no memory is allocated)
and run under `torch.utils.flop_counter.FlopCounterMode`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import PATCH_SIZE, TOKENS_PER_IMAGE, TransformerConfig


def count(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs the counter sees for one call of fn(*args)."""
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


def counted_flops(cfg: TransformerConfig, tokens: int, kv_tokens: int | None = None, batch: int = 1,
                  fused: bool = False) -> int:
    """FLOPs the counter sees for one forward of the stack (with its stem).

    gemma (prefix LM): `tokens` prefix embeddings; gemma with adaptive norm (the action
    expert): `tokens` action tokens attending to `kv_tokens - tokens` prefix keys; siglip:
    `tokens // 256` images of 224 x 224.
    """
    from . import model as m

    with torch.device("meta"):
        if cfg.kind == "siglip":
            images = max(1, tokens // TOKENS_PER_IMAGE)
            side = int(round((tokens / images) ** 0.5)) * PATCH_SIZE
            return count(m.SigLIP(cfg, fused=fused).to(torch.bfloat16), meta(images, 3, side, side))
        if cfg.adaptive_norm:
            prefix = (kv_tokens or tokens) - tokens
            kv = [(meta(batch, cfg.num_kv_heads, prefix, cfg.head_dim),) * 2 for _ in range(cfg.depth)]
            expert = m.ActionExpert(cfg, fused=fused).to(torch.bfloat16)
            return count(expert, meta(batch, tokens, cfg.width), kv, meta(batch, cfg.width))
        lm = m.GemmaLM(cfg, fused=fused).to(torch.bfloat16)
        return count(lm.prefill, meta(batch, tokens, cfg.width))
