"""pi05perf.precision.nvfp4: E2M1 exactness and the NVFP4 structure."""
from __future__ import annotations

import math

import torch

from pi05perf import precision as Q
from _precision_helpers import N, K, _linear


# --------------------------------------------------------------------------- E2M1 / NVFP4
def test_e2m1_grid_values_exact():
    grid = torch.tensor(Q.E2M1_VALUES)
    vals = torch.cat([grid, -grid])
    codes = Q.e2m1_encode(vals)
    assert torch.equal(Q.e2m1_decode(codes), vals)
    assert codes.max() <= 15 and len(set(codes.tolist())) == 16  # 16 distinct codes incl. -0
    assert Q.e2m1_decode(torch.arange(16, dtype=torch.uint8)).abs().unique().tolist() == list(Q.E2M1_VALUES)


def test_e2m1_rounding_nearest_ties_even_saturating():
    ties = {0.25: 0.0, 0.75: 1.0, 1.25: 1.0, 1.75: 2.0, 2.5: 2.0, 3.5: 4.0, 5.0: 4.0, 7.0: 6.0, 1e9: 6.0}
    x = torch.tensor(list(ties))
    assert Q.e2m1_decode(Q.e2m1_encode(x)).tolist() == list(ties.values())
    assert Q.e2m1_decode(Q.e2m1_encode(-x)).tolist() == [-v for v in ties.values()]
    r = torch.randn(10000, generator=torch.Generator().manual_seed(0)) * 3
    grid = torch.tensor(Q.E2M1_VALUES)
    nearest = grid[(r.abs().clamp(max=6)[:, None] - grid).abs().argmin(1)] * r.sign()
    assert torch.equal(Q.e2m1_decode(Q.e2m1_encode(r)).abs(), nearest.abs())


def test_nvfp4_structure():
    w = _linear().weight.detach()
    codes, bs, ts = Q.quantize_nvfp4(w)
    assert codes.shape == w.shape and codes.dtype == torch.uint8 and int(codes.max()) <= 15
    assert bs.shape == (N, K // 16) and bs.dtype == torch.float8_e4m3fn
    assert ts.dtype == torch.float32 and ts.dim() == 0
    assert math.isclose(float(ts), float(w.abs().max()) / (6 * 448), rel_tol=1e-6)
    dq = Q.dequantize_nvfp4(codes, bs, ts)
    blk = w.reshape(N, K // 16, 16)
    # each value lands within half the widest E2M1 gap (2 units of scale) of its input
    assert ((dq.reshape_as(blk) - blk).abs() <= bs.float()[..., None] * ts + 1e-7).all()
    assert torch.equal(Q.dequantize_nvfp4(codes, bs, ts, drop_scales=True), Q.e2m1_decode(codes))
