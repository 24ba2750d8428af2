"""Hold the analytic FLOP model against PyTorch's own FLOP counter.

The lib's model is built at full size on the `meta` device (no memory is allocated)
and run under `torch.utils.flop_counter.FlopCounterMode`.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import TransformerConfig


def counted_flops(cfg: TransformerConfig, tokens: int, kv_tokens: int | None = None, batch: int = 1) -> int:
    """FLOPs the counter sees for one forward of the stack (with its stem).

    gemma (prefix LM): `tokens` prefix embeddings; gemma with adaptive norm (the action
    expert): `tokens` action tokens attending to `kv_tokens - tokens` prefix keys; siglip:
    `tokens // 256` images.
    """
    from . import model as m

    with torch.device("meta"):
        if cfg.kind == "siglip":
            net = m.SigLIP(cfg)
            side = int(round((tokens / (tokens // 256 or 1)) ** 0.5)) * 14
            args = (torch.empty(max(1, tokens // 256), 3, side, side),)
            call = net
        elif cfg.adaptive_norm:
            net = m.ActionExpert(cfg)
            prefix = (kv_tokens or tokens) - tokens
            kv = [(torch.empty(batch, cfg.num_kv_heads, prefix, cfg.head_dim),) * 2 for _ in range(cfg.depth)]
            args = (torch.empty(batch, tokens, cfg.width), kv, torch.empty(batch, cfg.width))
            call = net
        else:
            net = m.GemmaLM(cfg)
            args = (torch.empty(batch, tokens, cfg.width),)
            call = net.prefill
        with FlopCounterMode(display=False) as counter:
            call(*args)
    return int(counter.get_total_flops())
