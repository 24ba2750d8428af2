"""FP8 paths in words, and the FP8 whole-call figures of chapters 7 and 8 set beside chapter 4's:
what each path puts in FP8, how its activation scales are computed, whether it is compiled and
graphed, and how it compares with its own bf16 twin. Chapter 4 reconciles the three chapters here.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Callable

import pandas as pd
import torch.nn as nn

from . import precision as Q
from .quantized_prefill import parse_variant

SCOPE_WORDS: dict[str, str] = {
    "eager": "uncompiled (eager PyTorch)",
    "layer": "each layer compiled (one compiled graph reused by every layer), launched from Python",
    "model": "the whole prefill compiled, launched from Python",
    "graph": "the whole prefill compiled and replayed as one CUDA graph",
    "layer_graph": "each layer compiled (one compiled graph reused by every layer) and the whole stack replayed as one CUDA graph",
}
COVERAGE_WORDS: dict[str, str] = {"mlp": "the MLP projections", "attn": "the QKV and O projections",
                                  "full": "every projection (QKV, O, MLP)"}
ACT_WORDS: dict[str, str] = {"tensor": "one dynamic scale per tensor (an amax over the activation at every call)",
                             "token": "one dynamic scale per token (an amax over each row at every call)",
                             "static": "one static scale, calibrated once"}


def fp8_path_words(spec: str, scope: str | None = None) -> str:
    """An FP8 variant spec (`parse_variant`) in words, read from the layer it builds: weight
    scale granularity and activation scales (`precision.FP8Linear`), coverage, fast
    accumulation, and how it runs (`SCOPE_WORDS`). `scope` overrides the spec's own."""
    v = parse_variant(spec, scope or "eager")
    if scope is not None:
        v = replace(v, scope=scope)
    if v.family != "fp8":
        raise ValueError(f"{spec!r} is not an FP8 variant")
    layer = Q.FP8Linear(nn.Linear(16, 16, bias=False), v.scheme.removeprefix("fp8_").removesuffix(Q.NOSCALE))
    weights = "one scale per tensor" if layer.granularity == "tensor" else "one scale per output channel"
    return (f"`{v.name}`: E4M3 weights with {weights}, activations in E4M3 with {ACT_WORDS[layer.act]}, on "
            f"{COVERAGE_WORDS[v.coverage]}{', fast accumulation' if v.fast_accum else ''}; {SCOPE_WORDS[v.scope]}")


