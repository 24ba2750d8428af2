"""Fixtures more than one test module needs."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from pi05perf import config, results, verdicts

#: A Gemma-2B-shaped stack small enough for CPU tests of the quantized prefill.
TINY_GEMMA = config.tiny_config(config.GEMMA_2B, width=128, depth=3, num_heads=2, head_dim=64, mlp_dim=512)
TINY_TOKENS = 24


@pytest.fixture(scope="module")
def refs():
    """`quantized_prefill.references` of the tiny stack on a CPU, in float32."""
    from pi05perf import quantized_prefill

    return quantized_prefill.references(TINY_GEMMA, TINY_TOKENS, torch.device("cpu"), torch.float32)


def headline(chapter: str, key: str, value: float, device: str = "GPU", slug: str = "gpu") -> dict:
    """One committed full-profile headline row, as `results.headlines` returns them."""
    return {"chapter": chapter, "device": device, "slug": slug, "source": "committed", "profile": "full",
            "key": key, "value": value}


@pytest.fixture
def ledger_of(monkeypatch):
    """A `verdicts.Ledger` of the device "gpu" over the given headline rows and committed results
    documents (`docs`, for their tables; none by default)."""
    def make(rows: list[dict], docs: list[dict] = ()) -> verdicts.Ledger:
        heads = pd.DataFrame(rows)
        devices = [{"slug": s, "device": d} for s, d in dict.fromkeys(zip(heads.slug, heads.device))]
        monkeypatch.setattr(results, "headlines", lambda: heads)
        monkeypatch.setattr(results, "devices", lambda: devices)
        monkeypatch.setattr(results, "load_all", lambda chapter=None: list(docs))
        return verdicts.Ledger("gpu")
    return make
