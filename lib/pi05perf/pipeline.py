"""The whole pi0.5 call as the benchmark builds it: the architecture (`Arch`, `arch`), one
configuration (`Shape`), the model with seeded weights (`build_pi05`), the Euler schedule,
precomputed time conditioning (`TimeTable`), and the three stages as one callable (`Pipeline`).
`pipeline_bench` checks and times what is built here.

Precomputed time conditioning (`TimeTable`). With a fixed Euler schedule the timestep of
step i is a constant, so the time MLP and every adaRMSNorm modulation of the expert
(Linear(cond -> 3W) giving scale, shift and gate) are constants of the schedule. `TimeTable`
evaluates them once with the model's own modules, stores one row per timestep (all 37
modulations side by side) and swaps each modulation for a lookup of its own slice of that
row; a step's condition is its row. The model's forward code is unchanged and the values are
exactly those of the eager path. Per step this drops 37 reads of a W x 3W weight -- about a
quarter of the expert's weight bytes -- and, compiled, the lookups fuse into the norms.

CUDA graphs (`Graphed`) are captured once per configuration on static inputs, after warm-up
on a side stream (where torch.compile compiles); each replay copies its inputs into the
static buffers (included in the timings) and returns the static outputs (clone them before
the next replay).
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from .config import (ACTION_HORIZON_LIBERO, GEMMA_2B, GEMMA_300M, IMAGE_SIZE, MAX_TEXT_TOKENS,
                     PATCH_SIZE, SIGLIP_SO400M, TransformerConfig, tiny_config)
from .model import KV, AdaRMSNorm, Pi05, fuse_projections, init_weights_
from .timing import standard_strides

VOCAB = 1024  #: vocabulary of the benchmark model (openpi: 257152; only gathered from)
STAGES = ("vision", "prefill", "denoise", "whole")

@dataclass(frozen=True)
class Arch:
    """The three stacks of one pi0.5-shaped model and its image geometry."""

    llm: TransformerConfig
    expert: TransformerConfig
    vision: TransformerConfig
    image_size: int
    patch_size: int
    vocab_size: int = VOCAB

    @property
    def tokens_per_image(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def layers(self) -> int:
        return self.llm.depth

    def with_layers(self, depth: int) -> "Arch":
        """LLM and expert attend jointly layer by layer, so both change depth together."""
        return replace(self, llm=self.llm.with_depth(depth), expert=self.expert.with_depth(depth))

    def with_tokens_per_image(self, tokens: int) -> "Arch":
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"tokens per image must be a square number, got {tokens}")
        return replace(self, image_size=side * self.patch_size)


def arch(full: bool) -> Arch:
    """pi0.5 at full size (openpi's configs), or a tiny model of the same structure for CPU
    smoke runs (LLM and expert share depth, heads and head_dim; 4 tokens per image)."""
    if full:
        return Arch(GEMMA_2B, GEMMA_300M, SIGLIP_SO400M, IMAGE_SIZE, PATCH_SIZE)
    return Arch(tiny_config(GEMMA_2B, width=64, depth=3, num_heads=4, head_dim=16),
                tiny_config(GEMMA_300M, width=32, depth=3, num_heads=4, head_dim=16),
                tiny_config(SIGLIP_SO400M, width=48, depth=2, num_heads=4, head_dim=12), 28, 14)


@dataclass(frozen=True)
class Shape:
    """One inference configuration: camera views, text tokens, Euler steps, action horizon.
    views=0 describes a prefix of text tokens only: a prefill or denoise stage of any length."""

    views: int = 2
    text_tokens: int = MAX_TEXT_TOKENS
    steps: int = 10
    horizon: int = ACTION_HORIZON_LIBERO

    def __post_init__(self) -> None:
        for name in ("views", "text_tokens", "steps", "horizon"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "views" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'views' else 'positive'} "
                                 f"integer, got {v!r}")

    def prefix_tokens(self, a: Arch) -> int:
        return self.views * a.tokens_per_image + self.text_tokens

    def describe(self, a: Arch) -> dict[str, int]:
        return {"views": self.views, "text_tokens": self.text_tokens, "steps": self.steps,
                "horizon": self.horizon, "layers": a.layers, "tokens_per_image": a.tokens_per_image,
                "prefix_tokens": self.prefix_tokens(a)}


def build_pi05(a: Arch, device: torch.device | str, dtype: torch.dtype, fused: bool = False,
               seed: int = 0) -> Pi05:
    """Seeded random weights, identical for every dtype and fusion: built on the meta device,
    materialised on `device`, initialised in fp32 by `init_weights_` (which covers every
    parameter), optionally fused, then cast."""
    with torch.device("meta"):
        m = Pi05(a.llm, a.expert, a.vision, vocab_size=a.vocab_size, image_size=a.image_size,
                 patch_size=a.patch_size, action_horizon=ACTION_HORIZON_LIBERO)
    m = m.to_empty(device=device)
    init_weights_(m, seed)
    if fused:
        fuse_projections(m)
    return m.to(dtype).eval().requires_grad_(False)


def shared_copy(model: nn.Module) -> nn.Module:
    """A structural copy whose parameters and buffers are the original's tensors (no memory):
    swap or compile submodules of the copy without touching the original."""
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def schedule(steps: int) -> list[float]:
    """The timesteps of `sample_actions`' Euler loop, computed the same way."""
    dt = -1.0 / steps
    return [1.0 + i * dt for i in range(steps)]


class _Lookup(nn.Module):
    """Stands in for one adaRMSNorm's modulation Linear: this norm's precomputed scale, shift
    and gate, gathered from the step's condition vector by a buffer of indices (a buffer, not
    an int attribute, so that compiled blocks of one kind still share one graph)."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return cond.index_select(-1, self.index)


class TimeTable:
    """Precomputed time conditioning for fixed Euler schedules, installed in `model` (modify a
    `shared_copy`, not a model used elsewhere). Each distinct timestep's condition is the
    concatenation of every adaRMSNorm's modulation output, evaluated once by the model's own
    modules; `conds(n)` gives the n per-step condition rows."""

    def __init__(self, model: Pi05, step_counts: Sequence[int]):
        norms = [m for m in model.expert.modules() if isinstance(m, AdaRMSNorm)]
        if not norms:
            raise ValueError("the expert has no adaRMSNorm: no time conditioning to precompute")
        p = model.time_mlp_in.weight
        ts: list[float] = []
        for n in sorted(set(step_counts)):
            ts += [t for t in schedule(n) if t not in ts]
        with torch.no_grad():
            conds = [model.time_cond(torch.full((1,), t, device=p.device, dtype=torch.float32)) for t in ts]
            # row r: [modulation_0(cond_r) | modulation_1(cond_r) | ...], each as eager computes it
            self.table = torch.cat([torch.cat([norm.modulation(c) for norm in norms], dim=1) for c in conds], dim=0)
            width = self.table.shape[1] // len(norms)
            for k, norm in enumerate(norms):
                norm.modulation = _Lookup(torch.arange(k * width, (k + 1) * width, device=p.device))
        self.rows = {t: r for r, t in enumerate(ts)}
        self._conds = {n: [self.table[self.rows[t]][None] for t in schedule(n)] for n in set(step_counts)}
        self.norms = len(norms)

    def conds(self, steps: int) -> list[torch.Tensor]:
        if steps not in self._conds:
            raise KeyError(f"no precomputed schedule for {steps} steps (have {sorted(self._conds)})")
        return self._conds[steps]


def euler(model: Pi05, kv: KV, noise: torch.Tensor, steps: int,
          conds: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """`sample_actions`' loop after the prefix: x <- x + dt * v(x, t). With `conds` (from a
    `TimeTable` installed in `model`) the per-step time conditioning is looked up."""
    dt = -1.0 / steps
    x = noise
    for i, t in enumerate(schedule(steps)):
        if conds is None:
            v = model.denoise_step(x, t, kv)
        else:
            h = model.action_in_proj(x.to(model.action_in_proj.weight.dtype))
            h = model.expert(h, kv, conds[i].expand(x.shape[0], -1))
            v = model.action_out_proj(h).to(x.dtype)
        x = x + dt * v
    return x


def _pairs(flat: Sequence[torch.Tensor]) -> KV:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


class Pipeline:
    """The stages of one model for one number of steps, as functions of tensors only (what a
    CUDA graph captures). `__call__` runs the whole inference and returns (actions, prefix
    embeddings, last layer's K)."""

    def __init__(self, model: Pi05, steps: int, table: TimeTable | None = None):
        self.model, self.steps = model, steps
        self.conds = table.conds(steps) if table is not None else None

    def vision(self, images: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_prefix(images, text_ids)

    def prefill(self, prefix: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The K/V cache as contiguous tensors (V is otherwise a view into the projection's
        output): what a cache holds, and one memory layout for every path that reads it."""
        return tuple(standard_strides(t) for kv in self.model.prefill(prefix) for t in kv)

    def denoise(self, noise: torch.Tensor, *kv_flat: torch.Tensor) -> torch.Tensor:
        return euler(self.model, _pairs(kv_flat), noise, self.steps, self.conds)

    def __call__(self, images: torch.Tensor, text_ids: torch.Tensor,
                 noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        prefix = self.vision(images, text_ids)
        kv = self.prefill(prefix)
        return self.denoise(noise, *kv), prefix, kv[-2]

    def stage(self, name: str) -> Callable[..., Any]:
        if name not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {name!r}")
        return self if name == "whole" else getattr(self, name)


def compile_blocks(model: Pi05, mode: str = "default", backend: str = "inductor",
                   expert_mode: str | None = None) -> Pi05:
    """Regional compilation, in place: every transformer block (SigLIP, LLM, expert) is
    torch.compile'd with fullgraph=True (a graph break raises) and dynamic=False. Blocks of
    one kind share their compiled code (parameters are graph inputs), so one configuration
    compiles three graphs, whatever the depth; a new shape compiles new ones. `expert_mode`
    compiles the action expert's blocks in another inductor mode (e.g. max-autotune, whose
    Triton GEMM templates can take the M = horizon GEMMs and fuse their epilogues)."""
    import torch._dynamo

    # LLM and expert share GemmaBlock.forward: each (block kind, shape) is one cache entry, and
    # a few token budgets exceed dynamo's default limit of 8 -- past it, blocks silently run eager
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
            break
    opts: dict[str, Any] = {"backend": backend, "fullgraph": True, "dynamic": False}
    for stack in (model.vision, model.llm, model.expert):
        stack_mode = expert_mode if (stack is model.expert and expert_mode) else mode
        for layer in stack.layers:
            layer.compile(**opts, **({"mode": stack_mode} if backend == "inductor" else {}))
    return model


def compiled_graph_count() -> int:
    """Distinct graphs dynamo has compiled so far in this process."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


