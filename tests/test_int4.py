"""pi05perf.precision.int4 and w4a16_triton: packing, grouping, the W4A16 layout and reference."""
from __future__ import annotations

import pytest
import torch

from pi05perf import precision as Q
from _precision_helpers import K, N, _fresh_input, _linear


def test_int4_pack_roundtrip_and_grouping():
    lin = _linear()
    q, sz = Q.int4_group_quantize(lin.weight, 128)
    assert q.dtype == torch.uint8 and int(q.max()) <= 15 and sz.shape == (K // 128, N, 2)
    assert torch.equal(Q.unpack_uint4(Q.pack_uint4(q)), q)
    groups = q.reshape(N, K // 128, 128)  # asymmetric codes span the whole 0..15 range per group
    assert (groups.amin(-1) == 0).all() and (groups.amax(-1) == 15).all()
    qs, szs = Q.int4_group_quantize(lin.weight, 128, symmetric=True)
    assert (szs[..., 1] == 0).all() and int(qs.min()) >= 1  # symmetric: -7..7 around 8, zero 0
    assert Q.pack_uint4(torch.tensor([[1, 2]]))[0, 0] == 0x12  # even k in the high nibble
    with pytest.raises(ValueError):
        Q.int4_group_quantize(torch.randn(8, 100), 128)


# --------------------------------------------------------------------------- W4A16 (Triton) layout
from pi05perf.precision import w4a16_triton as W4  # noqa: E402


@pytest.mark.parametrize("group", [32, 128])
def test_w4a16_pack_roundtrip_and_reference(group):
    lin = _linear()
    q, sz = Q.int4_group_quantize(lin.weight, group)
    packed, s, z = W4.pack_w4a16(q, sz, group)
    assert packed.shape == (K // 2, N) and packed.dtype == torch.uint8 and s.shape == (K // group, N)
    assert torch.equal(W4.unpack_w4a16(packed, group), q)
    # the kernel's weight is the tinygemm weight: same codes, same scales and zeros
    assert torch.equal(W4.dequantize_w4a16(packed, s, z, group), Q.int4_dequantize(q, sz, group))
    x = _fresh_input()
    ref = x.double() @ Q.int4_dequantize(q, sz, group).double().t()
    assert Q.accuracy(W4.reference_matmul(x, packed, s, z, group), ref)["rel_err"] < 1e-6


def test_w4a16_layout_halves_of_a_group():
    """Row j of a group holds k = j (high nibble) and k = G/2 + j (low nibble)."""
    codes = torch.arange(8, dtype=torch.uint8).reshape(1, 8)  # one output channel, K = 8, G = 4
    packed, _, _ = W4.pack_w4a16(codes, torch.ones(2, 1, 2, dtype=torch.bfloat16), 4)
    assert packed[:, 0].tolist() == [0x02, 0x13, 0x46, 0x57]


def test_w4a16_without_gpu():
    assert W4.available() is (torch.cuda.is_available() and W4.triton is not None)
    if not W4.available():
        df = W4.w4a16_vs_bf16({"x": (64, 128)}, 16, "cpu", 1)
        assert df.error.str.contains("not run").all() and W4.w4a16_ratio(df) is None


@pytest.mark.skipif(W4.triton is None, reason="triton not installed")
def test_w4a16_kernel_under_interpreter(monkeypatch):
    """The kernel's indexing, unpacking and group scales under TRITON_INTERPRET=1 (bf16 tiles
    widened to fp32 for tl.dot: the interpreter's bf16 dot is wrong)."""
    import os

    if not os.environ.get("TRITON_INTERPRET"):
        pytest.skip("run with TRITON_INTERPRET=1")
    import triton

    G, n, k, m = 32, 64, 128, 40
    q, sz = Q.int4_group_quantize(torch.randn(n, k) * 0.02, G)
    packed, s, z = W4.pack_w4a16(q, sz, G)
    x = torch.randn(m, k).to(torch.bfloat16)
    y = torch.empty(m, n, dtype=torch.bfloat16)
    W4._w4a16_kernel.fn[(triton.cdiv(m, 32), triton.cdiv(n, 32))](
        x, packed, s, z, y, m, n, k, x.stride(0), x.stride(1), packed.stride(0), packed.stride(1), s.stride(0),
        s.stride(1), y.stride(0), y.stride(1), GROUP=G, BLOCK_M=32, BLOCK_N=32, DOT_F32=True)
    assert Q.accuracy(y, W4.reference_matmul(x, packed, s, z, G))["rel_err"] < 1e-2
