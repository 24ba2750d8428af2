"""pi05perf.precision.base and the formats' layers on CPU: accuracy of every scheme against an fp32
reference on fresh inputs, native kernels against their simulation, dtype casts, compile."""
from __future__ import annotations

import pytest
import torch

from pi05perf import precision as Q
from _precision_helpers import N, K, M, _linear, _fresh_input, _ref


# --------------------------------------------------------------------------- accuracy
CASES = [
    # scheme, opts, min cos, max rel_err
    ("bf16", {}, 0.9999, 0.01),
    ("fp8_tensor", {}, 0.999, 0.05),
    ("fp8_channel", {}, 0.999, 0.05),
    ("int8", {}, 0.999, 0.02),
    ("int8", {"act": "tensor"}, 0.999, 0.03),
    ("int4wo", {}, 0.99, 0.15),
    ("int4wo", {"symmetric": True}, 0.99, 0.15),
    ("nvfp4_sim", {}, 0.98, 0.2),
    ("nvfp4_sim", {"act": "nvfp4"}, 0.98, 0.2),
]


@pytest.mark.parametrize("scheme,opts,min_cos,max_rel", CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES])
@pytest.mark.parametrize("bias", [False, True])
def test_scheme_accuracy(scheme, opts, min_cos, max_rel, bias):
    lin = _linear(bias=bias)
    ql = Q.quantize_linear(lin, scheme, **opts)
    x = _fresh_input()
    y = ql(x)
    assert y.shape == (M, N) and y.dtype == x.dtype
    acc = Q.accuracy(y, _ref(lin, x))
    assert acc["cos"] >= min_cos, acc
    assert acc["rel_err"] <= max_rel, acc
    # leading dims are kept
    assert ql(x.reshape(4, M // 4, K)).shape == (4, M // 4, N)


@pytest.mark.parametrize("scheme", ["int8", "int4wo", "fp8_tensor", "fp8_channel",
                                    "int8_noscale", "int4wo_noscale", "fp8_channel_noscale"])
def test_native_kernel_matches_simulation(scheme):
    """Where CPU torch has the kernel (_int_mm, _weight_int4pack_mm_for_cpu, _scaled_mm), it
    agrees with the simulation: this checks the scale / zero / packing / layout conventions
    the CUDA path shares."""
    lin, x = _linear(3), _fresh_input(7)
    native = Q.quantize_linear(lin, scheme, backend="native")
    sim = Q.quantize_linear(lin, scheme, backend="simulate")
    try:
        y = native(x)
    except RuntimeError as e:  # e.g. a torch without the CPU kernel
        pytest.skip(f"no native CPU kernel here: {e}")
    assert native.backend_used == "native" and sim.backend_used is None
    ys = sim(x)
    assert sim.backend_used == "simulate"
    tol = 1e-6 if scheme.startswith("int8") else 1e-2  # int8 is exact up to fp32 rescale
    assert Q.accuracy(y, ys)["rel_err"] < tol


def test_int_mm_small_m_is_padded():
    lin, x = _linear(), _fresh_input(m=5)
    ql = Q.quantize_linear(lin, "int8")
    assert Q.accuracy(ql(x), _ref(lin, x))["cos"] > 0.999


def test_fp8_supported_false_on_cpu():
    assert Q.fp8_supported("cpu") is False
    assert Q.fp8_supported(torch.device("cpu")) is False


def test_weight_bytes():
    lin = _linear()
    b = {s: Q.quantize_linear(lin, s).weight_bytes() for s in Q.SCHEMES}
    assert b["bf16"] == 2 * N * K
    assert b["fp8_tensor"] == N * K + 4 and b["fp8_channel"] == N * K + 4 * N
    assert b["int4wo"] == N * K // 2 + (K // 128) * N * 2 * 2
    assert b["nvfp4_sim"] == N * K // 2 + N * K // 16 + 4


def test_cast_after_quantization_keeps_codes():
    lin, x = _linear(), _fresh_input()
    for scheme in ("fp8_channel", "int8", "int4wo", "nvfp4_sim"):
        ql = Q.quantize_linear(lin, scheme)
        before = {k: v.dtype for k, v in ql.named_buffers()}
        y0 = ql(x)
        ql = ql.to(torch.bfloat16)
        assert {k: v.dtype for k, v in ql.named_buffers()} == before
        assert Q.accuracy(ql(x.bfloat16()), y0)["cos"] > 0.999


def test_forward_under_compile_uses_the_resolved_kernel():
    """torch.compile traces `_traced`: native for backend="native" or an "auto" layer that already ran
    natively, the simulation otherwise -- never a try/except or a device query inside the graph."""
    lin, x = _linear(), _fresh_input()
    auto = Q.quantize_linear(lin, "int8")
    torch._dynamo.reset()
    compiled_before = torch.compile(auto, backend="eager", fullgraph=True)
    y_sim = compiled_before(x)  # not run eagerly yet: compiles the simulation
    assert auto.backend_used is None
    assert Q.accuracy(y_sim, Q.quantize_linear(lin, "int8", backend="simulate")(x))["rel_err"] < 1e-6
    auto(x)
    assert auto.backend_used == "native"
    torch._dynamo.reset()
    y_native = torch.compile(auto, backend="eager", fullgraph=True)(x)
    assert Q.accuracy(y_native, auto(x))["rel_err"] == 0.0


def test_static_fp8_scale_is_fitted_on_the_calibration_input_and_saturates_beyond_it():
    from pi05perf.precision import FP8_MAX, FP8Linear, calibrate_static

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
    ref = model.float()
    x_cal, x_new = torch.randn(8, 64), torch.randn(8, 64)
    with torch.no_grad():
        want_first_amax = x_cal.abs().amax()
        want_new = ref(x_new)
    q = torch.nn.Sequential(FP8Linear(model[0], act="static", backend="simulate"), torch.nn.GELU(),
                            FP8Linear(model[2], act="static", backend="simulate"))
    with pytest.raises(RuntimeError, match="calibrate_static"):
        q(x_new)
    assert calibrate_static(q, lambda: q(x_cal)) == 2
    torch.testing.assert_close(q[0].act_scale, (want_first_amax / FP8_MAX).reshape(1))
    with torch.no_grad():
        got = q(x_new)  # an input the calibration never saw
        cos = torch.nn.functional.cosine_similarity(got.flatten(), want_new.flatten(), dim=0)
        assert cos > 0.99
        # ten times the calibrated range saturates: the static layer clips, a dynamic one would not
        big = q[0](10 * x_cal)
        dyn = FP8Linear(model[0], act="tensor", backend="simulate")(10 * x_cal)
        full = model[0](10 * x_cal)
        assert (big - full).norm() > 10 * (dyn - full).norm()


def test_static_fp8_scale_lives_on_the_weights_device():
    # on a GPU a CPU scale broke torch.compile's device propagation (an eager division hides it)
    from pi05perf.precision import FP8Linear

    layer = FP8Linear(torch.nn.Linear(32, 16, device="meta"), act="static", backend="simulate")
    assert layer.act_scale.device.type == "meta" == layer.weight_scale.device.type
