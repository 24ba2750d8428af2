"""The verdict page's ledger: the seed's conclusions, each with a status, its evidence and the
chapter figures it rests on.

`Ledger(slug)` reads the committed results of one GPU run. Every figure a verdict reads through
`Ledger.gpu` is remembered, so that `Ledger.claim` can name, for each verdict, the figures read
since the previous one (the page's "figure used" column). A figure the run lacks is None, and
`text` writes "(not measured in this run)" for it: the page never crashes on an older run.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from . import claims as figs
from .report import VERDICTS

NOT_YET = figs.NOT_MEASURED
LABEL = {**VERDICTS, NOT_YET: f'<span class="pi05-badge pi05-not-yet-measured">{NOT_YET}</span>'}


def text(v: float | None, fmt: str = ".2f", unit: str = "") -> str:
    """A GPU figure for the evidence column; the fallback text where it is not measured yet."""
    return f"({NOT_YET})" if v is None else f"{v:{fmt}}{unit}"


def status_of(value: float | None, decide: Callable[[float], str]) -> str:
    """`decide(value)`, or "not measured in this run" where the run lacks the figure."""
    return NOT_YET if value is None else decide(value)


class Ledger:
    def __init__(self, slug: str):
        from . import results

        self.slug = slug
        devices = results.devices()
        self.device = next((d["device"] for d in devices if d["slug"] == slug), slug)
        heads = results.headlines()
        self.heads = heads[(heads.slug == slug) & (heads.source == "committed")]
        self.docs = {d["chapter"]: d for d in results.load_all() if d["slug"] == slug and d["source"] == "committed"}
        self.used: list[str] = []  # chapter:key of every figure read since the last claim
        self.claims: list[dict[str, Any]] = []

    @property
    def chapters(self) -> list[str]:
        return sorted(set(self.heads.chapter))

    def gpu(self, chapter: str, key: str, cite: bool = True) -> float | None:
        """A committed headline figure of this run; None when the run lacks the chapter or key.
        `cite=False` for a figure read only to locate others (it is not evidence of the next claim)."""
        if cite:
            self.used.append(f"{chapter}:{key}")
        hit = self.heads[(self.heads.chapter == chapter) & (self.heads.key == key)]
        return None if hit.empty else figs.number(hit.value.iloc[-1])

    def rows(self, chapter: str, name: str, cite: bool = False, which: str = "") -> pd.DataFrame | None:
        """A named table of this run: `tables` (new runs) or the legacy `rows` with a `table` column.
        `cite=True` names the table in the next claim's "figure used" column, like a figure, with
        `which` (the rows used) where given."""
        from .results import run_table

        if cite:
            self.cite_table(chapter, name, which)
        return run_table(self.docs.get(chapter), name)

    def parameter(self, chapter: str, name: str) -> Any:
        """A parameter this run's `chapter` ran with (its provenance); None where the run lacks it."""
        return self.docs.get(chapter, {}).get("provenance", {}).get("parameters", {}).get(name)

    def cite_table(self, chapter: str, name: str, which: str = "") -> None:
        """Name a table read with `cite=False` in the next claim's "figure used" column, once it is used."""
        self.used.append(f"{chapter}:table {name}" + (f" ({which})" if which else ""))

    def claim(self, section: str, conclusion: str, status: str, evidence: str, *chapters: str,
              short: str = "") -> None:
        """One verdict; the figures read since the previous claim are the ones it uses, and
        `chapters` the ones it cites without reading a figure (quoted or analytic evidence)."""
        if status not in VERDICTS and status != NOT_YET:
            raise ValueError(f"unknown verdict {status!r}")
        used = list(dict.fromkeys(self.used))
        self.used.clear()
        by_chapter: dict[str, list[str]] = {}
        for k in used:
            chapter, what = k.split(":", 1)
            by_chapter.setdefault(chapter, []).append(f"`{what}`")
        figures = "; ".join(f"{figs.chapter_link(c)}: {', '.join(keys)}" for c, keys in by_chapter.items())
        others = ", ".join(figs.chapter_link(c) for c in chapters if c not in by_chapter)
        cited = (("quoted / analytic: " if not figures else "see ") + others) if others else ""
        self.claims.append({"section": section, "conclusion": conclusion, "status": status, "evidence": evidence,
                            "chapters": "; ".join(t for t in (figures, cited) if t), "short": short or conclusion})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.claims)

    def counts(self) -> pd.DataFrame:
        """How many conclusions got each verdict (badges as HTML)."""
        c = self.table().status.value_counts()
        return pd.DataFrame({"verdict": [LABEL[s] for s in c.index], "conclusions_count": c.values})

    def sections_markdown(self) -> str:
        """One MyST list-table per section of the seed (conclusion, verdict, evidence, figure used),
        with column widths: a pipe table gets equal columns and squeezes the evidence."""
        def one_line(s: Any) -> str:
            return " ".join(str(s).split())

        out = []
        for section, g in self.table().groupby("section", sort=False):
            out += [f"### {section}", "", "```{list-table}", ":header-rows: 1", ":widths: 21 14 40 25", ":class: pi05-claims", "",
                    "* - the seed concluded", "  - verdict", "  - evidence", "  - figure used"]
            for r in g.itertuples():
                out += [f"* - {one_line(r.conclusion)}", f"  - {LABEL[r.status]}", f"  - {one_line(r.evidence)}",
                        f"  - {one_line(r.chapters) or '–'}"]
            out += ["```", ""]
        return "\n".join(out)

    def summary(self) -> list[str]:
        """The paragraph's lines: how many of each verdict, then the short names under each."""
        t = self.table()
        groups = {st: list(t[t.status == st].short) for st in (*VERDICTS, NOT_YET)}
        lines = [f"Of the seed's {len(t)} conclusions: "
                 + "; ".join(f"{len(v)} {LABEL[st]}" for st, v in groups.items() if v) + "."]
        for st in ("held", "partly held", "not held"):
            if groups[st]:
                lines.append(f"**{LABEL[st]}:** " + "; ".join(groups[st]) + ".")
        if groups[NOT_YET]:
            lines.append(f"**{NOT_YET.capitalize()}:** " + "; ".join(groups[NOT_YET]) + ".")
        return lines


