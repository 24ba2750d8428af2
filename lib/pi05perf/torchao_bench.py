"""torchao on our Gemma-2B prefill: INT8 dynamic activation + INT8 weight, INT4 weight-only,
float8 dynamic activation + weight, each beside bf16, eager and (optionally) with every block
torch.compile'd, with correctness (cosine and relative error against bf16) beside each time.

torchao is optional: `available()` says whether it imports (the GPU run carries it as a wheel,
installed into a separate --target directory, see `pi05perf.peers`). Every scheme is tried on
its own; a scheme that raises or fails its check becomes a row with `error` set and no time.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from .check import cosine, random_hidden, relative_error
from .config import GEMMA_2B, TransformerConfig
from .peers import add_peers_path
from .pipeline import shared_copy
from .precision import apply_torchao, torchao_version
from .prefill_bench import build_llm, output_of
from .timing import time_fn
from .log import progress

#: chapter 9's scheme name -> `precision.apply_torchao`'s config name
SCHEMES = {"int8_dyn": "int8dyn", "int4_wo": "int4wo", "float8_dyn": "float8dyn"}
#: A quantized prefill whose output is further than this from bf16 (cosine) fails its check.
MIN_COSINE = 0.95
#: How an uncompiled torchao timing is labelled wherever it is shown.
EAGER_NOTE = ("Uncompiled (eager): each time includes the Python dispatch of torchao's quantized-tensor ops and their "
              "separate kernel launches (host overhead), so they do not measure the GPU kernels alone, and no verdict rests on them.")


def available() -> str | None:
    """torchao's version, or None where it does not import. Looks in the peer wheels' --target
    directory too (`PI05PERF_PEERS`, `peers.add_peers_path`): every chapter that uses torchao
    asks here, so all of them find the same torchao (or none)."""
    add_peers_path()
    return torchao_version()


def quantized_copy(model: nn.Module, scheme: str) -> nn.Module:
    """A deep copy of `model` with every nn.Linear quantized by torchao (`precision.apply_torchao`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {tuple(SCHEMES)}, got {scheme!r}")
    add_peers_path()
    return apply_torchao(copy.deepcopy(model), SCHEMES[scheme])


def compile_layers(model: nn.Module, mode: str = "default") -> nn.Module:
    """Regional compilation of the prefill's blocks (one graph shared by the 18 layers)."""
    for layer in model.layers:
        layer.compile(mode=mode, fullgraph=False, dynamic=False)
    return model


def prefill_rows(device: torch.device, tokens: int = 712, cfg: TransformerConfig = GEMMA_2B,
                 schemes: tuple[str, ...] = tuple(SCHEMES), compiled: bool = True, repeats: int = 20,
                 compile_mode: str = "default", log: Callable[[str], None] = progress) -> pd.DataFrame:
    """bf16 and each torchao scheme on the prefill of `tokens` tokens (fresh random embeddings;
    output = final hidden + last layer's K). Rows: scheme, mode (eager | compiled), median_ms,
    p25_ms, p75_ms, cos_vs_bf16, rel_err_vs_bf16, speed_vs_bf16_ratio (bf16 time / this time,
    same mode), error."""
    base = build_llm(cfg, device, torch.bfloat16)
    checks = [random_hidden(1, tokens, cfg.width, seed=s, device=device, dtype=torch.bfloat16) for s in (11, 12)]
    timed = random_hidden(1, tokens, cfg.width, seed=13, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        refs = [output_of(base)(x).float() for x in checks]
    rows: list[dict[str, Any]] = []
    modes = ("eager", "compiled") if compiled else ("eager",)
    for scheme in ("bf16",) + tuple(schemes):
        for mode in modes:
            row: dict[str, Any] = {"scheme": scheme, "mode": mode}
            try:
                m = base if scheme == "bf16" else quantized_copy(base, scheme)
                if mode == "compiled":
                    m = compile_layers(shared_copy(m) if scheme == "bf16" else m, compile_mode)
                fn = output_of(m)
                with torch.no_grad():
                    outs = [fn(x).float() for x in checks]
                row["cos_vs_bf16"] = min(cosine(o, r) for o, r in zip(outs, refs))
                row["rel_err_vs_bf16"] = max(relative_error(o, r) for o, r in zip(outs, refs))
                if not row["cos_vs_bf16"] >= MIN_COSINE:
                    raise AssertionError(f"cosine against bf16 {row['cos_vs_bf16']:.4f} < {MIN_COSINE}")
                with torch.no_grad():
                    t = time_fn(lambda: fn(timed), device, repeats)
                row.update(median_ms=t.median_ms, p25_ms=t.p25_ms, p75_ms=t.p75_ms, error="")
                log(f"  torchao {scheme:>10} {mode:>8}: {t.median_ms:8.3f} ms, cos {row['cos_vs_bf16']:.5f}")
            except Exception as e:  # noqa: BLE001 - recorded and shown as failed
                row.update(median_ms=float("nan"), p25_ms=float("nan"), p75_ms=float("nan"),
                           error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
                log(f"  torchao {scheme:>10} {mode:>8}: FAILED {row['error']}")
            rows.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    bf16 = df[df.scheme == "bf16"].set_index("mode").median_ms
    df["speed_vs_bf16_ratio"] = [bf16.get(mo, float("nan")) / ms for mo, ms in zip(df["mode"], df.median_ms)]
    return df


def headline_mode(df: pd.DataFrame, scheme: str) -> str | None:
    """The mode `headline_ratio` reads for `scheme`: "compiled" where both compiled runs (bf16's
    and the scheme's) succeeded, otherwise "eager"; None if the scheme has no time at all."""
    for mode in ("compiled", "eager"):
        r = df[(df.scheme == scheme) & (df["mode"] == mode)]
        if len(r) and r.speed_vs_bf16_ratio.iloc[0] == r.speed_vs_bf16_ratio.iloc[0]:
            return mode
    return None


def headline_ratio(df: pd.DataFrame, scheme: str) -> float:
    """Speed of `scheme` relative to bf16 (bf16 time / scheme time) in `headline_mode` (like for
    like either way); NaN if the scheme failed."""
    mode = headline_mode(df, scheme)
    if mode is None:
        return float("nan")
    r = df[(df.scheme == scheme) & (df["mode"] == mode)]
    return float(r.speed_vs_bf16_ratio.iloc[0])
