"""Chapter parameters: one validation for every chapter, so a bad value stops at once.

Every chapter's `parameters` cell holds the same core knobs (`profile`, `device`,
`dtype`, `repeats`) plus its own sizes; `resolve` turns them into a `Run` and
raises `ParameterError` naming the parameter and the allowed values.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PROFILES = ("auto", "smoke", "full")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ALLOW_FULL_ON_CPU = "PI05PERF_ALLOW_FULL_ON_CPU"
CHAPTERS_DIR = Path(__file__).resolve().parents[2] / "chapters"


class ParameterError(ValueError):
    """A chapter parameter outside its allowed values."""


def chapter_names() -> list[str]:
    return sorted(p.stem for p in CHAPTERS_DIR.glob("*.py"))


@dataclass(frozen=True)
class Run:
    """What one execution of a chapter runs on, after `auto` is resolved."""

    chapter: str
    profile: str  # smoke | full
    device: torch.device
    dtype: torch.dtype
    repeats: int
    sizes: dict[str, Any] = field(default_factory=dict)
    requested: dict[str, Any] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.profile == "full"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def parameters(self) -> dict[str, Any]:
        """The parameters as given plus what `auto` resolved to, for provenance."""
        return {**self.requested, "resolved_profile": self.profile, "resolved_device": str(self.device),
                "resolved_dtype": str(self.dtype).removeprefix("torch."), "resolved_repeats": self.repeats}


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ParameterError(f"parameter {name}={value!r} is not allowed; allowed values: {allowed}")


def resolve(chapter: str, profile: str = "auto", device: str = "auto", dtype: str = "auto",
            repeats: int = 0, **sizes: Any) -> Run:
    """Validate a chapter's parameters. Sizes whose name ends in `_tokens`, `_steps`,
    `_views` or `_layers` must be positive integers (or lists of them)."""
    names = chapter_names()
    if chapter not in names:
        _fail("chapter", chapter, ", ".join(names))
    if profile not in PROFILES:
        _fail("profile", profile, "|".join(PROFILES))
    if device not in DEVICES:
        _fail("device", device, "|".join(DEVICES))
    if device == "cuda" and not torch.cuda.is_available():
        _fail("device", device, "cpu|auto (no CUDA GPU is visible to torch here)")
    if dtype not in DTYPES:
        _fail("dtype", dtype, "|".join(DTYPES))
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
        _fail("repeats", repeats, "an integer >= 0 (0 = the profile's default)")
    for name, value in sizes.items():
        if name.endswith(("_tokens", "_steps", "_views", "_layers", "_horizon")):
            values = value if isinstance(value, (list, tuple)) else [value]
            if not values or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in values):
                _fail(name, value, "positive integers")

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    prof = profile if profile != "auto" else ("full" if dev.type == "cuda" else "smoke")
    if prof == "full" and dev.type != "cuda" and os.environ.get(ALLOW_FULL_ON_CPU) != "1":
        # the real model sizes on a CPU: over 40 minutes at ~16 GB, and no figure the book can use
        _fail("profile", profile, f"auto|smoke on a CPU (full runs the real models here for 40+ minutes at ~16 GB "
                                  f"RSS; to insist, set {ALLOW_FULL_ON_CPU}=1)")
    dt = DTYPES[dtype] or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    reps = repeats or (50 if prof == "full" else 3)
    requested = {"profile": profile, "device": device, "dtype": dtype, "repeats": repeats, **sizes}
    return Run(chapter, prof, dev, dt, reps, dict(sizes), requested)