# ----------------------------------------------------------------------------- rules and readings
def int4_kernel_status(tinygemm_ratio: float | None, triton_ratio: float | None, faster: float = 0.9) -> str:
    """A claim that INT4 weights speed the prefill up, judged on GPU kernel times over bf16 cuBLAS
    on one MLP's two matmuls at the prefill's length (never on an eager, host-bound prefill):
    "not held" where no INT4 kernel measured is faster than bf16, "partly held" where one is (a
    better INT4 prefill may get there; the quoted Thor figure itself is not testable here)."""
    measured = [r for r in (tinygemm_ratio, triton_ratio) if r is not None]
    if not measured:
        return NOT_YET
    return "partly held" if min(measured) < faster else "not held"


def int4_evidence(device: str, tinygemm_ratio: float | None, triton_ratio: float | None, tokens: int = 712) -> str:
    """Chapter 5's two INT4 kernel figures, each named for what it times, and why its whole INT4
    prefill is not used (timed eager only: host-bound)."""
    return (f"Measured on {device} at {tokens} tokens, GPU kernel time over bf16 cuBLAS on one MLP's two matmuls "
            f"(gate/up and down): torch's tinygemm `_weight_int4pack_mm` (a decode kernel) {text(tinygemm_ratio, '.3g', '×')}, "
            f"a prefill-class Triton W4A16 kernel {text(triton_ratio, '.3g', '×')}. Chapter 5 times the whole INT4 prefill "
            "only eager (every kernel launched from Python): a host-bound timing, left out of this verdict.")


def down_proj_status(gpu_ratio: float | None, thor_per_flop_slowdown: float, gap: float = 0.9) -> str:
    """"down_proj's GB/s is abnormally low at 712 tokens: cuBLAS is slow when K ≫ N". The GB/s
    reading is wrong whatever is measured (it compares 1 token with 712); the claim keeps a part
    ("partly held") where a per-FLOP gap against gate_proj exists: on a GPU here (`gpu_ratio`,
    down_proj's TFLOP/s over gate_proj's, under `gap`) or in the seed's own breakdown
    (`thor_per_flop_slowdown`, its down_proj time over one gate/up GEMM's, above 1 / `gap`)."""
    if gpu_ratio is None and thor_per_flop_slowdown * gap <= 1:
        return NOT_YET
    thor_gap = thor_per_flop_slowdown * gap > 1
    return "partly held" if thor_gap or (gpu_ratio is not None and gpu_ratio < gap) else "not held"


#: chapter 7's fused model without and with one CUDA graph for the whole call (`pipeline_bench.VARIANTS`)
GRAPH_PAIR = ("eager_fused", "graph")


