"""Shared fixtures of the precision tests: a realistic linear layer and fresh inputs."""
from __future__ import annotations

import torch
import torch.nn as nn

N, K, M = 256, 512, 48  # M > 16 so torch._int_mm runs natively on CPU


def _linear(seed: int = 0, n: int = N, k: int = K, bias: bool = False) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=g) * 0.02)  # realistic weight scale
        if bias:
            lin.bias.copy_(torch.randn(n, generator=g) * 0.01)
    return lin


def _fresh_input(seed: int = 1234, m: int = M, k: int = K) -> torch.Tensor:
    # not the data anything was calibrated on; a few louder tokens, as real activations have
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    return x * (1 + 3 * torch.rand(m, 1, generator=g))


def _ref(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    y = x.double() @ lin.weight.double().t()
    return y + lin.bias.double() if lin.bias is not None else y
