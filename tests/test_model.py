"""The pi0.5-shaped model at tiny size on CPU: structure, bidirectionality, fusion, dtypes,
flow-matching sampling, and that the expert really reads the prefix K/V."""
import copy
import math

import pytest
import torch

from pi05perf import model as M
from pi05perf.check import (TOLERANCE, assert_matches_reference, cosine, random_hidden,
                            random_pi05_inputs, relative_error)
from pi05perf.config import GEMMA_2B, GEMMA_300M, SIGLIP_SO400M, tiny_config

LLM = tiny_config(GEMMA_2B, width=64, depth=2)
EXPERT = tiny_config(GEMMA_300M, width=32, depth=2)
VISION = tiny_config(SIGLIP_SO400M, width=48, depth=2, num_heads=4, head_dim=12)
HORIZON = 5


def tiny_pi05(fused=False, seed=0, depth=2):
    torch.manual_seed(1234)  # construction draws from the global RNG; init_weights_ overwrites all
    pi = M.Pi05(LLM.with_depth(depth), EXPERT.with_depth(depth), VISION, vocab_size=128, fused=fused,
                image_size=28, patch_size=14, action_horizon=HORIZON)
    return M.init_weights_(pi, seed).eval()


@pytest.fixture(scope="module")
def pi():
    return tiny_pi05()


@pytest.fixture(scope="module")
def inputs(pi):
    return random_pi05_inputs(pi, batch=2, num_images=2, text_tokens=6, seed=3)


def test_prefill_kv_shapes_and_finite(pi, inputs):
    with torch.no_grad():
        prefix = pi.embed_prefix(inputs["images"], inputs["text_ids"])
        assert prefix.shape == (2, 2 * 4 + 6, LLM.width)
        hidden, kv = pi.llm.prefill(prefix)
    assert hidden.shape == prefix.shape and torch.isfinite(hidden).all()
    assert len(kv) == LLM.depth
    for k, v in kv:
        assert k.shape == v.shape == (2, LLM.num_kv_heads, prefix.shape[1], LLM.head_dim) == (2, 1, 14, 16)
        assert torch.isfinite(k).all() and torch.isfinite(v).all()


def test_prefix_attention_is_bidirectional(pi):
    x = random_hidden(1, 9, LLM.width, seed=5)
    y = x.clone()
    y[:, -1] = random_hidden(1, 1, LLM.width, seed=6)[:, 0]
    with torch.no_grad():
        hx, kvx = pi.llm.prefill(x)
        hy, kvy = pi.llm.prefill(y)
    assert relative_error(hy[:, 0], hx[:, 0]) > 1e-3  # the first token saw the last one
    assert relative_error(kvy[1][0][:, :, 0], kvx[1][0][:, :, 0]) > 1e-3


def naive_attention(attn, x, positions, prefix_kv=None):
    """Reference: explicit repeat_interleave of K/V heads, softmax(QK^T/sqrt(d))V."""
    q, k, v = attn.project(x)
    rope = M.rope_tables(positions, attn.head_dim)
    q, k = M.apply_rope(q, rope), M.apply_rope(k, rope)
    if prefix_kv is not None:
        k, v = torch.cat([prefix_kv[0], k], 2), torch.cat([prefix_kv[1], v], 2)
    g = attn.num_heads // attn.num_kv_heads
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim), -1)
    o = (p @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    return attn.o_proj(o)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_attention_matches_naive_gqa(kv_heads):
    attn = M.init_weights_(M.Attention(32, 4, kv_heads, 8, bias=False, rope=True), 0)
    x = random_hidden(2, 7, 32, seed=1)
    pos = torch.arange(3, 10).expand(2, 7)
    pk = (torch.randn(2, kv_heads, 4, 8), torch.randn(2, kv_heads, 4, 8))
    with torch.no_grad():
        out, (k, v) = attn(x, M.rope_tables(pos, attn.head_dim), pk)
        ref = naive_attention(attn, x, pos, pk)
    assert k.shape == (2, kv_heads, 7, 8)
    assert relative_error(out, ref) < 1e-5


def test_rope_is_relative():
    # q.k after RoPE depends only on the position difference
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)
    def dot(i, j):
        return (M.apply_rope(q, M.rope_tables(torch.tensor([[i]]), 16))
                * M.apply_rope(k, M.rope_tables(torch.tensor([[j]]), 16))).sum()
    assert torch.allclose(dot(3, 1), dot(10, 8)) and not torch.allclose(dot(3, 1), dot(3, 2))


