"""Published pi0.5 latencies (quoted, `reference.quoted`) set beside this device's measured ones:
the seed's Thor breakdown, TurboPi, NVIDIA's Jetson AI Lab, FlashRT and Dexmal. Different
devices, software and numerics: tables for orientation, not a like-for-like race.
"""
from __future__ import annotations

import re
from typing import Sequence

import pandas as pd
import torch

from .pipeline import Shape
from .reference import quoted


def recorded_config(key: str, platform: str) -> dict | None:
    """The configuration the quoted figure `key` on `platform` was published (or assumed) for: its
    image slots, prompt tokens, horizon and the source's note, from peers.csv (the latency row of that
    platform whose `source` names the anchor key: "(anchors.csv <key>)") or else data/reference/thor_timings.csv (key, or the same engine's `_mean_ms`
    row; horizon as chapter 8 models it). None where neither records it."""
    from .kernel_model import Config
    from .peers import published_latencies
    from .thor_fit import THOR_ANCHORS

    lat = published_latencies()
    hit = lat[(lat.platform == platform) & (lat.source.str.extract(r"anchors\.csv (\w+)", expand=False) == key)]
    if not hit.empty:
        r = hit.iloc[0]
        return {"image_slots": int(r.image_slots), "text_tokens": int(r.text_tokens), "horizon": int(r.horizon),
                "note": r.configuration}
    anchors = {a.key: a for a in THOR_ANCHORS}
    a = anchors.get(key) or anchors.get(key.removesuffix("_ms") + "_mean_ms")
    return None if a is None else {"image_slots": a.image_slots, "text_tokens": a.text_tokens,
                                   "horizon": Config().horizon, "note": a.note}


def _assumed(note: str) -> bool:
    return bool(re.search(r"assumed|not stated", note, re.IGNORECASE))


def recorded_words(key: str, platform: str) -> str:
    """`recorded_config` in a table cell: "3×256 + 208 tokens, h10", marked "(partly assumed)" where
    its note says part of it (or of its sibling figures') is assumed or not stated (`config_notes`
    says which); a dash where nothing records it."""
    c = recorded_config(key, platform)
    if c is None:
        return "–"
    return (f"{c['image_slots']}×256 + {c['text_tokens']} tokens, h{c['horizon']}"
            + (" (partly assumed)" if _assumed(c["note"]) else ""))


def config_notes(anchors: pd.DataFrame) -> list[str]:
    """Footnotes for the rows of `anchors_table` whose recorded configuration is partly assumed:
    what the source states and what is assumed (`peers.config_clauses` of its note)."""
    from .peers import config_clauses

    out = []
    for r in anchors[anchors.kind.str.endswith("(quoted)")].itertuples():
        c = recorded_config(r.key, r.platform)
        if c is not None and _assumed(c["note"]):
            out.append(f"{r.source}, {r.configuration}: {config_clauses(c['note'])}.")
    return list(dict.fromkeys(out))


def _quoted_row(source: str, configuration: str, total_key: str, stage_keys: tuple[str, str, str] | None = None,
                platform: str = "Jetson AGX Thor") -> dict:
    """One quoted row of `anchors_table`: the total (and the vision, prefill, denoise stages where
    the source gives them) read from the reference data, with the configuration it is recorded at."""
    stages = dict(zip(("vision_ms", "prefill_ms", "denoise_ms"), map(quoted, stage_keys))) if stage_keys else {}
    kind = "Thor (quoted)" if platform == "Jetson AGX Thor" else f"{platform} (quoted)"
    return {"source": source, "kind": kind, "platform": platform, "configuration": configuration, **stages,
            "total_ms": quoted(total_key), "key": total_key, "recorded_as": recorded_words(total_key, platform)}


