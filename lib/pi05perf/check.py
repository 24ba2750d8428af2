"""Correctness checks run before anything is timed: an optimisation must first reproduce the
reference output (same weights, fresh random inputs) within a dtype-dependent tolerance."""
from __future__ import annotations

import math

import torch
from torch import Tensor

# Relative L2 error allowed against an fp32 reference of the same model on the same inputs.
TOLERANCE: dict[torch.dtype, float] = {
    torch.float32: 1e-4,   # reordered fp32 sums through a deep model
    torch.bfloat16: 3e-2,  # 8-bit mantissa, 18 layers
    torch.float16: 1e-2,
}


def _flat64(t: Tensor) -> Tensor:
    return t.detach().reshape(-1).to(device="cpu", dtype=torch.float64)


def relative_error(out: Tensor, ref: Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; inf when either holds NaN/inf or shapes differ."""
    if out.shape != ref.shape:
        return math.inf
    o, r = _flat64(out), _flat64(ref)
    if not (torch.isfinite(o).all() and torch.isfinite(r).all()):
        return math.inf
    den = torch.linalg.vector_norm(r).item()
    num = torch.linalg.vector_norm(o - r).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of the flattened tensors in float64 (NaN if either is zero or non-finite)."""
    x, y = _flat64(a), _flat64(b)
    if x.shape != y.shape or not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    den = (torch.linalg.vector_norm(x) * torch.linalg.vector_norm(y)).item()
    return math.nan if den == 0.0 else (x @ y).item() / den


def assert_matches_reference(out: Tensor, ref: Tensor, dtype: torch.dtype, what: str,
                             tol: float | None = None) -> float:
    """Raise AssertionError (with the numbers) unless relative_error(out, ref) <= tolerance for
    `dtype`. Returns the relative error."""
    tol = TOLERANCE[dtype] if tol is None else tol
    if out.shape != ref.shape:
        raise AssertionError(f"{what}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    err = relative_error(out, ref)
    if not err <= tol:
        raise AssertionError(f"{what}: relative error {err:.3e} > tolerance {tol:.1e} for {dtype} "
                             f"(cosine {cosine(out, ref):.6f}, max |diff| "
                             f"{(_flat64(out) - _flat64(ref)).abs().max().item():.3e})")
    return err


# ----------------------------------------------------------------------------- fresh inputs
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_like(t: Tensor, seed: int = 0) -> Tensor:
    """N(0, 1) values with t's shape, dtype and device (drawn on CPU: reproducible anywhere)."""
    return torch.randn(t.shape, generator=_gen(seed)).to(device=t.device, dtype=t.dtype)


def random_images(batch: int, num_images: int, image_size: int, seed: int = 0,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """Images in [-1, 1] (openpi's range), [B, V, 3, S, S]."""
    x = torch.rand(batch, num_images, 3, image_size, image_size, generator=_gen(seed)) * 2 - 1
    return x.to(device=device, dtype=dtype)


def random_text_ids(batch: int, length: int, vocab_size: int, seed: int = 0,
                    device: torch.device | str = "cpu") -> Tensor:
    return torch.randint(0, vocab_size, (batch, length), generator=_gen(seed)).to(device)


def random_hidden(batch: int, tokens: int, width: int, seed: int = 0, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(batch, tokens, width, generator=_gen(seed)).to(device=device, dtype=dtype)


def random_pi05_inputs(model, batch: int = 1, num_images: int = 2, text_tokens: int = 8,
                       horizon: int | None = None, seed: int = 0,
                       device: torch.device | str | None = None) -> dict[str, Tensor]:
    """images, text_ids and noise (fp32) that fit a `pi05perf.model.Pi05`; never zeros."""
    p = next(model.parameters())
    device = p.device if device is None else device
    horizon = model.action_horizon if horizon is None else horizon
    return {
        "images": random_images(batch, num_images, model.vision.image_size, seed, device, torch.float32),
        "text_ids": random_text_ids(batch, text_tokens, model.embed_tokens.num_embeddings, seed + 1, device),
        "noise": torch.randn(batch, horizon, model.action_dim, generator=_gen(seed + 2)).to(device),
    }