def test_fused_matches_unfused_fp32(pi, inputs):
    fused = M.fuse_projections(copy.deepcopy(pi))
    names = {n.rsplit(".", 1)[-1] for n, _ in fused.named_modules()}
    assert {"qkv_proj", "gate_up_proj", "fc1", "fc2", "o_proj", "down_proj"} <= names
    assert not names & {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}
    # the constructor gives the same structure directly
    direct = tiny_pi05(fused=True)
    assert {k: v.shape for k, v in direct.state_dict().items()} == \
           {k: v.shape for k, v in fused.state_dict().items()}
    with torch.no_grad():
        a = pi.sample_actions(inputs["images"], inputs["text_ids"], 3, noise=inputs["noise"])
        b = fused.sample_actions(inputs["images"], inputs["text_ids"], 3, noise=inputs["noise"])
        kv_a = pi.prefill(pi.embed_prefix(inputs["images"], inputs["text_ids"]))
        kv_b = fused.prefill(fused.embed_prefix(inputs["images"], inputs["text_ids"]))
    assert relative_error(b, a) < 1e-5
    assert max(relative_error(x[0], y[0]) for x, y in zip(kv_a, kv_b)) < 1e-5


def test_bf16_matches_fp32_reference(pi):
    fresh = random_pi05_inputs(pi, batch=2, num_images=2, text_tokens=6, seed=11)
    ref_model, model = pi, copy.deepcopy(pi).to(torch.bfloat16)
    with torch.no_grad():
        ref_prefix = ref_model.embed_prefix(fresh["images"], fresh["text_ids"])
        prefix = model.embed_prefix(fresh["images"], fresh["text_ids"])
        assert prefix.dtype == torch.bfloat16
        assert_matches_reference(model.llm.prefill(prefix)[0], ref_model.llm.prefill(ref_prefix)[0],
                                 torch.bfloat16, "tiny LLM prefill")
        out = model.sample_actions(fresh["images"], fresh["text_ids"], 4, noise=fresh["noise"])
        ref = ref_model.sample_actions(fresh["images"], fresh["text_ids"], 4, noise=fresh["noise"])
    assert out.dtype == torch.float32
    assert_matches_reference(out, ref, torch.bfloat16, "tiny pi0.5 actions")
    assert cosine(out, ref) > 0.99
    with pytest.raises(AssertionError, match="relative error"):
        assert_matches_reference(out + 0.5 * ref.abs().mean(), ref, torch.float32, "perturbed")