def graph_gain(latency: pd.DataFrame | None, best_ms: float | None,
               pair: tuple[str, str] = GRAPH_PAIR) -> tuple[float, float] | None:
    """The whole call without and with one CUDA graph, the same model otherwise (`pair`:
    `pipeline_bench.VARIANTS`'s fused model, ungraphed and graphed), in chapter 7's latency table
    at the shape of its headline best call (`best_ms`): (ungraphed ms, graphed ms). None where
    either is missing."""
    if latency is None or latency.empty or best_ms is None or "variant" not in latency:
        return None
    whole = latency[latency.stage == "whole"]
    best = whole[(whole.median_ms - best_ms).abs() <= 1e-6 * best_ms]
    if best.empty:
        return None
    shape = best.iloc[0][[c for c in ("views", "steps", "horizon", "text_tokens") if c in whole]]
    same = whole[(whole[shape.index] == shape.values).all(axis=1)].drop_duplicates("variant").set_index("variant").median_ms
    return (float(same[pair[0]]), float(same[pair[1]])) if all(v in same.index for v in pair) else None


def scale_fault_reading(levels: pd.DataFrame | None, seed_runs: dict[str, tuple[float, float]],
                        prefill_floor_ms: float) -> str:
    """What chapter 5's fault table (`lowbit_bench.fault_levels`: cos at layer, MLP and model level)
    says about the seed's cos ≈ 0 runs (`seed_runs`: name -> (ms, cos), quoted): at one layer only
    layout faults give cos ≈ 0, dropped scales only through the whole model. A run faster than
    the whole prefill's floor on Thor (`prefill_floor_ms`) timed a layer or an MLP, where only a
    layout fault matches; a slower one may be a whole model, where dropped scales match too."""
    if levels is None or levels.empty:
        return "Chapter 5's fault table is not in this run."
    layout = levels[levels.layer_cos.abs() < 0.1]
    drops = levels[levels.fault.str.contains("scales? dropped", regex=True)]
    small = [n for n, (ms, _) in seed_runs.items() if ms < prefill_floor_ms]
    large = [n for n in seed_runs if n not in small]
    run = lambda n: f"{n} ({seed_runs[n][0]:g} ms, cos {seed_runs[n][1]:g})"  # noqa: E731
    out = (f"Chapter 5's fault table: at one layer only layout faults give cos ≈ 0 ({'; '.join(layout.fault)}: "
           f"|cos| ≤ {layout.layer_cos.abs().max():.3f}); dropped scales keep the direction there (cos "
           f"{drops.layer_cos.min():.2f} to {drops.layer_cos.max():.2f}) and reach cos ≈ 0 only through the whole model "
           f"({drops.model_cos.min():.4f} to {drops.model_cos.max():.4f}).")
    if small:
        out += (f" The seed's {' and '.join(map(run, small))} ran faster than the whole 712-token prefill's NVFP4 floor on "
                f"Thor's spec ({prefill_floor_ms:.2f} ms), so it timed a layer or an MLP, where cos ≈ 0 matches a layout "
                "fault, not dropped scales.")
    if large:
        out += (f" Its {' and '.join(map(run, large))} {'is' if len(large) == 1 else 'are'} above that floor and may be whole "
                "models, where dropped scales match as well: the cosines alone do not tell the two apart.")
    return out


def split_kernels(dp: dict[str, Any] | None) -> list[str]:
    """The GEMMs (of down_proj, gate_proj) whose nn.Linear kernel name declares a split-K or
    stream-K schedule (`prefill_bench.declared_split`): the split factor is not in the name."""
    from .prefill_bench import declared_split

    if not dp:
        return []
    return [g for g in ("down_proj", "gate_proj") if declared_split(str(dp.get(f"{g}_kernel", "")))]


