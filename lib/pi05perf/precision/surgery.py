"""Model surgery: one nn.Linear -> its QuantLinear (`quantize_linear`), a model's linears
swapped by qualified name (`quantize_model` with `MLP_ONLY`, `ATTN_ONLY`, `FULL_COVERAGE`),
the weight bytes a quantized model reads, and torchao's quantize_ as the alternative.

scheme        weights                       activations                kernel (native)
------------  ----------------------------  -------------------------  -----------------------------------
bf16          bf16                          bf16                       F.linear (cuBLAS)
fp8_tensor    E4M3, one fp32 scale          E4M3, dynamic per-tensor   torch._scaled_mm (cuBLASLt), sm_89+
fp8_channel   E4M3, fp32 scale per out-ch   E4M3, dynamic per-token    torch._scaled_mm rowwise, sm_89+
int8          int8, fp32 scale per out-ch   int8, dynamic per-token    torch._int_mm (cuBLASLt IMMA / CPU)
int4wo        uint4, group 128, bf16 s & z  none (bf16)                torch._weight_int4pack_mm (tinygemm)
nvfp4_sim     E2M1, E4M3 scale / 16 along K none (or NVFP4 with act=)  simulated only (no torch kernel)
+ "_noscale"  the same codes, every scale treated as 1 (a runtime fault, see `faults`)
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn as nn

from .base import NOSCALE, BF16Linear, QuantLinear
from .fp8 import FP8Linear
from .int4 import Int4WOLinear
from .int8 import Int8Linear
from .nvfp4 import NVFP4Linear

QuantScheme = Literal["bf16", "fp8_tensor", "fp8_channel", "int8", "int4wo", "nvfp4_sim"]
SCHEMES: tuple[str, ...] = ("bf16", "fp8_tensor", "fp8_channel", "int8", "int4wo", "nvfp4_sim")
SCALE_IGNORED_SCHEMES: tuple[str, ...] = tuple(s + NOSCALE for s in SCHEMES if s != "bf16")
ALL_SCHEMES: tuple[str, ...] = SCHEMES + SCALE_IGNORED_SCHEMES


def quantize_linear(linear: nn.Linear, scheme: str, **opts) -> QuantLinear:
    """One nn.Linear -> its QuantLinear. scheme in ALL_SCHEMES; "<scheme>_noscale" is
    scale_ignored=True. opts: backend, act, group_size, symmetric, inner_k_tiles, block,
    fast_accum (each scheme ignores those that do not apply)."""
    if scheme.endswith(NOSCALE):
        scheme, opts = scheme[: -len(NOSCALE)], {**opts, "scale_ignored": True}
    builders: dict[str, Callable[..., QuantLinear]] = {
        "bf16": BF16Linear,
        "fp8_tensor": lambda l, **o: FP8Linear(l, "tensor", **o),
        "fp8_channel": lambda l, **o: FP8Linear(l, "channel", **o),
        "int8": Int8Linear,
        "int4wo": Int4WOLinear,
        "nvfp4_sim": NVFP4Linear,
    }
    if scheme not in builders:
        raise ValueError(f"scheme must be one of {ALL_SCHEMES}, got {scheme!r}")
    with torch.no_grad():
        return builders[scheme](linear, **opts)


_ATTN_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
_MLP_NAMES = ("gate_proj", "up_proj", "down_proj", "gate_up_proj")


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def all_linears(name: str) -> bool:
    return True


def MLP_ONLY(name: str) -> bool:
    """gate/up/down projections, fused (gate_up_proj) or not: what the seed ran in TRT FP8."""
    return _leaf(name) in _MLP_NAMES


def ATTN_ONLY(name: str) -> bool:
    return _leaf(name) in _ATTN_NAMES


def FULL_COVERAGE(name: str) -> bool:
    """Every transformer projection: q/k/v/o (or qkv_proj) and gate/up/down (or gate_up_proj)."""
    return _leaf(name) in _ATTN_NAMES + _MLP_NAMES


def quantize_model(module: nn.Module, scheme: str, include: Callable[[str], bool] = all_linears,
                   **opts) -> nn.Module:
    """Swap, in place, every nn.Linear whose qualified name `include` accepts for its
    QuantLinear; returns `module`. An nn.Linear passed directly is returned quantized."""
    if isinstance(module, nn.Linear):
        return quantize_linear(module, scheme, **opts) if include("") else module
    targets = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear) and n and include(n)]
    for name, lin in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, quantize_linear(lin, scheme, **opts))
    return module


def quantized_names(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, QuantLinear)]


def model_weight_bytes(module: nn.Module) -> int:
    """Bytes of the projection weights as the kernels read them (QuantLinear codes + scales,
    nn.Linear weights at their dtype)."""
    total = 0
    for m in module.modules():
        if isinstance(m, QuantLinear):
            total += m.weight_bytes()
        elif isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
    return total


# ----------------------------------------------------------------------------- torchao
def torchao_version() -> str | None:
    try:
        import torchao
    except Exception:  # not installed, or broken against this torch
        return None
    return getattr(torchao, "__version__", "unknown")


def apply_torchao(module: nn.Module, config: Literal["int8wo", "int8dyn", "int4wo", "float8dyn"],
                  include: Callable[[str], bool] = all_linears, group_size: int = 128,
                  **config_kwargs) -> nn.Module:
    """Quantize `module` in place with torchao's quantize_ (int8 weight-only, int8 dynamic
    activation + int8 weight, int4 weight-only group `group_size`, float8 dynamic activation +
    weight with per-row scales) on the linears `include`
    accepts. int4wo asks for the tinygemm packing ("tile_packed_to_4d", torchao >= 0.13) since
    torchao's default "plain" int4 needs fbgemm-gpu-genai (the seed's "missing
    fbgemm-gpu-genai"). Raises ImportError where torchao is absent."""
    from torchao.quantization import quantize_  # noqa: F401 - the ImportError is the guard
    import torchao.quantization as tq

    def make():
        if config == "int8wo":
            if hasattr(tq, "Int8WeightOnlyConfig"):
                return tq.Int8WeightOnlyConfig(**config_kwargs)
            return tq.int8_weight_only(**config_kwargs)
        if config == "int8dyn":
            if hasattr(tq, "Int8DynamicActivationInt8WeightConfig"):
                return tq.Int8DynamicActivationInt8WeightConfig(**config_kwargs)
            return tq.int8_dynamic_activation_int8_weight(**config_kwargs)
        if config == "int4wo":
            if hasattr(tq, "Int4WeightOnlyConfig"):
                kw = {"group_size": group_size, **config_kwargs}
                try:
                    return tq.Int4WeightOnlyConfig(**{"int4_packing_format": "tile_packed_to_4d", **kw})
                except TypeError:
                    return tq.Int4WeightOnlyConfig(**kw)
            return tq.int4_weight_only(group_size=group_size, **config_kwargs)
        if config == "float8dyn":
            return tq.Float8DynamicActivationFloat8WeightConfig(granularity=tq.PerRow(), **config_kwargs)
        raise ValueError(f"config must be int8wo, int8dyn, int4wo or float8dyn, got {config!r}")

    tq.quantize_(module, make(), filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and include(fqn))
    return module
