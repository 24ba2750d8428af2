"""A pi0.5-shaped model in PyTorch: SigLIP So400m/14 + Gemma 2B (prefix) + Gemma 300M action expert.

Shapes and block structure follow openpi (`gemma.py`, `siglip.py`, `pi0.py`); the weights are
seeded random (latency does not depend on their values). One file, gpt-fast style:

- Gemma block: RMSNorm with (1 + scale), RoPE on q and k (half-split, wavelength 10_000),
  GQA with `num_kv_heads` K/V heads, GeGLU MLP (gelu tanh), two residual adds.
- The prefix (images + text) runs once with bidirectional attention and returns every layer's
  K/V (after RoPE). Each denoise step runs only the action tokens through the expert, whose
  layer i attends to [layer i's prefix K/V, its own K/V].
- pi0.5's expert: adaRMSNorm. A Linear(cond -> 3*width) gives scale, shift, gate; the norm
  output is `x_hat * (1 + scale) + shift` and the residual branch is multiplied by `gate`.
- Linear layers carry the names a quantizer swaps: q_proj k_proj v_proj o_proj (or qkv_proj),
  gate_proj up_proj down_proj (or gate_up_proj), SigLIP fc1 fc2. Forward code never reads a
  projection's `.weight`, so any module with the same call signature can replace it.

Everything builds on `torch.device("meta")` at full size, runs on CPU (fp32/bf16) and CUDA
(bf16), and has no data-dependent control flow (torch.compile / CUDA-graph friendly).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import (ACTION_DIM, ACTION_HORIZON_DEFAULT, GEMMA_2B, GEMMA_300M, IMAGE_SIZE,
                     PATCH_SIZE, SIGLIP_SO400M, TransformerConfig)

KV = list[tuple[Tensor, Tensor]]  # one (k, v) per layer, each [B, num_kv_heads, T, head_dim]


# ----------------------------------------------------------------------------- small pieces
class RMSNorm(nn.Module):
    """Gemma RMSNorm: normalise in fp32, multiply by (1 + weight); weight starts near 0."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * (1.0 + self.weight.float())).to(x.dtype)


class AdaRMSNorm(nn.Module):
    """pi0.5's adaptive RMSNorm: `modulation(cond)` -> scale, shift, gate (each [B, dim]).
    Returns (x_hat * (1 + scale) + shift, gate); the caller scales its residual branch by gate."""

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Linear(cond_dim, 3 * dim)

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        scale, shift, gate = self.modulation(cond)[:, None, :].chunk(3, dim=-1)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * (1.0 + scale.float()) + shift.float()).to(x.dtype), gate