def fp8_tried(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """What this chapter's timed FP8 variants (`quantized_prefill_variants` rows) tried, and
    what they did not, each as short phrases, from the rows themselves."""
    f = rows[rows.scheme.str.startswith("fp8") & rows.median_ms.notna()]
    graphed = sorted(set(f.scope) & {"graph", "layer_graph"})
    tried = ["fused QKV and gate-up projections (one activation quantization each)"] if not f.empty else []
    if f.scope.ne("eager").any():
        tried.append("the dynamic activation quantization compiled with its layer by torch.compile")
    if graphed:
        tried.append("the whole prefill replayed as one CUDA graph (" + ", ".join(f"`{s}`" for s in graphed) + ")")
    if {"fp8_tensor", "fp8_channel"} <= set(f.scheme):
        tried.append("per-tensor scales (cuBLASLt tensorwise) against per-channel / per-token scales (rowwise)")
    if f.fast_accum.any():
        tried.append("fast accumulation")
    untried = ["attention, norms and RoPE in FP8 or fused further (they stay bf16)",
               "quantizing gelu(gate)·up in the gate-up GEMM's epilogue instead of writing it in bf16 first",
               "static activation scales calibrated once (chapter 7 times them through the whole call)"]
    if not graphed:
        untried.append("one CUDA graph for the whole prefill instead of compiled regions launched from Python")
    return tried, untried


# ----------------------------------------------------------------------------- chapter 7's FP8 whole call
_CH07_HEADLINE = re.compile(r"pipeline_fp8_(\d+)view_steps(\d+)_ms")


def pipeline_fp8_words(variant: str) -> dict[str, str]:
    """What a `pipeline_bench` FP8 variant is, read from its `VARIANTS` entry: which stacks are
    FP8, the activation scales, compiled or not, what is graphed, and its bf16 twin."""
    from .pipeline_bench import BF16_TWIN, VARIANTS

    kind, graph = VARIANTS[variant]
    return {"fp8_on": "the LLM only" if kind == "fp8" else "SigLIP, the LLM and the expert",
            "act_scales": "static (calibrated once)" if "static" in kind else "dynamic (per call)",
            "compiled": "compiled" if "compiled" in kind else "uncompiled",
            "graph": {"all": "one CUDA graph", "denoise": "denoise graphed", None: "no graph"}[graph],
            "bf16_twin": BF16_TWIN.get(variant, "")}


def _ch07_fp8(doc: dict) -> dict | None:
    """`committed_fp8_whole_call` for one chapter 7 results document."""
    from .pipeline_bench import BF16_TWIN

    head = doc.get("headline", {})
    keys = [(k, _CH07_HEADLINE.fullmatch(k)) for k in head]
    keys = [(k, int(m[1]), int(m[2])) for k, m in keys if m and head[k] is not None]
    if not keys:
        return None
    key, views, steps = keys[0]
    params, tables = doc["provenance"].get("parameters") or {}, doc.get("tables") or {}
    rows = pd.DataFrame(doc.get("rows") or [])
    lat = rows[rows.table == "latency"] if "table" in rows else rows
    bf16: dict[str, float] = {}
    if {"variant", "stage", "views", "steps", "text_tokens", "horizon", "median_ms"} <= set(lat):
        # the bf16 whole calls at the headline shape (chapter 7's own text tokens and action horizon)
        lat = lat[(lat.stage == "whole") & (lat.views == views) & (lat.steps == steps)
                  & (lat.text_tokens == params.get("text_tokens", lat.text_tokens))
                  & (lat.horizon == params.get("action_horizon", lat.horizon))]
        bf16 = lat.groupby("variant").median_ms.first().to_dict()
    fp8 = pd.DataFrame(tables.get("fp8") or tables.get("fp8_variants") or [])
    if not fp8.empty:
        if "bf16_twin_ms" not in fp8:
            fp8["bf16_twin_ms"] = fp8.variant.map(BF16_TWIN).map(bf16)
        fp8 = fp8.assign(**{c: fp8.variant.map(lambda v, c=c: pipeline_fp8_words(v)[c])
                            for c in ("fp8_on", "act_scales", "compiled", "graph", "bf16_twin")})
        fp8["time_vs_bf16_twin_ratio"] = fp8.median_ms / fp8.bf16_twin_ms
    kinds = pd.DataFrame(tables.get("fp8_kernels_by_kind") or [])
    best = head.get(f"pipeline_{views}view_steps{steps}_best_ms")
    return {"slug": doc["slug"], "device": doc["provenance"].get("device"),
            "commit": (doc["provenance"].get("git_commit") or "")[:7], "views": views, "steps": steps,
            "fastest_fp8_ms": float(head[key]), "bf16_best_ms": float(best) if best is not None else None,
            "horizon": params.get("action_horizon"), "fp8_variants_run": list(params.get("fp8_variants") or []),
            "variants": fp8,
            "elementwise_ms": _kind_times(kinds, "elementwise/fused"), "gemm_ms": _kind_times(kinds, "GEMM")}


def _kind_times(kinds: pd.DataFrame, kind: str) -> dict[str, tuple[float, float]]:
    """{FP8 variant: (its bf16 twin's time, its own time)} in ms for one kernel `kind` of chapter 7's
    `fp8_kernels_by_kind` table; empty where the table or the kind is missing."""
    from .pipeline_bench import BF16_TWIN

    if kinds.empty or "kind" not in kinds or not (kinds.kind == kind).any():
        return {}
    row = kinds[kinds.kind == kind].iloc[0]
    out = {}
    for col in kinds.columns:
        m = re.fullmatch(r"FP8 (\S+) time_ms", col)
        twin = f"bf16 {BF16_TWIN.get(m[1], '')} time_ms" if m else None
        if m and twin in kinds:
            out[m[1]] = (float(row[twin]), float(row[col]))
    return out


def committed_fp8_whole_call(slug: str | None = None) -> dict | None:
    """Chapter 7's FP8 whole call from committed results (this device's `slug` if it has one,
    else the newest committed run): the fastest FP8 call and the best bf16 call at its headline
    shape; per FP8 variant (when chapter 7 saved its `fp8` table) its time, its bf16 twin's
    and what it is (`pipeline_fp8_words`); the GEMM and the elementwise kernel time of each FP8
    variant and its twin (when it saved `fp8_kernels_by_kind`). None when no committed run has an FP8 figure."""
    return _newest_committed("ch07_pipeline", slug, _ch07_fp8)


def _newest_committed(chapter: str, slug: str | None, read: Callable[[dict], dict | None]) -> dict | None:
    """`read` of the first committed results document of `chapter` it finds something in: this
    device's `slug` first, then the newest run of any device; None where it finds nothing."""
    from .results import committed_docs

    docs = sorted(committed_docs(chapter).values(), key=lambda d: (d["slug"] == slug, d["provenance"].get("date") or ""))
    for doc in reversed(docs):
        got = read(doc)
        if got is not None:
            return got
    return None


# ----------------------------------------------------------------------------- chapter 8's FP8 whole call
def committed_fp8_pipeline(slug: str | None = None) -> dict | None:
    """Chapter 8's FP8 result from committed results (this device's `slug` if it has one,
    else the newest committed GPU run): the `fp8_graph` prefill and whole call and the bf16
    `graph` ones at the same shape (views, text, steps, layers, tokens per image), with the
    device and commit they ran at. None when no committed chapter 8 has both."""
    return _newest_committed("ch08_roads_to_20hz", slug, _ch08_fp8)


def _ch08_fp8(doc: dict) -> dict | None:
    """`committed_fp8_pipeline` for one chapter 8 results document."""
    shape = ["views", "text_tokens", "steps", "layers", "tokens_per_image"]
    # older runs saved the timings as rows, newer ones as named tables
    tables = doc.get("tables") or {}
    r = pd.DataFrame((doc.get("rows") or []) + tables.get("predictions", []) + tables.get("calibration", []))
    if r.empty or not {"variant", "stage", "median_ms", *shape} <= set(r) or "fp8_graph" not in set(r.variant):
        return None
    f8 = r[r.variant == "fp8_graph"]
    same = (r[shape] == f8[shape].iloc[0]).all(axis=1) | (r[shape].isna() & f8[shape].iloc[0].isna()).all(axis=1)
    ref = r[same]
    pick = lambda v, st: ref[(ref.variant == v) & (ref.stage == st)].median_ms  # noqa: E731
    vals = {f"{v}_{st}_ms": float(pick(v, st).iloc[0]) for v in ("graph", "fp8_graph")
            for st in ("prefill", "whole") if len(pick(v, st))}
    if len(vals) != 4:
        return None
    pt = f8.prefix_tokens.iloc[0] if "prefix_tokens" in f8 else None
    return {"slug": doc["slug"], "device": doc["provenance"].get("device"),
            "prefix_tokens": int(pt) if pt is not None and pt == pt else None,
            "commit": (doc["provenance"].get("git_commit") or "")[:7],
            "fp8_whole_speedup_ratio": vals["graph_whole_ms"] / vals["fp8_graph_whole_ms"], **vals}


# ----------------------------------------------------------------------------- FP8 across chapters 4, 7, 8
def _pace(ratio: float) -> str:
    """A time ratio (FP8 over bf16) in words; within 2% is 'about as fast'."""
    return "about as fast" if abs(ratio - 1) <= 0.02 else "faster" if ratio < 1 else "slower"


def _measured_on(device: str, commit: str | None) -> str:
    return f"{device} ({commit})" if commit else f"{device} (commit unknown)"


SCALES_COMPILED = "act scales · compiled"  # one column: activation scales, and whether the path is compiled


def fp8_paths_table(c7: dict | None, c8: dict | None, c4: dict | None) -> pd.DataFrame:
    """One row per FP8 measurement, each beside the bf16 path built the same way: this chapter's
    prefill (`c4`: variant, scope, fp8_ms, bf16_ms, device, and commit: by default the commit this
    tree runs at), chapter 8's `fp8_graph` (`committed_fp8_pipeline`) and chapter 7's whole calls
    (`committed_fp8_whole_call`). Eight columns: the stage measured is part of the path, whether it
    is compiled part of its activation scales' column."""
    from .results import git_commit

    rows = []
    both = lambda scales, compiled: f"{scales} · {compiled}" if scales and compiled else (scales or compiled)  # noqa: E731
    if c4 is not None:
        v = parse_variant(c4["variant"], c4["scope"])
        commit = c4.get("commit") or (git_commit() or "")[:7]
        rows.append({"path": f"chapter 4: `{v.name}`, prefill", "measured_on": _measured_on(c4["device"], commit),
                     "fp8_on": "the LLM (prefill only)",
                     SCALES_COMPILED: both("dynamic (per call)", "uncompiled" if v.scope == "eager" else "compiled"),
                     "fp8_ms": c4["fp8_ms"], "bf16_ms": c4["bf16_ms"], "bf16_path": "base"})
    if c8 is not None:
        w = pipeline_fp8_words("fp8_graph")
        for st in ("prefill", "whole"):
            rows.append({"path": f"chapter 8: `fp8_graph`, {'whole call' if st == 'whole' else st}",
                         "measured_on": _measured_on(c8["device"], c8.get("commit")), "fp8_on": w["fp8_on"],
                         SCALES_COMPILED: both(w["act_scales"], w["compiled"]),
                         "fp8_ms": c8[f"fp8_graph_{st}_ms"], "bf16_ms": c8[f"graph_{st}_ms"], "bf16_path": w["bf16_twin"]})
    if c7 is not None:
        on = _measured_on(c7["device"], c7.get("commit"))
        for r in c7["variants"].itertuples():
            rows.append({"path": f"chapter 7: `{r.variant}`, whole call", "measured_on": on, "fp8_on": r.fp8_on,
                         SCALES_COMPILED: both(r.act_scales, r.compiled), "fp8_ms": r.median_ms,
                         "bf16_ms": r.bf16_twin_ms, "bf16_path": r.bf16_twin})
        if c7["variants"].empty:
            rows.append({"path": "chapter 7: its fastest FP8 variant, whole call", "measured_on": on,
                         "fp8_ms": c7["fastest_fp8_ms"], "bf16_ms": c7["bf16_best_ms"], "bf16_path": "its best bf16 path"})
    df = pd.DataFrame(rows, columns=["path", "measured_on", "fp8_on", SCALES_COMPILED, "fp8_ms", "bf16_path", "bf16_ms"])
    return df.assign(fp8_vs_bf16_time_ratio=df.fp8_ms / df.bf16_ms)


def fp8_paths_text(c7: dict | None, c8: dict | None, c4: dict | None, mb: pd.DataFrame | None = None) -> str:
    """The FP8 results of chapters 4, 7 and 8 reconciled, from their figures (as `fp8_paths_table`);
    `mb` is `memory_bound_fp8`'s table (this chapter's dynamic-scale FP8 at few tokens). Every
    missing figure is said to be not measured; the conclusion is drawn only where the figures hold it."""
    parts = []
    if c4 is not None:
        r = c4["fp8_ms"] / c4["bf16_ms"]
        parts.append(f"This chapter's fastest full-coverage FP8 prefill ({fp8_path_words(c4['variant'], c4['scope'])}) "
                     f"takes {r:.2f}× the time of the bf16 prefill built and run the same way ({_pace(r)}).")
    else:
        parts.append("This chapter's FP8 prefill: not timed here.")
    if c8 is not None:
        rp, rw = c8["fp8_graph_prefill_ms"] / c8["graph_prefill_ms"], c8["fp8_graph_whole_ms"] / c8["graph_whole_ms"]
        parts.append(f"Chapter 8's `fp8_graph` ({c8['device']}) puts FP8 in the LLM only, with per-tensor dynamic "
                     f"activation scales, *uncompiled*, in one CUDA graph: its {c8['prefix_tokens'] or '?'}-token prefill "
                     f"takes {rp:.2f}× the time of its bf16 twin `graph` and the whole call {rw:.2f}× "
                     f"(a speed-up of {c8['fp8_whole_speedup_ratio']:.3f}×: {_pace(rw)}). Uncompiled, each projection's "
                     "dynamic scale is eager PyTorch: a cast, an abs, an amax reduction, a division, a clamp and a cast to "
                     "E4M3, each a kernel that reads and writes the activation; the graph removes their launch cost, not "
                     "their memory passes.")
    else:
        parts.append("Chapter 8's FP8 whole call: not measured (no committed chapter 8 run with an FP8 row).")
    if c7 is None:
        parts.append("Chapter 7's FP8 whole call: not measured (no committed chapter 7 run with an FP8 figure).")
        return "\n\n".join(parts)
    v = c7["variants"]
    where = f"{c7['device']}, {c7['views']} views, {c7['steps']} steps"
    if v.empty:
        r = c7["fastest_fp8_ms"] / c7["bf16_best_ms"] if c7["bf16_best_ms"] else math.nan
        run = ", ".join(f"`{x}`" for x in c7["fp8_variants_run"]) or "not recorded"
        parts.append(f"Chapter 7's fastest FP8 whole call ({where}) takes {c7['fastest_fp8_ms']:.2f} ms against "
                     f"{_fmt_ms(c7['bf16_best_ms'])} for its best bf16 call ({r:.2f}×, {_pace(r)}). Its committed results keep "
                     f"only that fastest figure: which of its FP8 variants ({run}) it was, and the others' times, are not "
                     "in them, so static against dynamic activation scales is not compared here.")
        return "\n\n".join(parts)
    each = [f"`{r.variant}` ({r.fp8_on} in FP8, {r.act_scales.split(' (')[0]} activation scales, {r.compiled}) {r.median_ms:.2f} ms "
            f"against {r.bf16_twin_ms:.2f} ms for its bf16 twin `{r.bf16_twin}` ({r.time_vs_bf16_twin_ratio:.2f}×, "
            f"{_pace(r.time_vs_bf16_twin_ratio)})" for r in v.itertuples()]
    parts.append(f"Chapter 7 ({where}) times FP8 through the whole call, each variant against its bf16 twin (the same "
                 "model, compilation, graph and attention in bf16): " + "; ".join(each) + ".")
    s, d = _compiled_pair(v)
    if s is None or d is None:
        parts.append("Chapter 7 has no compiled static- and dynamic-scale pair here, so what the scales cost is not isolated.")
        return "\n\n".join(parts)
    from .pipeline_bench import SPLIT_KV_VARIANTS

    split = [x.variant for x in (s, d) if x.variant in SPLIT_KV_VARIANTS]
    kv = (f"; besides the scales they differ in the expert's attention (split-KV in `{split[0]}`), which each twin "
          "shares" if len(split) == 1 else "")
    kinds = "; ".join(f"`{k}`: {_kinds_words(c7, k)}" for k in v.variant if k in c7["elementwise_ms"])
    kinds = f" Chapter 7's kernel profile times the kernel kinds apart, each against its twin: {kinds}." if kinds else ""
    if s.time_vs_bf16_twin_ratio < 1 <= d.time_vs_bf16_twin_ratio:
        sp = dynamic_scale_split(c7)
        why = (f" So in that call the FP8 GEMMs are faster than bf16's (`{d.variant}` saves {sp['gemm'][0] - sp['gemm'][1]:.2f} ms "
               "of GEMM time), and the per-call scale computation with the elementwise work around it "
               f"(+{sp['elementwise'][1] - sp['elementwise'][0]:.2f} ms) is what makes dynamic-scale FP8 slower."
               if sp is not None and scale_split_explains(sp) else
               " The per-call scale computation is the likely cause, but the kernel times above do not separate it "
               "from the GEMMs, so that is not established here.")
        text = (f"**What the evidence shows:** with the same three stacks in FP8, compiled and in one CUDA graph, each "
                f"against its own bf16 twin, FP8 with dynamic activation scales is slower than bf16 "
                f"({d.time_vs_bf16_twin_ratio:.2f}×, `{d.variant}`) and FP8 with static scales faster "
                f"({s.time_vs_bf16_twin_ratio:.2f}×, `{s.variant}`){kv}. A dynamic scale is computed at every call before "
                "every GEMM: an amax reduction over the activation and the elementwise kernels that divide and cast; "
                f"a static scale is a constant the compiler folds into the kernel before the GEMM.{kinds}{why} "
                "Chapter 8's slower FP8 is dynamic-scale FP8, uncompiled at that.")
    else:
        text = (f"Static activation scales take {s.time_vs_bf16_twin_ratio:.2f}× and dynamic ones "
                f"{d.time_vs_bf16_twin_ratio:.2f}× their bf16 twins' time: on this run the scales do not separate a "
                f"slower FP8 from a faster one.{kinds}")
    few = mb[mb.measured_speedup_ratio.notna()] if mb is not None and "measured_speedup_ratio" in mb else pd.DataFrame()
    if not few.empty and c4 is not None and c4["fp8_ms"] < c4["bf16_ms"]:
        t = 1 / few.measured_speedup_ratio
        den = f"; the whole call's {c7['steps']} denoise steps run {c7['horizon']} tokens each" if c7.get("horizon") else ""
        text += (f" Compiled dynamic-scale FP8 still wins in this chapter's {c4['tokens']}-token prefill, whose GEMMs are "
                 f"large; at {', '.join(map(str, sorted({int(x) for x in few.tokens})))} tokens (the memory-bound test above{den}) "
                 f"compiled dynamic-scale FP8 (the path named there) takes {t.min():.2f}–{t.max():.2f}× the bf16 time.")
    parts.append(text)
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- chapter 7's kernel kinds
def _compiled_pair(v: pd.DataFrame) -> tuple[pd.Series | None, pd.Series | None]:
    """Chapter 7's FP8 variants with all three stacks in FP8, compiled and in one CUDA graph: the
    first with static activation scales and the first with dynamic ones (None where absent)."""
    if v.empty:
        return None, None
    full = v[(v.fp8_on != "the LLM only") & (v.compiled == "compiled") & (v.graph == "one CUDA graph")]
    static = full[full.act_scales.str.startswith("static")]
    dynamic = full[full.act_scales.str.startswith("dynamic")]
    return (None if static.empty else static.iloc[0]), (None if dynamic.empty else dynamic.iloc[0])


def _kinds_words(c7: dict, variant: str) -> str:
    """One FP8 variant's kernel kinds against its twin's (`committed_fp8_whole_call`), in words."""
    out = []
    for key, words in (("gemm_ms", "GEMMs"), ("elementwise_ms", "elementwise and fused kernels")):
        if variant in c7.get(key, {}):
            a, b = c7[key][variant]
            out.append(f"{words} {a:.2f} → {b:.2f} ms")
    return ", ".join(out)


def dynamic_scale_split(c7: dict | None) -> dict | None:
    """Chapter 7's compiled, graphed, all-stacks dynamic-scale FP8 variant timed by kernel kind
    against its bf16 twin: {"variant", "twin", "gemm": (bf16 ms, FP8 ms), "elementwise": (bf16 ms,
    FP8 ms)}. None where chapter 7 has no such variant or did not save both kinds for it."""
    if c7 is None:
        return None
    _, d = _compiled_pair(c7["variants"])
    if d is None or d.variant not in c7.get("gemm_ms", {}) or d.variant not in c7.get("elementwise_ms", {}):
        return None
    return {"variant": d.variant, "twin": d.bf16_twin, "gemm": c7["gemm_ms"][d.variant],
            "elementwise": c7["elementwise_ms"][d.variant]}


def scale_split_explains(split: dict) -> bool:
    """True where the FP8 GEMMs are faster than the twin's and the extra elementwise time (where
    the dynamic scales are computed) outweighs what they save: the scales, not the GEMMs, cost."""
    (g0, g1), (e0, e1) = split["gemm"], split["elementwise"]
    return g1 < g0 and e1 - e0 > g0 - g1


def scale_split_words(split: dict) -> str:
    """`dynamic_scale_split` in words, with what it shows."""
    (g0, g1), (e0, e1) = split["gemm"], split["elementwise"]
    shows = ("the FP8 GEMMs are faster, and the scales' elementwise work costs more than the GEMMs save"
             if scale_split_explains(split) else "the scales' elementwise work does not outweigh the GEMMs' change")
    return (f"`{split['variant']}` against `{split['twin']}`: GEMMs {g0:.2f} → {g1:.2f} ms, elementwise and fused "
            f"kernels {e0:.2f} → {e1:.2f} ms: {shows}")


def _fmt_ms(value: float | None) -> str:
    return "an unrecorded time" if value is None or value != value else f"{value:.2f} ms"