def down_proj_reading(dp: dict[str, Any] | None) -> str:
    """What chapter 3's tile comparison says about the down_proj / gate_proj gap. A wave model
    without split describes only a kernel that does not split K: where cuBLAS's down_proj kernel
    is split-K (factor not in its name), the model's prediction is reported, never used to
    explain or to rule out anything."""
    from .prefill_bench import LINEAR_LAYOUT

    if dp is None or not dp["predicted"]:
        return "Chapter 3's tile comparison is not in this run."
    pred = " or ".join(f"{p:.2f}× (tiles along {o[1:-1]})" for o, p in dp["predicted"].items())
    hand = ("splitting K by hand does not beat it (the best down_proj layout is "
            + ("nn.Linear's own" if dp["best_layout"] == LINEAR_LAYOUT else f"`{dp['best_layout']}`")
            + f", {dp['best_tflops']:.0f} TFLOP/s)" if "split-K" not in dp["best_layout"] else
            f"split over K by hand it reaches {dp['best_tflops']:.0f} TFLOP/s (`{dp['best_layout']}`)")
    if "down_proj" in split_kernels(dp):
        return (f"cuBLAS runs down_proj with a split-K kernel (`{dp['down_proj_kernel']}`) whose split factor its name does "
                f"not give, so wave quantisation without split, which predicts {pred} with the declared tiles, does not "
                f"describe that kernel and can neither explain the gap nor rule the tile count out; {hand}. The "
                f"{100 * (1 - dp['ratio']):.0f}% gap stays unexplained (chapter 3).")
    if dp["explained"]:
        return (f"Wave quantisation with the tiles cuBLAS's kernels declare predicts {pred}, within 15% of the measurement "
                f"along {', '.join(dp['explained'])}: chapter 3 puts the gap down to the last wave's idle SMs.")
    return (f"Wave quantisation with the tiles cuBLAS's kernels declare predicts {pred}: neither is within 15% of the "
            f"measurement, so the tile count does not explain the gap; {hand}. Chapter 3 leaves the gap unexplained.")


def best_prefill_text(ledger: Ledger) -> str:
    """Chapter 3's fastest 712-token prefill against its floor, naming the implementation and the
    variant (chapter 7's pipeline times the same prefill in another implementation)."""
    ratio, best = (ledger.gpu("ch03_prefill_breakdown", k) for k in ("prefill712_best_vs_floor_ratio", "prefill712_best_ms"))
    if not ratio:
        return ""
    variant = path_of(ledger.rows("ch03_prefill_breakdown", "variants", cite=True), best, name="variant")
    return (f" On {ledger.device} chapter 3's standalone 18-layer stack, at its fastest variant"
            + (f" (`{variant}`)" if variant else "") + f", runs the prefill at {ratio:.2f}× its floor, the time in "
            "the GEMMs (chapter 7's whole-model pipeline times its own implementation of the same prefill).")


def layers_path_text(ledger: Ledger) -> str:
    """Which path chapter 8 timed the 12-layer model on, against chapter 7's fastest path: the
    speed-up is that path's, not the fastest path's."""
    pred = ledger.rows("ch08_roads_to_20hz", "predictions", cite=True)
    if pred is None or pred.empty or "test" not in pred:
        return ""
    rows = pred[(pred.test == "12 layers") & (pred.stage == "whole")]
    if rows.empty:
        return ""
    path, ms = str(rows.variant.iloc[0]), float(rows.median_ms.iloc[0])
    best_ms = ledger.gpu("ch07_pipeline", "pipeline_2view_steps10_best_ms")
    best = path_of(ledger.rows("ch07_pipeline", "budget"), best_ms, name="variant")
    return (f"Both models were timed on chapter 8's `{path}` path (12 layers: {ms:.1f} ms)"
            + (f", not on chapter 7's fastest, `{best}` ({best_ms:.1f} ms with 18 layers): the ratio on the fastest path is "
               "not measured." if best and best != path else "."))


def int4_premise_status(thor_bound: float, claimed: float) -> str:
    """"INT4 reads a quarter of the bytes, so the prefill is `claimed`× faster", judged as chapter 5
    judges it: by the bound Thor's own spec puts on weight-only INT4 (`thor_bound`, the bf16 floor
    over the INT4 floor, `precision_bench.precision_floors`): "not held" under half the claimed
    speed-up, "partly held" under 90% of it, else "held"."""
    return "not held" if thor_bound < 0.5 * claimed else "partly held" if thor_bound < 0.9 * claimed else "held"


def fastest_quoted(platform: str = "Jetson AGX Thor", views: int = 2, steps: int = 10) -> dict[str, Any] | None:
    """The fastest published latency of the whole call (views, steps) on `platform` in chapter 9's
    reference data (`peers.published_latencies`): peer, precision, latency_ms, source. None where
    there is none."""
    from . import peers

    lat = peers.published_latencies()
    lat = lat[(lat.platform == platform) & (lat.views == views) & (lat.steps == steps)]
    if lat.empty:
        return None
    r = lat.loc[lat.value.idxmin()]
    return {"peer": str(r.peer), "precision": str(r.precision), "latency_ms": float(r.value), "source": str(r.source)}