def rope_tables(positions: Tensor, head_dim: int, max_wavelength: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """cos and sin of openpi's RoPE angles for positions [B, T]: each [B, 1, T, head_dim/2], fp32.
    Computed once per forward and shared by every layer (per-layer recomputation was the
    single largest eager cost at 712 tokens)."""
    half = head_dim // 2
    exponent = torch.arange(half, device=positions.device, dtype=torch.float32) * (2.0 / head_dim)
    angle = positions.to(torch.float32)[:, None, :, None] * max_wavelength ** -exponent
    return angle.cos(), angle.sin()


def apply_rope(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """RoPE as in openpi's `_apply_rope`: x [B, H, T, D]; the first and second half of D are
    rotated against each other, in fp32."""
    cos, sin = rope
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def posemb_sincos(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """openpi's sine-cosine embedding of a scalar per batch element: t [B] -> [B, dim] (fp32)."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.to(torch.float32)[:, None] * (2.0 * math.pi / period)[None, :]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


# ----------------------------------------------------------------------------- attention / MLP
def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Bidirectional attention, q [B, H, T, D] against k, v [B, Hkv, S, D] -> [B, H, T, D].

    With one K/V head (Gemma's multi-query attention) the query heads fold into the query
    rows: one [H*T, D] x [S, D] attention, no expanded K/V copies. Otherwise each K/V head is
    expanded to its group of query heads."""
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if Hkv == 1:
        return F.scaled_dot_product_attention(q.reshape(B, 1, H * T, D), k, v).view(B, H, T, D)
    if Hkv != H:
        g = H // Hkv
        k = k[:, :, None].expand(B, Hkv, g, S, D).reshape(B, H, S, D)
        v = v[:, :, None].expand(B, Hkv, g, S, D).reshape(B, H, S, D)
    return F.scaled_dot_product_attention(q, k, v)


def attend_joint(q: Tensor, k: Tensor, v: Tensor, prefix_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """`attend` over the keys [prefix K/V; k] and values [prefix K/V; v] (joint attention)."""
    if prefix_kv is not None:
        k, v = torch.cat([prefix_kv[0], k], dim=2), torch.cat([prefix_kv[1], v], dim=2)
    return attend(q, k, v)


class Attention(nn.Module):
    """Multi-head attention with optional GQA, RoPE and prepended K/V (joint attention).

    Unfused: q_proj, k_proj, v_proj; fused: qkv_proj with rows [q | k | v]. With one K/V head
    the query heads fold into the query rows; otherwise K/V heads are expanded to every query
    head. Either way FlopCounterMode counts attention for all query heads. No mask: attention
    is bidirectional.
    """

    def __init__(self, width: int, num_heads: int, num_kv_heads: int, head_dim: int,
                 bias: bool, rope: bool, fused: bool = False):
        super().__init__()
        assert num_heads % num_kv_heads == 0
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q_dim, self.kv_dim = num_heads * head_dim, num_kv_heads * head_dim
        self.rope, self.fused = rope, fused
        self.attend = attend_joint  # swappable: `kernels.decode_attention.attend_split_kv` for the expert
        if fused:
            self.qkv_proj = nn.Linear(width, self.q_dim + 2 * self.kv_dim, bias=bias)
        else:
            self.q_proj = nn.Linear(width, self.q_dim, bias=bias)
            self.k_proj = nn.Linear(width, self.kv_dim, bias=bias)
            self.v_proj = nn.Linear(width, self.kv_dim, bias=bias)
        self.o_proj = nn.Linear(self.q_dim, width, bias=bias)

    @torch.no_grad()
    def fuse_(self) -> None:
        if self.fused:
            return
        q, k, v = self.q_proj, self.k_proj, self.v_proj
        fused = nn.Linear(q.in_features, self.q_dim + 2 * self.kv_dim, bias=q.bias is not None,
                          device="meta")
        fused.weight = nn.Parameter(torch.cat([q.weight, k.weight, v.weight], 0),
                                    requires_grad=q.weight.requires_grad)
        if q.bias is not None:
            fused.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias], 0),
                                      requires_grad=q.bias.requires_grad)
        del self.q_proj, self.k_proj, self.v_proj
        self.qkv_proj, self.fused = fused, True

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, _ = x.shape
        if self.fused:
            q, k, v = self.qkv_proj(x).split([self.q_dim, self.kv_dim, self.kv_dim], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None,
                prefix_kv: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x [B, T, W] -> (out [B, T, W], (k, v) of these tokens, after RoPE)."""
        B, T, _ = x.shape
        q, k, v = self.project(x)
        if self.rope:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        o = self.attend(q, k, v, prefix_kv).transpose(1, 2).reshape(B, T, self.q_dim)
        return self.o_proj(o), (k, v)


class GeGLU(nn.Module):
    """Gemma MLP: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)); fused: gate_up_proj = [gate | up]."""

    def __init__(self, width: int, hidden: int, fused: bool = False):
        super().__init__()
        self.hidden, self.fused = hidden, fused
        if fused:
            self.gate_up_proj = nn.Linear(width, 2 * hidden, bias=False)
        else:
            self.gate_proj = nn.Linear(width, hidden, bias=False)
            self.up_proj = nn.Linear(width, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, width, bias=False)

    @torch.no_grad()
    def fuse_(self) -> None:
        if self.fused:
            return
        g, u = self.gate_proj, self.up_proj
        fused = nn.Linear(g.in_features, 2 * self.hidden, bias=False, device="meta")
        fused.weight = nn.Parameter(torch.cat([g.weight, u.weight], 0),
                                    requires_grad=g.weight.requires_grad)
        del self.gate_proj, self.up_proj
        self.gate_up_proj, self.fused = fused, True

    def forward(self, x: Tensor) -> Tensor:
        if self.fused:
            gate, up = self.gate_up_proj(x).split([self.hidden, self.hidden], dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.gelu(gate, approximate="tanh") * up)


class SigLIPMLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


# ----------------------------------------------------------------------------- Gemma
def default_positions(batch: int, length: int, start: int, device: torch.device) -> Tensor:
    return torch.arange(start, start + length, device=device).expand(batch, length)


class GemmaBlock(nn.Module):
    """Pre-norm Gemma layer. With cfg.adaptive_norm both norms are adaRMSNorm (cond required)
    and each residual branch is multiplied by its gate."""

    def __init__(self, cfg: TransformerConfig, fused: bool = False):
        super().__init__()
        self.adaptive = cfg.adaptive_norm
        norm = (lambda: AdaRMSNorm(cfg.width, cfg.width)) if self.adaptive else (lambda: RMSNorm(cfg.width))
        self.input_norm = norm()
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                              bias=False, rope=True, fused=fused)
        self.post_attn_norm = norm()  # Gemma's pre-MLP norm
        self.mlp = GeGLU(cfg.width, cfg.mlp_dim, fused=fused)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], prefix_kv: tuple[Tensor, Tensor] | None = None,
                cond: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if self.adaptive:
            h, gate = self.input_norm(x, cond)
            a, kv = self.attn(h, rope, prefix_kv)
            x = x + a * gate
            h, gate = self.post_attn_norm(x, cond)
            return x + self.mlp(h) * gate, kv
        a, kv = self.attn(self.input_norm(x), rope, prefix_kv)
        x = x + a
        return x + self.mlp(self.post_attn_norm(x)), kv


class GemmaLM(nn.Module):
    """The prefix LM (PaliGemma's Gemma 2B) over input embeddings: bidirectional attention."""

    def __init__(self, cfg: TransformerConfig = GEMMA_2B, fused: bool = False):
        super().__init__()
        assert cfg.kind == "gemma" and not cfg.adaptive_norm, cfg
        self.cfg = cfg
        self.layers = nn.ModuleList(GemmaBlock(cfg, fused) for _ in range(cfg.depth))
        self.final_norm = RMSNorm(cfg.width)

    def prefill(self, x: Tensor, positions: Tensor | None = None) -> tuple[Tensor, KV]:
        """x [B, T, W] -> (final-normed hidden [B, T, W], per-layer (k, v) [B, Hkv, T, D])."""
        if positions is None:
            positions = default_positions(x.shape[0], x.shape[1], 0, x.device)
        rope = rope_tables(positions, self.cfg.head_dim)
        kv: KV = []
        for layer in self.layers:
            x, layer_kv = layer(x, rope)
            kv.append(layer_kv)
        return self.final_norm(x), kv

    forward = prefill


class ActionExpert(nn.Module):
    """pi0.5's action expert (Gemma 300M with adaRMSNorm). Layer i's queries attend to
    [prefix K/V of layer i, own K/V]; bidirectional among the action tokens."""

    def __init__(self, cfg: TransformerConfig = GEMMA_300M, fused: bool = False):
        super().__init__()
        assert cfg.kind == "gemma", cfg
        self.cfg = cfg
        self.layers = nn.ModuleList(GemmaBlock(cfg, fused) for _ in range(cfg.depth))
        self.final_norm = AdaRMSNorm(cfg.width, cfg.width) if cfg.adaptive_norm else RMSNorm(cfg.width)

    def forward(self, x: Tensor, prefix_kv: KV, cond: Tensor | None,
                positions: Tensor | None = None) -> Tensor:
        """x [B, H, W_e], prefix_kv from the LLM (same depth, heads, head_dim), cond [B, W_e].
        Positions default to prefix_len + arange(H), continuing the prefix's."""
        assert len(prefix_kv) == len(self.layers), (len(prefix_kv), len(self.layers))
        if positions is None:
            positions = default_positions(x.shape[0], x.shape[1], prefix_kv[0][0].shape[2], x.device)
        rope = rope_tables(positions, self.cfg.head_dim)
        for layer, layer_kv in zip(self.layers, prefix_kv):
            x, _ = layer(x, rope, layer_kv, cond)
        if self.cfg.adaptive_norm:
            return self.final_norm(x, cond)[0]
        return self.final_norm(x)


# ----------------------------------------------------------------------------- SigLIP
class SigLIPBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig, fused: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                              bias=True, rope=False, fused=fused)
        self.ln2 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.mlp = SigLIPMLP(cfg.width, cfg.mlp_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))[0]
        return x + self.mlp(self.ln2(x))


