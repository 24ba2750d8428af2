"""Analytic FLOP and byte model of pi0.5's stacks, op by op.

Conventions
- `flops` are matmul (tensor-core) FLOPs: 2*M*N*K per matmul. Attention counts Q.K^T and
  attn.V for every query head (GQA shares K/V heads but not the work). Elementwise ops (norms,
  RoPE, GeLU, residual adds) are listed with flops=0 so the byte totals are complete.
- `weight_bytes`: parameters read once per call (norm scales, biases included).
- `act_bytes`: activations read + written by the op, assuming each op is its own kernel.
  Attention is modelled as a fused (flash) kernel unless `flash=False`: scores never reach
  memory; attn_scores reads Q and K, attn_values reads V and writes the output.
- `kv_bytes`: K/V cache entries written (the prefix LLM's k_proj/v_proj; K is written after
  RoPE, but the byte count is the same).
- m, n, k of a matmul: rows, output features, reduction; for attention they are per head
  (attn_scores: m=T, n=S, k=head_dim; attn_values: m=T, n=head_dim, k=S).

The model matches `torch.utils.flop_counter.FlopCounterMode` over `pi05perf.model` exactly
(tests/test_flops.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .config import (ACTION_DIM, GEMMA_2B, GEMMA_300M, PATCH_SIZE, SIGLIP_SO400M, TokenBudget,
                     TransformerConfig, Hardware)


@dataclass(frozen=True)
class Op:
    name: str
    flops: int
    weight_bytes: int
    act_bytes: int
    kv_bytes: int = 0
    m: int = 0
    n: int = 0
    k: int = 0

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes + self.kv_bytes


def _linear(name: str, m: int, n: int, k: int, b: int, bias: bool = False, kv: bool = False) -> Op:
    """x[m, k] @ W[k, n] (+ bias): reads x and W, writes y."""
    w = (n * k + (n if bias else 0)) * b
    return Op(name, 2 * m * n * k, w, (m * k + (0 if kv else m * n)) * b, m * n * b if kv else 0, m, n, k)


def _eltwise(name: str, read: int, write: int, b: int, weight: int = 0) -> Op:
    return Op(name, 0, weight * b, (read + write) * b)


def layer_ops(cfg: TransformerConfig, tokens: int, kv_tokens: int | None = None, dtype_bytes: int = 2,
              batch: int = 1, fused: bool = False, *, cache_kv: bool | None = None,
              flash: bool = True) -> list[Op]:
    """Ops of one layer of `cfg` for `tokens` queries attending to `kv_tokens` keys.

    kv_tokens defaults to tokens; for the action expert pass prefix + horizon. cache_kv
    defaults to True for the (non-adaptive) Gemma LLM: its k/v outputs are the K/V cache.
    """
    if tokens <= 0:
        raise ValueError(f"tokens must be positive, got {tokens}")
    S = tokens if kv_tokens is None else kv_tokens
    T, B, b, W, F = tokens, batch, dtype_bytes, cfg.width, cfg.mlp_dim
    H, D, Qd, KVd = cfg.num_heads, cfg.head_dim, cfg.q_dim, cfg.kv_dim
    M = B * T
    if cache_kv is None:
        cache_kv = cfg.kind == "gemma" and not cfg.adaptive_norm
    gemma = cfg.kind == "gemma"
    if cfg.kind not in ("gemma", "siglip"):
        raise ValueError(f"unknown kind {cfg.kind!r}")
    bias = not gemma
    ops: list[Op] = []

    def norm(name: str) -> None:
        if gemma and cfg.adaptive_norm:  # Linear(cond -> 3W) per batch row, then x*(1+scale)+shift
            ops.append(_linear(f"{name}_mod", B, 3 * W, W, b, bias=True))
            ops.append(_eltwise(name, M * W + 2 * B * W, M * W, b))
        elif gemma:  # RMSNorm with (1 + scale)
            ops.append(_eltwise(name, M * W, M * W, b, weight=W))
        else:  # LayerNorm with weight and bias
            ops.append(_eltwise(name, M * W, M * W, b, weight=2 * W))

    norm("input_norm" if gemma else "ln1")
    if fused:
        # one read of x, q written, k and v written to the cache when cache_kv
        op = _linear("qkv_proj", M, Qd + 2 * KVd, W, b, bias)
        kvb = 2 * M * KVd * b if cache_kv else 0
        ops.append(Op(op.name, op.flops, op.weight_bytes, op.act_bytes - kvb, kvb, op.m, op.n, op.k))
    else:
        ops.append(_linear("q_proj", M, Qd, W, b, bias))
        ops.append(_linear("k_proj", M, KVd, W, b, bias, kv=cache_kv))
        ops.append(_linear("v_proj", M, KVd, W, b, bias, kv=cache_kv))
    if gemma:
        ops.append(_eltwise("rope", M * (Qd + KVd), M * (Qd + KVd), b))
    score_bytes = 0 if flash else B * H * T * S * b  # written by QK^T, read back by softmax.V
    ops.append(Op("attn_scores", 2 * B * H * T * S * D, 0, (M * Qd + B * S * KVd) * b + score_bytes,
                  0, T, S, D))
    ops.append(Op("attn_values", 2 * B * H * T * S * D, 0, (B * S * KVd + M * Qd) * b + score_bytes,
                  0, T, D, S))
    ops.append(_linear("o_proj", M, W, Qd, b, bias))
    norm("post_attn_norm" if gemma else "ln2")
    if gemma:
        if fused:
            ops.append(_linear("gate_up_proj", M, 2 * F, W, b))
        else:
            ops.append(_linear("gate_proj", M, F, W, b))
            ops.append(_linear("up_proj", M, F, W, b))
        ops.append(_eltwise("gelu_mul", 2 * M * F, M * F, b))
        ops.append(_linear("down_proj", M, W, F, b))
    else:
        ops.append(_linear("fc1", M, F, W, b, bias=True))
        ops.append(_eltwise("gelu", M * F, M * F, b))
        ops.append(_linear("fc2", M, W, F, b, bias=True))
    # two residual adds per layer (the expert's are gated: one more [B, W] read each)
    gate_reads = 2 * B * W if cfg.adaptive_norm else 0
    ops.append(_eltwise("residual", 4 * M * W + gate_reads, 2 * M * W, b))
    return ops


#: The MLP's ops as `layer_ops` names them, run unfused (the activation a kernel of its own).
MLP_OPS: tuple[str, ...] = ("gate_proj", "up_proj", "gelu_mul", "down_proj")


def ops_traffic(cfg: TransformerConfig, tokens: int, names: tuple[str, ...] = MLP_OPS) -> dict[str, float]:
    """What the ops `names` of `layer_ops` move and compute over the whole stack at `tokens`, each
    op a kernel of its own (its weights and activations through DRAM once): weight bytes,
    activation bytes, their sum (`bytes`) and FLOPs."""
    ops = [o for o in layer_ops(cfg, tokens) if o.name in names]
    weights, total = (cfg.depth * sum(getattr(o, k) for o in ops) for k in ("weight_bytes", "bytes"))
    return {"weight_bytes": weights, "activation_bytes": total - weights, "bytes": total,
            "flops": cfg.depth * sum(o.flops for o in ops)}


def stem_ops(cfg: TransformerConfig, tokens: int, dtype_bytes: int = 2, batch: int = 1,
             out_dim: int = 2048, patch_size: int = PATCH_SIZE) -> list[Op]:
    """What a stack does outside its layers. Gemma: the final norm (adaRMS in the expert).
    SigLIP: patch embedding (a conv = matmul over 3*p*p), position add, final LayerNorm, head."""
    B, T, b, W = batch, tokens, dtype_bytes, cfg.width
    M = B * T
    if cfg.kind == "gemma":
        if cfg.adaptive_norm:
            return [_linear("final_norm_mod", B, 3 * W, W, b, bias=True),
                    _eltwise("final_norm", M * W + 2 * B * W, M * W, b)]
        return [_eltwise("final_norm", M * W, M * W, b, weight=W)]
    P = 3 * patch_size * patch_size
    return [_linear("patch_embed", M, W, P, b, bias=True),
            _eltwise("pos_embed", 2 * M * W, M * W, b, weight=T * W),
            _eltwise("final_norm", M * W, M * W, b, weight=2 * W),
            _linear("head", M, out_dim, W, b, bias=True)]


def _sum(ops: list[Op], attr: str) -> int:
    return sum(getattr(o, attr) for o in ops)


def stack_cost(cfg: TransformerConfig, tokens: int, kv_tokens: int | None = None, dtype_bytes: int = 2,
               batch: int = 1, include_stem: bool = False, *, fused: bool = False,
               cache_kv: bool | None = None, flash: bool = True, out_dim: int = 2048) -> dict:
    """Totals over cfg.depth layers (+ the stem): flops, weight_bytes, act_bytes, kv_bytes,
    bytes (their sum: every op its own kernel), min_bytes (the floor's bytes), layers. For SigLIP `tokens` is per image and `batch` counts images."""
    lay = layer_ops(cfg, tokens, kv_tokens, dtype_bytes, batch, fused, cache_kv=cache_kv, flash=flash)
    stem = stem_ops(cfg, tokens, dtype_bytes, batch, out_dim) if include_stem else []
    out = {a: cfg.depth * _sum(lay, a) + _sum(stem, a)
           for a in ("flops", "weight_bytes", "act_bytes", "kv_bytes")}
    out["bytes"] = out["weight_bytes"] + out["act_bytes"] + out["kv_bytes"]
    # The fewest bytes any implementation must move: weights read once, the K/V cache written,
    # the stack's input read and output written. Intermediate activations can stay on chip
    # (a fused kernel, or L2: the largest, the 712 x 16384 GeGLU hidden, is 23 MB in bf16).
    out["min_bytes"] = out["weight_bytes"] + out["kv_bytes"] + 2 * batch * tokens * cfg.width * dtype_bytes
    out["layers"] = cfg.depth
    return out


def prefill_flops(cfg: TransformerConfig = GEMMA_2B, tokens: int = 712) -> int:
    """Matmul FLOPs of cfg.depth layers over `tokens` prefix tokens (gemma_2b, 712: ~2.9e12)."""
    return stack_cost(cfg, tokens)["flops"]


def prefill_weight_bytes(cfg: TransformerConfig = GEMMA_2B, dtype_bytes: int = 2) -> int:
    """Bytes of the layers' weights (norm scales included; no embedding table, no stem)."""
    return cfg.depth * _sum(layer_ops(cfg, 1, dtype_bytes=dtype_bytes), "weight_bytes")


def arithmetic_intensity(flops: float, bytes: float) -> float:
    return float("inf") if bytes == 0 else flops / bytes


def roofline_time_s(flops: float, bytes: float, tflops: float, gbps: float) -> float:
    """Lower bound on time: the larger of compute time and memory time."""
    return max(flops / (tflops * 1e12), bytes / (gbps * 1e9))


def pipeline_cost(budget: TokenBudget = TokenBudget(), num_steps: int = 10, dtype_bytes: int = 2,
                  batch: int = 1, hardware: Hardware | None = None, *,
                  llm_cfg: TransformerConfig = GEMMA_2B, expert_cfg: TransformerConfig = GEMMA_300M,
                  vision_cfg: TransformerConfig = SIGLIP_SO400M, action_dim: int = ACTION_DIM,
                  fused: bool = False) -> pd.DataFrame:
    """One pi0.5 inference per stage: vision (SigLIP over the images, with stem), prefix (the
    LLM over images + text, K/V written; the text embedding rows read count as weights) and
    denoise (num_steps expert calls over the action tokens attending to prefix + horizon, incl.
    time MLP, action_in_proj and action_out_proj; weights re-read every step).
    With `hardware`, adds compute_ms, memory_ms and roofline_ms (bf16 ceilings, every op's
    bytes through memory) and floor_ms: the larger of compute_ms and floor_bytes over the
    bandwidth, where floor_bytes are the fewest bytes any implementation moves -- weights once
    per call (the expert's once per step), the K/V cache written by the prefix and read by
    every denoise step, each stage's input and output (`stack_cost`'s min_bytes)."""
    b, H, We = dtype_bytes, budget.action_horizon, expert_cfg.width
    vision = stack_cost(vision_cfg, budget.image_tokens // max(budget.num_images, 1), None, b,
                        batch * budget.num_images, True, fused=fused, out_dim=llm_cfg.width)
    prefix = stack_cost(llm_cfg, budget.prefix_tokens, None, b, batch, True, fused=fused)
    prefix["weight_bytes"] += budget.text_tokens * llm_cfg.width * b * batch
    step = stack_cost(expert_cfg, H, budget.prefix_tokens + H, b, batch, True, fused=fused)
    extra = [_linear("time_mlp_in", batch, We, We, b, True), _linear("time_mlp_out", batch, We, We, b, True),
             _linear("action_in_proj", batch * H, We, action_dim, b, True),
             _linear("action_out_proj", batch * H, action_dim, We, b, True)]
    for a in ("flops", "weight_bytes", "act_bytes", "kv_bytes"):
        step[a] += _sum(extra, a)
    prefix["min_bytes"] += budget.text_tokens * llm_cfg.width * b * batch
    # a denoise step reads the whole prefix K/V cache of every layer (K and V, kv heads)
    kv_read = expert_cfg.depth * 2 * batch * budget.prefix_tokens * expert_cfg.kv_dim * b
    step["min_bytes"] += _sum(extra, "weight_bytes") + kv_read
    rows = []
    for stage, cost, calls, tokens in (("vision", vision, 1, budget.image_tokens),
                                       ("prefix", prefix, 1, budget.prefix_tokens),
                                       ("denoise", step, num_steps, H)):
        row = {"stage": stage, "calls": calls, "tokens": tokens}
        row.update({a: calls * cost[a] for a in ("flops", "weight_bytes", "act_bytes", "kv_bytes")})
        row["bytes"] = row["weight_bytes"] + row["act_bytes"] + row["kv_bytes"]
        row["floor_bytes"] = calls * cost["min_bytes"]
        row["intensity"] = arithmetic_intensity(row["flops"], row["bytes"])
        if hardware is not None:
            row["compute_ms"] = hardware.compute_ms(row["flops"])
            row["memory_ms"] = hardware.memory_ms(row["bytes"])
            row["roofline_ms"] = max(row["compute_ms"], row["memory_ms"])
            row["floor_ms"] = hardware.floor_ms(row["flops"], row["floor_bytes"])
        rows.append(row)
    return pd.DataFrame(rows)


def denoise_step_class_floors(budget: TokenBudget, hardware: Hardware, expert_cfg: TransformerConfig = GEMMA_300M,
                              action_dim: int = ACTION_DIM, dtype_bytes: int = 2) -> dict[str, float]:
    """Floor (ms) of one denoise step per kernel class, each op at the larger of its FLOPs over the
    peak and its unavoidable bytes over the bandwidth: GEMM (every projection, the adaRMS
    modulations, time MLP and action projections: weights once), attention (the prefix K/V cache
    read), elementwise/fused and other 0 (their traffic can stay on chip). The classes' floors add
    up to a little more than the step's floor, which takes one max over the whole step."""
    b, H, We = dtype_bytes, budget.action_horizon, expert_cfg.width
    peak, bw = hardware.bf16_tflops * 1e12, hardware.bandwidth_gbps * 1e9
    layer = layer_ops(expert_cfg, H, budget.prefix_tokens + H, b)
    gemms = [o for o in layer if o.flops and o.weight_bytes] * expert_cfg.depth
    gemms += [o for o in stem_ops(expert_cfg, H, b) if o.flops] + [
        _linear("time_mlp_in", 1, We, We, b, True), _linear("time_mlp_out", 1, We, We, b, True),
        _linear("action_in_proj", H, We, action_dim, b, True), _linear("action_out_proj", H, action_dim, We, b, True)]
    gemm_ms = sum(max(o.flops / peak, o.weight_bytes / bw) for o in gemms) * 1e3
    attn_flops = expert_cfg.depth * sum(o.flops for o in layer if o.name.startswith("attn_"))
    kv_read = expert_cfg.depth * 2 * budget.prefix_tokens * expert_cfg.kv_dim * b
    attn_ms = max(attn_flops / peak, kv_read / bw) * 1e3
    return {"GEMM": gemm_ms, "attention": attn_ms, "elementwise/fused": 0.0, "other": 0.0}


def budget_table(configs: list[TokenBudget], num_steps: int = 10, hardware: Hardware | None = None,
                 **kw) -> pd.DataFrame:
    """One row per token budget: image slots, text tokens, prefix tokens, each stage's FLOPs and
    the whole call's FLOPs, floor bytes and (with `hardware`) floor_ms -- `pipeline_cost` summed."""
    rows = []
    for b in configs:
        cost = pipeline_cost(b, num_steps, hardware=hardware, **kw).set_index("stage")
        row = {"image_slots": b.num_images, "text_tokens": b.text_tokens, "prefix_tokens": b.prefix_tokens,
               "vision_flops": int(cost.flops["vision"]), "prefix_flops": int(cost.flops["prefix"]),
               "denoise_flops": int(cost.flops["denoise"]), "call_flops": int(cost.flops.sum()),
               "call_floor_bytes": int(cost.floor_bytes.sum())}
        if hardware is not None:
            row["call_floor_ms"] = float(cost.floor_ms.sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the seed's table
# Per-layer FLOPs of gemma_2b at 712 prefix tokens as printed in the seed
# (../shared/seed/000_492d4811ae218214.txt, "每层 Transformer Block"), and its 18-layer total.
def _seed_flop_table() -> dict[str, float]:
    """The seed's per-layer FLOP table at 712 tokens, as printed (data/reference/seed_thor.csv)."""
    from .reference import quoted

    keys = {"q_proj": "flops_q_proj_gflop", "k_proj": "flops_k_proj_gflop", "v_proj": "flops_v_proj_gflop",
            "attn_scores": "flops_attn_score_gflop", "o_proj": "flops_o_proj_gflop",
            "gate_proj": "flops_gate_proj_gflop", "up_proj": "flops_up_proj_gflop",
            "down_proj": "flops_down_proj_gflop", "attention_subtotal": "flops_attention_per_layer_gflop",
            "mlp_subtotal": "flops_mlp_per_layer_gflop", "layer": "flops_per_layer_gflop",
            "total_18_layers": "flops_total_18_layers_gflop"}
    return {op: quoted(key) * 1e9 for op, key in keys.items()}


SEED_FLOP_TABLE = _seed_flop_table()
SEED_TOKENS = 712


def _seed_method(cfg: TransformerConfig, T: int) -> dict[str, float]:
    """The seed's formulas: 2*M*N*K for projections, T^2 * head_dim once for attention."""
    W, F, Qd, KVd, D = cfg.width, cfg.mlp_dim, cfg.q_dim, cfg.kv_dim, cfg.head_dim
    r = {"q_proj": 2 * T * W * Qd, "k_proj": 2 * T * W * KVd, "v_proj": 2 * T * W * KVd,
         "attn_scores": T * T * D, "attn_values": 0, "o_proj": 2 * T * Qd * W,
         "gate_proj": 2 * T * W * F, "up_proj": 2 * T * W * F, "down_proj": 2 * T * F * W,
         "gelu_mul": 0}
    r["attention_subtotal"] = sum(r[k] for k in ("q_proj", "k_proj", "v_proj", "attn_scores", "o_proj"))
    r["mlp_subtotal"] = r["gate_proj"] + r["up_proj"] + r["down_proj"]
    r["layer"] = r["attention_subtotal"] + r["mlp_subtotal"]
    r["total_18_layers"] = cfg.depth * r["layer"]
    return r


def compare_with_seed(tokens: int = SEED_TOKENS, cfg: TransformerConfig = GEMMA_2B) -> pd.DataFrame:
    """Our per-layer FLOPs next to the seed's. `seed_method_flops` is the seed's method evaluated at
    `tokens` (unrounded); `seed_printed_flops` is the figure the seed prints (only at 712 tokens; NaN
    for a row the seed does not print); ours_over_seed_method_ratio = ours_flops / seed_method_flops."""
    ours = {o.name: o.flops for o in layer_ops(cfg, tokens)}
    ours["attention_subtotal"] = sum(ours[k] for k in ("q_proj", "k_proj", "v_proj", "attn_scores",
                                                       "attn_values", "o_proj"))
    ours["mlp_subtotal"] = ours["gate_proj"] + ours["up_proj"] + ours["down_proj"]
    ours["layer"] = sum(o.flops for o in layer_ops(cfg, tokens))
    ours["total_18_layers"] = cfg.depth * ours["layer"]
    seed = _seed_method(cfg, tokens)
    T, H, D = tokens, cfg.num_heads, cfg.head_dim
    def g(x: float) -> str:
        return f"{x / 1e9:.2f} GFLOP" if x < 1e12 else f"{x / 1e12:.2f} TFLOP"

    seed_rows = sum(SEED_FLOP_TABLE[k] for k in ("q_proj", "k_proj", "v_proj", "attn_scores", "o_proj"))
    notes = {
        "q_proj": f"agrees: 2*T*{cfg.width}*{cfg.q_dim}",
        "k_proj": f"agrees: 2*T*{cfg.width}*{cfg.kv_dim} ({cfg.num_kv_heads} K/V head)",
        "v_proj": f"agrees: 2*T*{cfg.width}*{cfg.kv_dim} ({cfg.num_kv_heads} K/V head)",
        "attn_scores": (f"seed counts T^2*head_dim = {T}^2*{D} once: no factor 2 (multiply-add) and "
                        f"not per query head ({H} heads; GQA shares K, not the work): x{2 * H}"),
        "attn_values": "missing in the seed: attn.V costs as much as Q.K^T",
        "o_proj": f"agrees: 2*T*{cfg.q_dim}*{cfg.width}",
        "gate_proj": "agrees; the seed calls the MLP SwiGLU, Gemma's is GeGLU (gelu tanh): same matmuls",
        "up_proj": "agrees",
        "down_proj": "agrees",
        "gelu_mul": "elementwise (gelu tanh * up): no matmul FLOPs in either count",
        "attention_subtotal": (f"ours adds the x{2 * H} on scores and attn.V (+{g(ours['attention_subtotal'] - seed['attention_subtotal'])})"
                               + (f"; the seed prints {g(SEED_FLOP_TABLE['attention_subtotal'])} though its rows add to {g(seed_rows)}"
                                  if tokens == SEED_TOKENS else "")),
        "mlp_subtotal": "agrees",
        "layer": f"ours is higher only by attention (+{g(ours['layer'] - seed['layer'])})",
        "total_18_layers": f"x{cfg.depth} layers: seed's method {g(seed['total_18_layers'])}, ours {g(ours['total_18_layers'])}",
    }
    order = ["q_proj", "k_proj", "v_proj", "attn_scores", "attn_values", "o_proj", "gate_proj",
             "up_proj", "gelu_mul", "down_proj", "attention_subtotal", "mlp_subtotal", "layer",
             "total_18_layers"]
    rows = []
    for op in order:
        s = seed[op]
        printed = SEED_FLOP_TABLE.get(op, float("nan")) if tokens == SEED_TOKENS else float("nan")
        rows.append({"op": op, "seed_printed_flops": printed, "seed_method_flops": s, "ours_flops": ours[op],
                     "ours_over_seed_method_ratio": ours[op] / s if s else float("nan"), "note": notes[op]})
    return pd.DataFrame(rows)


def crossover_tokens(cfg: TransformerConfig, hw: Hardware, max_tokens: int = 1 << 16) -> int:
    """Smallest token count at which a layer's compute time reaches its (minimum) memory time:
    below it the layer is memory-bound on `hw`, above it compute-bound."""
    one = cfg.with_depth(1)

    def compute_bound(t: int) -> bool:
        c = stack_cost(one, t)
        return c["flops"] / (hw.bf16_tflops * 1e12) >= c["min_bytes"] / (hw.bandwidth_gbps * 1e9)

    lo, hi = 1, max_tokens
    if not compute_bound(hi):
        return max_tokens
    while lo < hi:  # compute time grows faster than bytes in tokens: monotone
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if compute_bound(mid) else (mid + 1, hi)
    return lo


def bound_table(cfg: TransformerConfig, tokens: int, devices: list[Hardware]) -> pd.DataFrame:
    """Per device: ridge point, crossover tokens, compute and memory floors of the whole stack
    at `tokens`, and which one binds."""
    cost = stack_cost(cfg, tokens)
    intensity = arithmetic_intensity(cost["flops"], cost["min_bytes"])
    rows = []
    for d in devices:
        compute_ms, memory_ms = d.compute_ms(cost["flops"]), d.memory_ms(cost["min_bytes"])
        rows.append({"device": d.name, "ridge_flop_per_byte": d.ridge_bf16, "intensity_flop_per_byte": intensity,
                     "crossover_tokens": crossover_tokens(cfg, d), "compute_floor_ms": compute_ms,
                     "memory_floor_ms": memory_ms, "floor_ms": max(compute_ms, memory_ms),
                     "bound": "memory" if memory_ms > compute_ms else "compute", "source": d.source})
    return pd.DataFrame(rows)


def roofline_curve(devices: list[Hardware], intensities: list[float]) -> pd.DataFrame:
    """Attainable bf16 TFLOP/s = min(peak, intensity x bandwidth), per device."""
    return pd.DataFrame([{"device": d.name, "intensity": i, "tflops": min(d.bf16_tflops, i * d.bandwidth_gbps / 1e3)}
                         for d in devices for i in intensities])


def waves(m: int, n: int, sms: int, tile_m: int = 128, tile_n: int = 256, split_k: int = 1) -> dict:
    """How many output tiles a GEMM has and how well they fill the SMs: the last wave of
    a grid of `tiles` tiles over `sms` SMs leaves SMs idle unless tiles is a multiple of sms."""
    tiles = math.ceil(m / tile_m) * math.ceil(n / tile_n) * split_k
    n_waves = math.ceil(tiles / sms)
    return {"tiles": tiles, "waves": tiles / sms, "sm_utilisation": tiles / (n_waves * sms)}