def anchors_table(best_variant: str, best_ms: float, dev_name: str, dtype: torch.dtype, shape: Shape,
                  stage_best: pd.Series) -> pd.DataFrame:
    """One row per quoted configuration (stages where the source gives them), then this device's
    best call (`best_variant`, `best_ms`) with each stage's fastest path (`stage_best`)."""
    return pd.DataFrame([
        _quoted_row("seed (baseline, LIBERO run)", "bf16, 2 views, 10 steps", "pipeline_baseline_total_ms",
                    ("pipeline_baseline_vision_ms", "pipeline_baseline_kv_ms", "pipeline_baseline_denoise_ms")),
        _quoted_row("TurboPi CHANGELOG", "Torch-TRT FP8, 10 steps", "turbopi_trt_fp8_10step_total_ms",
                    ("turbopi_trt_fp8_10step_vision_ms", "turbopi_trt_fp8_10step_prefix_ms",
                     "turbopi_trt_fp8_10step_denoise_ms")),
        _quoted_row("NVIDIA Jetson AI Lab", "PyTorch bf16 + torch.compile", "nvidia_thor_pytorch_bf16_compile_ms"),
        _quoted_row("NVIDIA Jetson AI Lab", "TensorRT FP8", "nvidia_thor_trt_fp8_ms"),
        _quoted_row("NVIDIA Jetson AI Lab", "TensorRT FP8 + NVFP4", "nvidia_thor_trt_fp8_nvfp4_ms"),
        _quoted_row("FlashRT", "FP8, 2 views, 10 steps", "flashrt_fp8_2view_ms",
                    ("flashrt_siglip_ms", "flashrt_prefix_ms", "flashrt_denoise_ms")),
        _quoted_row("Dexmal realtime-vla", "Triton kernels, 2 views, 10 steps", "dexmal_rtx4090_2view_ms",
                    platform="RTX 4090"),
        {"source": f"this chapter: total {best_variant}, stages their fastest path", "kind": "this device (measured)",
         "platform": dev_name,
         "configuration": f"{dtype}".removeprefix("torch.") + f", {shape.views} views, {shape.steps} steps",
         "vision_ms": stage_best.get("vision"), "prefill_ms": stage_best.get("prefill"),
         "denoise_ms": stage_best.get("denoise"), "total_ms": best_ms, "key": None,
         "recorded_as": f"{shape.views}×256 + {shape.text_tokens} tokens, h{shape.horizon}"},
    ])


def by_views_table(ms_by_shape: pd.Series, camera_views: Sequence[int], steps: int, dev_name: str,
                   path: str = "best path") -> pd.DataFrame:
    """Latency against camera views at `steps` steps: FlashRT's and Dexmal's quoted figures for 1-3
    views, and this device's call with one path (`path`; `ms_by_shape`: its ms indexed by (views,
    steps)), so that the measured line is one path across views."""
    return pd.DataFrame(
        [{"views": v, "series": "Thor (quoted)", "source": "FlashRT FP8", "ms": quoted(f"flashrt_fp8_{v}view_ms")} for v in (1, 2, 3)]
        + [{"views": v, "series": "RTX 4090 (quoted)", "source": "Dexmal", "ms": quoted(f"dexmal_rtx4090_{v}view_ms")} for v in (1, 2, 3)]
        + [{"views": v, "series": "this device (measured)", "source": f"{path}, {dev_name}",
            "ms": ms_by_shape.get((v, steps))} for v in camera_views])


STAGES = ("vision_ms", "prefill_ms", "denoise_ms")


def breakdown_notes(anchors: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """Footnotes for the quoted rows of `anchors_table` whose stages add up to more than their total
    (by more than `tolerance`): stages of one call cannot exceed it (a sum below the total is the
    time between stages). FlashRT's note adds what its source lists beside the stages (they are
    profiler times; graph pipelining and a final graph autotune save time, host work adds some)."""
    notes = []
    quoted_rows = anchors[anchors.kind.str.endswith("(quoted)")].dropna(subset=list(STAGES) + ["total_ms"])
    for r in quoted_rows.itertuples():
        total = sum(getattr(r, c) for c in STAGES)
        if total <= r.total_ms * (1 + tolerance):
            continue
        note = (f"{r.source}: its stages add up to {total:.1f} ms, {total - r.total_ms:.1f} ms "
                f"({100 * (total / r.total_ms - 1):.0f}%) more than its {r.total_ms:g} ms total, so they are not a "
                "breakdown of that call as quoted.")
        if r.source == "FlashRT":
            pipelining, host, autotune = (quoted(f"flashrt_breakdown_{k}_ms")
                                          for k in ("graph_pipelining_saving", "host", "graph_autotune_saving"))
            adjusted = total - pipelining + host - autotune
            note += (f" Its source gives the stages as profiler (nsys) times and lists beside them graph pipelining"
                     f" (−{pipelining:g} ms), host work (+{host:g} ms) and a final CUDA-graph autotune (−{autotune:g} ms):"
                     f" with those the stages come to {adjusted:.1f} ms against the {r.total_ms:g} ms total. Its SigLIP"
                     f" ({quoted('flashrt_siglip_ms'):g} ms against its baseline engine's"
                     f" {quoted('flashrt_baseline_siglip_ms'):g} ms) is as published. Chapter 8 sets this beside the"
                     " other anchors.")
        notes.append(note)
    return notes