class SigLIP(nn.Module):
    """SigLIP So400m/14 as used by pi0.5: patch embed, learned positions, pre-LN blocks,
    final LayerNorm, linear head to the LLM width. images [B, 3, S, S] -> [B, (S/p)^2, out_dim]."""

    def __init__(self, cfg: TransformerConfig = SIGLIP_SO400M, out_dim: int = 2048, fused: bool = False,
                 image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE):
        super().__init__()
        assert cfg.kind == "siglip" and image_size % patch_size == 0, (cfg, image_size, patch_size)
        self.cfg, self.image_size, self.patch_size = cfg, image_size, patch_size
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, cfg.width, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, cfg.width))
        self.layers = nn.ModuleList(SigLIPBlock(cfg, fused) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.head = nn.Linear(cfg.width, out_dim)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, N, W]
        x = x + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final_norm(x))


# ----------------------------------------------------------------------------- pi0.5
class Pi05(nn.Module):
    """pi0.5 inference: SigLIP + Gemma 2B prefix (run once, K/V cached) + action expert
    denoising with Euler flow matching from t=1 (noise) to t=0 (actions)."""

    def __init__(self, llm_cfg: TransformerConfig = GEMMA_2B, expert_cfg: TransformerConfig = GEMMA_300M,
                 vision_cfg: TransformerConfig = SIGLIP_SO400M, action_dim: int = ACTION_DIM,
                 vocab_size: int | None = None, fused: bool = False, image_size: int = IMAGE_SIZE,
                 patch_size: int = PATCH_SIZE, action_horizon: int = ACTION_HORIZON_DEFAULT):
        super().__init__()
        shared = ("depth", "num_heads", "num_kv_heads", "head_dim")
        assert all(getattr(llm_cfg, a) == getattr(expert_cfg, a) for a in shared), \
            f"LLM and expert must share {shared} for joint attention"
        vocab_size = vocab_size or llm_cfg.vocab_size
        assert vocab_size > 0, "vocab_size"
        self.llm_cfg, self.expert_cfg = llm_cfg, expert_cfg
        self.action_dim, self.action_horizon = action_dim, action_horizon
        We = expert_cfg.width
        self.embed_tokens = nn.Embedding(vocab_size, llm_cfg.width)
        self.vision = SigLIP(vision_cfg, llm_cfg.width, fused, image_size, patch_size)
        self.llm = GemmaLM(llm_cfg, fused)
        self.expert = ActionExpert(expert_cfg, fused)
        self.action_in_proj = nn.Linear(action_dim, We)
        self.time_mlp_in = nn.Linear(We, We)
        self.time_mlp_out = nn.Linear(We, We)
        self.action_out_proj = nn.Linear(We, action_dim)

    def embed_prefix(self, images: Tensor, text_ids: Tensor) -> Tensor:
        """images [B, V, 3, S, S], text_ids [B, L] -> [B, V*N + L, W]. Only text is scaled by sqrt(W)."""
        B, V = images.shape[:2]
        img = self.vision(images.flatten(0, 1).to(self.vision.patch_embed.weight.dtype))
        img = img.reshape(B, V * img.shape[1], img.shape[2])
        txt = self.embed_tokens(text_ids)
        txt = txt * math.sqrt(txt.shape[-1])
        return torch.cat([img, txt], dim=1)

    def prefill(self, prefix_embeds: Tensor) -> KV:
        return self.llm.prefill(prefix_embeds)[1]

    def time_cond(self, t: Tensor) -> Tensor:
        emb = posemb_sincos(t, self.expert_cfg.width).to(self.time_mlp_in.weight.dtype)
        return F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(emb))))

    def denoise_step(self, x_t: Tensor, t: Tensor | float, kv: KV) -> Tensor:
        """x_t [B, H, action_dim], t scalar or [B] -> velocity [B, H, action_dim] in x_t's dtype."""
        B = x_t.shape[0]
        if isinstance(t, Tensor):
            t = t.to(device=x_t.device, dtype=torch.float32).reshape(-1).expand(B)
        else:
            t = torch.full((B,), float(t), device=x_t.device, dtype=torch.float32)
        h = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))
        h = self.expert(h, kv, self.time_cond(t))
        return self.action_out_proj(h).to(x_t.dtype)

    def sample_actions(self, images: Tensor, text_ids: Tensor, num_steps: int = 10,
                       noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Euler flow matching, t: 1 -> 0 with dt = -1/num_steps; the prefix runs once and its
        K/V cache is reused by every step. Returns actions [B, H, action_dim] (noise's dtype, fp32)."""
        kv = self.prefill(self.embed_prefix(images, text_ids))
        if noise is None:
            noise = torch.randn(images.shape[0], self.action_horizon, self.action_dim,
                                device=images.device, dtype=torch.float32, generator=generator)
        dt = -1.0 / num_steps
        x = noise
        for i in range(num_steps):
            x = x + dt * self.denoise_step(x, 1.0 + i * dt, kv)
        return x


# ----------------------------------------------------------------------------- utilities
def fuse_projections(module: nn.Module) -> nn.Module:
    """In place: q/k/v -> qkv_proj and gate/up -> gate_up_proj everywhere (weights copied, same
    numerics). Returns the module."""
    for m in list(module.modules()):
        if isinstance(m, (Attention, GeGLU)):
            m.fuse_()
    return module


@torch.no_grad()
def init_weights_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic random init on the parameters' own device and dtype (a no-op on meta).

    Linear/Conv weights ~ N(0, 1/fan_in), except the projections that end a residual branch
    (o_proj, down_proj, fc2) inside a stack of L layers: N(0, 1/(2L fan_in)) as in GPT-2, so the
    residual stream stays O(1) and bf16 error is not amplified layer after layer; biases ~ N(0, 0.02); Gemma norm offsets ~ N(0, 0.02)
    so (1 + scale) ~ 1; LayerNorm weight ~ 1 + N(0, 0.02); token embeddings ~ N(0, 1/W) (text
    is multiplied by sqrt(W) later); position embeddings ~ N(0, 0.02); adaRMS modulation
    weights ~ N(0, 0.01/fan_in) (std 0.1/sqrt(fan_in)) with bias scale=0, shift=0, gate=1. Activations stay O(1)
    through 18 pre-norm layers in bf16.
    """
    gens: dict[torch.device, torch.Generator] = {}

    def normal_(p: Tensor, std: float, mean: float = 0.0) -> None:
        if p.is_meta:
            return
        if p.device not in gens:
            gens[p.device] = torch.Generator(device=p.device).manual_seed(seed)
        p.normal_(mean, std, generator=gens[p.device])

    modulations = {id(m.modulation) for m in module.modules() if isinstance(m, AdaRMSNorm)}
    residual_out: dict[int, float] = {}  # residual-branch outputs: std / sqrt(2 * depth)
    for stack in module.modules():
        if isinstance(stack, (GemmaLM, ActionExpert, SigLIP)):
            for layer in stack.layers:
                for lin in (layer.attn.o_proj, getattr(layer.mlp, "down_proj", None),
                            getattr(layer.mlp, "fc2", None)):
                    if lin is not None:
                        residual_out[id(lin)] = 1.0 / math.sqrt(2 * len(stack.layers))
    for m in module.modules():
        if isinstance(m, nn.Linear) and id(m) in modulations:
            normal_(m.weight, 0.1 / math.sqrt(m.in_features))
            if not m.bias.is_meta:
                m.bias.zero_()
                m.bias[2 * (m.out_features // 3):] = 1.0  # scale 0, shift 0, gate 1
        elif isinstance(m, nn.Linear):
            normal_(m.weight, residual_out.get(id(m), 1.0) / math.sqrt(m.in_features))
            if m.bias is not None:
                normal_(m.bias, 0.02)
        elif isinstance(m, nn.Conv2d):
            normal_(m.weight, 1.0 / math.sqrt(m.weight[0].numel()))
            if m.bias is not None:
                normal_(m.bias, 0.02)
        elif isinstance(m, RMSNorm):
            normal_(m.weight, 0.02)
        elif isinstance(m, nn.LayerNorm):
            normal_(m.weight, 0.02, mean=1.0)
            normal_(m.bias, 0.02)
        elif isinstance(m, nn.Embedding):
            normal_(m.weight, 1.0 / math.sqrt(m.embedding_dim))
        elif isinstance(m, SigLIP):
            normal_(m.pos_embed, 0.02)
    return module


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