def quoted_shape_words(peer: str, platform: str, views: int, steps: int) -> str:
    """The input configuration chapter 9 records for a published whole-call figure (`peer` a prefix
    of its name): views, steps, prompt tokens and action horizon, marked assumed where its source
    does not state them. Empty where chapter 9's reference data has no such row."""
    from . import peers

    lat = peers.published_latencies()
    r = lat[lat.peer.str.startswith(peer) & (lat.platform == platform) & (lat.views == views) & (lat.steps == steps)]
    if r.empty:
        return ""
    r = r.iloc[0]
    assumed = (" — what the source does not state ASSUMED by chapter 9 (its table's note)"
               if "ASSUMED" in str(r.configuration) else "")
    return f"{views} views, {steps} steps, {int(r.text_tokens)} prompt tokens and horizon {int(r.horizon)}{assumed}"


def path_of(table: pd.DataFrame | None, ms: float | None, name: str = "path", rel: float = 1e-6) -> str | None:
    """The name (column `name`) of the row of a chapter's timing table whose median is the
    headline figure `ms`: which path a chapter's "best" figure timed. None where none matches."""
    if table is None or ms is None or table.empty or name not in table or "median_ms" not in table:
        return None
    hit = table[(table.median_ms - ms).abs() <= rel * abs(ms)]
    return None if hit.empty else str(hit[name].iloc[0])


# ----------------------------------------------------------------------------- readings of other chapters
def seed_prefix_fit(ledger: Ledger) -> dict[str, float | None] | None:
    """Chapter 8's fit of the seed's prefix as this run saved it (its `thor_heldout` row, and the fit's
    efficiencies where saved), for `thor_fit.seed_fit_words`; None where the run lacks the row."""
    from .reference import quoted
    from .thor_fit import SEED_PREFIX

    ch = "ch08_roads_to_20hz"
    t = ledger.rows(ch, "thor_heldout")
    hit = t[t.key == SEED_PREFIX] if t is not None and "key" in t else None
    if hit is None or hit.empty:
        return None
    ledger.cite_table(ch, "thor_heldout", SEED_PREFIX)
    eff = {k: ledger.gpu(ch, f"thor_fit_{k}_ratio", cite=False) for k in ("eff_bw", "eff_compute")}
    for k in (k for k, v in eff.items() if v is not None):  # cited where saved: the words leave out what is not
        ledger.gpu(ch, f"thor_fit_{k}_ratio")
    return {"quoted_ms": float(hit.quoted_ms.iloc[0]), "fitted_ms": float(hit.fitted_ms.iloc[0]), **eff,
            "spec_gbps": quoted("thor_bandwidth_gbps")}


def fp8_kernel_evidence(ledger: Ledger, variant: str | None = None) -> str:
    """Why FP8 misses the halved bytes where the pass is memory-bound, each cause timed apart on this
    run: chapter 7's kernel kinds (the dynamic scales' elementwise work against the GEMMs), and
    chapter 5's bare FP8 GEMM and chapter 6's tensorwise one against bf16 at chapter 4's memory-bound
    token counts (`fp8_findings.fp8_kernel_words`; `variant` chapter 4's FP8 path). Tables are cited
    only where their figures are used."""
    from . import fp8_paths as FP
    from .fp8_findings import fp8_kernel_words, memory_bound_tokens

    c7 = FP.committed_fp8_whole_call(ledger.slug)
    split = FP.dynamic_scale_split(c7) if c7 is not None and c7["slug"] == ledger.slug else None
    if split:
        ledger.cite_table("ch07_pipeline", "fp8_kernels_by_kind")
    gemv = ledger.gpu("ch06_triton", "gemv_cublaslt_fp8_vs_cublas_ratio", cite=False)
    kernels = fp8_kernel_words(ledger.rows("ch05_int4_fp4", "sweep"),
                               memory_bound_tokens(ledger.rows("ch04_fp8_tensorrt", "memory_bound")), gemv, variant)
    if kernels:
        ledger.cite_table("ch04_fp8_tensorrt", "memory_bound")
        ledger.cite_table("ch05_int4_fp4", "sweep")
        if gemv is not None and gemv == gemv:
            ledger.gpu("ch06_triton", "gemv_cublaslt_fp8_vs_cublas_ratio")
    return " ".join([f"Chapter 7's kernel profile of the whole call times the scales and the GEMMs apart "
                     f"({FP.scale_split_words(split)})." if split else
                     "Chapter 7's kernel profile of the scales and the GEMMs apart: not in this run.",
                     kernels or "Chapter 5's bare FP8 GEMM at these token counts: not in this run."])