def test_sample_actions_deterministic_and_shaped(pi, inputs):
    with torch.no_grad():
        a = pi.sample_actions(inputs["images"], inputs["text_ids"], 10, noise=inputs["noise"])
        b = pi.sample_actions(inputs["images"], inputs["text_ids"], 10, noise=inputs["noise"].clone())
        c = pi.sample_actions(inputs["images"], inputs["text_ids"], 10, noise=inputs["noise"] + 1.0)
    assert a.shape == (2, HORIZON, 32) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_prefix_runs_once_per_sample(pi, inputs, monkeypatch):
    calls = []
    real = pi.llm.prefill
    monkeypatch.setattr(pi.llm, "prefill", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        pi.sample_actions(inputs["images"], inputs["text_ids"], 7, noise=inputs["noise"])
    assert len(calls) == 1


def test_denoise_step_depends_on_t_and_prefix(pi, inputs):
    with torch.no_grad():
        kv = pi.prefill(pi.embed_prefix(inputs["images"], inputs["text_ids"]))
        x = inputs["noise"]
        v1 = pi.denoise_step(x, 1.0, kv)
        v_half = pi.denoise_step(x, 0.5, kv)
        v_tensor = pi.denoise_step(x, torch.tensor([0.5, 0.5]), kv)
        # perturb only the last layer's prefix V: the expert must read it
        kv2 = [(k, v) for k, v in kv]
        kv2[-1] = (kv[-1][0], kv[-1][1] + torch.randn_like(kv[-1][1]))
        v_kv = pi.denoise_step(x, 0.5, kv2)
        kv3 = [(k + torch.randn_like(k), v) for k, v in kv]
        v_k = pi.denoise_step(x, 0.5, kv3)
    assert v1.shape == x.shape
    assert relative_error(v_half, v1) > 1e-3, "denoise_step ignores t"
    assert torch.allclose(v_tensor, v_half, atol=1e-6)
    assert relative_error(v_kv, v_half) > 1e-3, "the expert ignores the prefix V"
    assert relative_error(v_k, v_half) > 1e-3, "the expert ignores the prefix K"


def test_expert_is_bidirectional_among_actions(pi):
    kv = [(torch.randn(1, 1, 6, 16), torch.randn(1, 1, 6, 16)) for _ in range(EXPERT.depth)]
    x, cond = random_hidden(1, HORIZON, EXPERT.width, seed=2), torch.randn(1, EXPERT.width)
    y = x.clone()
    y[:, -1] += 1.0
    with torch.no_grad():
        a, b = pi.expert(x, kv, cond), pi.expert(y, kv, cond)
    assert relative_error(b[:, 0], a[:, 0]) > 1e-4


def test_deep_bf16_activations_stay_order_one():
    lm = M.init_weights_(M.GemmaLM(tiny_config(GEMMA_2B, width=128, depth=18)), seed=7).to(torch.bfloat16)
    x = random_hidden(1, 32, 128, seed=1, dtype=torch.bfloat16)
    with torch.no_grad():
        h, kv = lm.prefill(x)
    assert torch.isfinite(h).all() and all(torch.isfinite(k).all() for k, _ in kv)
    assert 0.3 < h.float().std().item() < 3.0


def test_init_is_deterministic():
    a, b, c = tiny_pi05(seed=3), tiny_pi05(seed=3), tiny_pi05(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["llm.layers.0.attn.q_proj.weight"], sc["llm.layers.0.attn.q_proj.weight"])
    ada = a.expert.layers[0].input_norm.modulation.bias
    assert torch.equal(ada[-EXPERT.width:], torch.ones(EXPERT.width))  # gate starts at 1


def test_full_size_builds_on_meta():
    with torch.device("meta"):
        pi = M.init_weights_(M.Pi05(), 0)  # no-op on meta, no allocation
    assert all(p.is_meta for p in pi.parameters())
    assert 3.2e9 < M.count_params(pi) < 3.5e9
    assert M.count_params(pi.llm) == 18 * (2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 16384 + 2 * 2048) + 2048
    M.fuse_projections(pi)
    assert all(p.is_meta for p in pi.parameters())
    kv = [(torch.empty(1, 1, 712, 256, device="meta"),) * 2 for _ in range(18)]
    v = pi.denoise_step(torch.empty(1, 10, 32, device="meta"), 0.3, kv)
    assert v.shape == (1, 10, 32)


def test_relative_error_and_cosine():
    a = torch.randn(100)
    assert relative_error(a, a) == 0.0 and cosine(a, a) == pytest.approx(1.0)
    assert relative_error(a * float("nan"), a) == math.inf
    assert relative_error(torch.full((100,), float("inf")), a) == math.inf
    assert relative_error(a[:10], a) == math.inf
    assert relative_error(1.01 * a, a) == pytest.approx(0.01)
    assert set(TOLERANCE) == {torch.float32, torch.bfloat16, torch.float16}
