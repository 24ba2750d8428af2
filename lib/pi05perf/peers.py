"""Peers: published pi0.5 figures per unit of hardware, and the wheels chapter 9's run-time peers come from.

Two things live here:

* **Published peers per unit of hardware** (`data/reference/peers.csv`): each published
  latency divided by the roofline floor of the same work on that peer's hardware
  (`floor_ms`, spec-sheet rates), or by the floor from the ceilings chapter 7 measured
  (`measured_ceiling_floor`).
* **The peer wheels** (lerobot, torchao and what they need, `PEER_WHEELS`): downloaded by
  `python -m pi05perf.peers wheels`, installed on the GPU into `PI05PERF_PEERS` and put on
  sys.path by `add_peers_path`. lerobot's pi0.5 itself (fidelity table, building and timing
  it, `python -m pi05perf.peers write`) is in `pi05perf.lerobot_pi05`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
PEERS_CSV = ROOT / "data" / "reference" / "peers.csv"
WHEELHOUSE = ROOT / "wheelhouse" / "peers"

#: The minimal set carried to the GPU (Python 3.12, manylinux x86_64, installed with --no-deps
#: into a separate --target directory). The GPU image already has torch, torchvision, numpy,
#: PIL, cv2, einops, safetensors, huggingface_hub, httpx, pyyaml; tokenizers is carried because
#: transformers 5.5 accepts only tokenizers <= 0.23.0 and the image has a newer one.
PEER_WHEELS = ("lerobot==0.6.1", "torchao==0.18.0", "transformers==5.5.4", "tokenizers==0.22.2",
               "gymnasium==1.2.2", "farama-notifications==0.0.4", "draccus==0.11.6", "mergedeep==1.3.4")


# ----------------------------------------------------------------------------- published peers
def load_peers() -> pd.DataFrame:
    """data/reference/peers.csv: kind 'hardware' rows (spec sheets) and 'latency' rows."""
    return pd.read_csv(PEERS_CSV, keep_default_na=False)


def hardware_specs() -> pd.DataFrame:
    """One row per device: bandwidth_gbps, bf16_tflops, fp8_tflops, sm_count (dense, vendor spec)."""
    df = load_peers()
    hw = df[df.kind == "hardware"].pivot_table(index="platform", columns="quantity", values="value",
                                               aggfunc="first")
    return hw.apply(pd.to_numeric, errors="coerce")


#: the columns of peers.csv a latency row records besides views and steps: the images the model
#: encodes, the prompt tokens and the action horizon (blank on hardware rows)
CONFIG_COLUMNS = ("image_slots", "text_tokens", "horizon")


def published_latencies() -> pd.DataFrame:
    df = load_peers()
    lat = df[df.kind == "latency"].copy()
    lat["value"] = pd.to_numeric(lat["value"])
    for col in ("views", "steps", *CONFIG_COLUMNS):  # the configuration each figure was published (or assumed) for
        if col in lat:
            lat[col] = pd.to_numeric(lat[col]).astype(int)
    return lat.reset_index(drop=True)



#: Bytes per weight and the compute ceiling (column of `hardware_specs`, times a factor) of each
#: precision a peer publishes. A floor must be a lower bound: FP8+FP4 runs count every weight at
#: 4 bits and compute at twice the dense FP8 rate.
PRECISIONS: dict[str, tuple[float, str, float]] = {
    "bf16": (2.0, "bf16_dense_tflops", 1.0),
    "fp8": (1.0, "fp8_dense_tflops", 1.0),
    "fp8+fp4": (0.5, "fp8_dense_tflops", 2.0),
}


def precision_class(label: str) -> str:
    """'fp8 (unstated)' -> 'fp8'; the lowest precision named wins."""
    label = label.lower()
    return "fp8+fp4" if "fp4" in label else ("fp8" if "fp8" in label else "bf16")


def kv_cache_bytes(prefix_tokens: int, layers: int = 18, kv_heads: int = 1, head_dim: int = 256,
                   dtype_bytes: int = 2) -> int:
    """K and V of every layer for the prefix: what the prefill writes and each step reads."""
    return 2 * layers * kv_heads * head_dim * prefix_tokens * dtype_bytes


def floor_ms(views: int, steps: int, bandwidth_gbps: float, tflops: float, weight_bytes: float = 2.0,
             horizon: int = 10, text_tokens: int = 200) -> float:
    """Roofline floor of one pi0.5 inference: per stage (vision, prefill, denoise) the larger of
    its compute time and its minimum memory time -- every weight read once per call of the stage
    (`weight_bytes` per parameter), the K/V cache written once and read by every step (bf16).
    FLOPs and bytes from `flops.pipeline_cost`: the work is the same on every device."""
    from .config import TokenBudget
    from .flops import pipeline_cost

    budget = TokenBudget(num_images=views, text_tokens=text_tokens, action_horizon=horizon)
    cost = pipeline_cost(budget, steps).set_index("stage")
    kv = kv_cache_bytes(budget.prefix_tokens)
    total = 0.0
    for stage, r in cost.iterrows():
        mem = r["weight_bytes"] * weight_bytes / 2.0 + (kv if stage == "prefix" else 0.0)
        mem += kv * steps if stage == "denoise" else 0.0
        total += max(r["flops"] / (tflops * 1e12), mem / (bandwidth_gbps * 1e9))
    return total * 1e3


def spec_floor_ms(platform: str, precision: str, views: int, steps: int, specs: pd.DataFrame | None = None,
                  text_tokens: int = 200, horizon: int = 10) -> float:
    """The floor of one whole call (`views` images encoded, steps, prompt tokens, horizon) on
    `platform`'s spec sheet (`hardware_specs`, or `specs`) at `precision`: its bytes per weight and
    compute ceiling from `PRECISIONS`."""
    wb, col, factor = PRECISIONS[precision_class(precision)]
    spec = (hardware_specs() if specs is None else specs).loc[platform]
    return floor_ms(views, steps, spec["bandwidth_gbps"], spec[col] * factor, wb, horizon=horizon,
                    text_tokens=text_tokens)


def per_floor_table(ours: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Each published latency over the roofline floor of the same work on the peer's own hardware
    at the peer's own precision (`PRECISIONS`): the images the model encodes (image_slots), steps,
    prompt tokens and horizon peers.csv records for it (its `note` says which are assumed).
    `ours`: extra rows {peer, platform, views, steps, precision, latency_ms} measured here, by
    default at their own views, 200 prompt tokens and horizon 10; their platform must be in the
    hardware rows of peers.csv."""
    hw = hardware_specs()
    rows = [{"peer": r.peer, "platform": r.platform, "views": r.views, "image_slots": r.image_slots,
             "text_tokens": r.text_tokens, "horizon": r.horizon, "steps": r.steps, "precision": r.precision,
             "latency_ms": r.value, "source": "published", "note": r.configuration}
            for _, r in published_latencies().iterrows()]
    rows += [{"source": "measured here", "note": "", "image_slots": o["views"], "text_tokens": 200, "horizon": 10, **o}
             for o in ours or []]
    df = pd.DataFrame(rows)
    df["floor_ms"] = [spec_floor_ms(r.platform, r.precision, int(r.image_slots), int(r.steps), hw, int(r.text_tokens),
                                    int(r.horizon)) for r in df.itertuples()]
    df["x_floor_ratio"] = df.latency_ms / df.floor_ms
    return df


#: the clauses of a peers.csv configuration note that say what a floor's configuration rests on
_CONFIG_WORDS = re.compile(r"assum|stated|slot|prompt|token|horizon|chunk", re.IGNORECASE)


def config_clauses(note: str) -> str:
    """The clauses of a configuration note (split at ';' outside brackets) about image slots, prompt,
    horizon or what is stated or assumed: what the floor of that row takes for granted."""
    clauses, depth, cur = [], 0, ""
    for ch in note:
        depth += (ch == "(") - (ch == ")")
        if ch == ";" and depth == 0:
            clauses.append(cur)
            cur = ""
        else:
            cur += ch
    return "; ".join(c.strip() for c in clauses + [cur] if _CONFIG_WORDS.search(c))


def per_floor_view(pf: pd.DataFrame):
    """Chapter 9's per-floor table (`per_floor_table`) for the page: the configuration each floor
    assumes (image slots x 256 image tokens + prompt tokens, horizon h) in a column, and under the
    table what the sources state or leave to an assumption, one numbered footnote per distinct note."""
    from .report import table

    said = [config_clauses(n) for n in pf.note]
    distinct = list(dict.fromkeys(x for x in said if x))
    peers_of = {x: list(dict.fromkeys(p for p, y in zip(pf.peer, said) if y == x)) for x in distinct}
    shown = pf.assign(floor_assumes=[
        f"{int(r.image_slots)}×256 + {int(r.text_tokens)}, h{int(r.horizon)}" + (f" [{distinct.index(x) + 1}]" if x else "")
        for r, x in zip(pf.itertuples(), said)])
    cols = ["peer", "platform", "views", "floor_assumes", "precision", "latency_ms", "floor_ms", "x_floor_ratio"]
    head = ("floor assumes: image slots × 256 image tokens + prompt tokens, and the action horizon h, as peers.csv "
            "records them for each figure; rows measured here: their own views, 200 prompt tokens, h10. What each "
            "source states and what is assumed (peers.csv):")
    return table(shown[cols], footnotes=[head] + [f"[{i + 1}] {', '.join(peers_of[x])}: {x}" for i, x in enumerate(distinct)])


def assumed_config_text(row: Any, text_tokens: int = 200, horizon: int = 10) -> str:
    """Markdown for one row of `per_floor_table` whose configuration note says part of it is assumed
    or not stated: that, and its ratio to the floor at `text_tokens` prompt tokens and horizon
    `horizon` instead (openpi's padded prompt). Empty where nothing is assumed or it is that configuration."""
    if not re.search(r"assumed|not stated", row.note, re.IGNORECASE):
        return ""
    out = f"Part of that figure's configuration is **not stated by its source but assumed** (peers.csv: {config_clauses(row.note)})."
    if (int(row.text_tokens), int(row.horizon)) == (text_tokens, horizon):
        return out
    alt = spec_floor_ms(row.platform, row.precision, int(row.image_slots), int(row.steps), None, text_tokens, horizon)
    return (out + f" Its floor above is that of the configuration recorded ({int(row.text_tokens)} prompt tokens, "
            f"horizon {int(row.horizon)}); with a {text_tokens}-token prompt and horizon {horizon} the same call's floor "
            f"is {alt:.1f} ms and the figure is at {row.latency_ms / alt:.2f}× it: its ratio rests on that assumption.")


def measured_ceiling_floor(slug: str, views: int, steps: int, text_tokens: int, horizon: int,
                           chapter: str = "ch07_pipeline") -> dict[str, float] | None:
    """Chapter 7's floor of the same call on device `slug`, from the ceilings measured there
    (not the spec sheet `per_floor_table` uses): its committed (full-profile) headline's best
    call, floor and ratio, and the two ceilings. None where that run is missing or its headline
    configuration (views, steps, prompt tokens, horizon) is not this one: like for like only."""
    from . import results

    for doc in results.load_all(chapter):
        prm = doc["provenance"].get("parameters", {})
        if doc["source"] != "committed" or doc["slug"] != slug:
            continue
        if (prm.get("headline_views"), prm.get("headline_steps"), prm.get("text_tokens"),
                prm.get("action_horizon")) != (views, steps, text_tokens, horizon):
            return None
        h = doc["headline"]
        keys = {"best_ms": f"pipeline_{views}view_steps{steps}_best_ms",
                "floor_ms": f"pipeline_{views}view_steps{steps}_floor_ms",
                "x_floor_ratio": f"pipeline_{views}view_steps{steps}_x_floor_ratio",
                "peak_tflops": "floor_peak_bf16_tflops", "copy_gbps": "floor_copy_gbps"}
        if any(h.get(k) is None for k in keys.values()):
            return None
        return {name: float(h[k]) for name, k in keys.items()}
    return None


def availability_text(lerobot: str | None, lerobot_error: str | None, torchao_version: str | None,
                      measure: bool) -> str:
    """Markdown: the lerobot and torchao versions found (`lerobot` is lerobot's version), why
    lerobot does not import where it does not, and whether this run times them (`measure`) or
    shows the committed GPU run's tables, with how to install the peers' wheels."""
    return (f"lerobot: **{lerobot or 'not installed'}**"
            + (f" (does not import here: `{lerobot_error[:160]}`)" if lerobot_error else "")
            + f"; torchao: **{torchao_version or 'not installed'}**. "
            + ("Both are timed below." if measure and not lerobot_error else
               "Nothing is timed in this run: the tables of measurements come from the committed GPU run, where "
               "there is one (wheels: `python -m pi05perf.peers wheels`, installed with `pip install --no-deps "
               "--target /tmp/peers wheelhouse/peers/*.whl` and `PI05PERF_PEERS=/tmp/peers`)."))


def measured_rows(platform: str, latencies: tuple[tuple[str, float], ...], views: int, steps: int) -> list[dict[str, Any]]:
    """`per_floor_table`'s extra rows for latencies measured here in bf16 on `platform` (H200 or
    H100, the SXM part whose spec sheet peers.csv holds), as (peer, ms) pairs; NaN ones are left out."""
    return [{"peer": peer, "platform": f"{platform} SXM", "views": views, "steps": steps, "precision": "bf16",
             "latency_ms": ms} for peer, ms in latencies if ms == ms]


def measured_ceiling_text(mine: pd.DataFrame, c7: dict[str, float] | None, ours_best_ms: float) -> str:
    """Markdown on ours best's row `mine` of `per_floor_table`: its floor is a spec-sheet floor, and
    (where `measured_ceiling_floor` gave chapter 7's floor of the same call, `c7`) what ours best is
    against the floor from the ceilings measured on this GPU instead."""
    spec = hardware_specs().loc[mine.platform.iloc[0]]
    spec_floor = float(mine.floor_ms.iloc[0])
    return (f"These floors are **spec-sheet floors**, ours included ({mine.platform.iloc[0]}: {spec.bandwidth_gbps:.0f} GB/s, "
            f"{spec.bf16_dense_tflops:.0f} dense bf16 TFLOP/s, from `peers.csv`): the vendor's rates are the only ones known "
            f"for every peer's device, so the column compares across devices. "
            + (f"Chapter 7 divides ours by the ceilings **measured** on this GPU instead ({c7['peak_tflops']:.0f} "
               f"TFLOP/s and {c7['copy_gbps']:.0f} GB/s): the same call's floor there is {c7['floor_ms']:.2f} ms "
               f"against {spec_floor:.2f} ms here, so chapter 7's best call ({c7['best_ms']:.2f} ms) is at "
               f"{c7['x_floor_ratio']:.2f}× its floor, and ours best here is at "
               f"{ours_best_ms / c7['floor_ms']:.2f}× that measured-ceiling floor rather than "
               f"{float(mine.x_floor_ratio.iloc[0]):.2f}× the spec-sheet one."
               if c7 else "Chapter 7's floor of the same call, from ceilings measured on this GPU, is not available "
               "for this configuration, so no measured-ceiling ratio is shown here."))


def torchao_table(ao: pd.DataFrame):
    """Chapter 9's torchao table (`torchao_bench.prefill_rows`) for the page: eager rows labelled
    host overhead, an empty error cell a dash with its footnote."""
    from .report import table

    shown = ao.assign(mode=ao["mode"].replace({"eager": "eager (host overhead)"}))
    if "error" in shown:
        shown["error"] = shown["error"].fillna("").replace({"": None})
    cols = [c for c in ("scheme", "mode", "median_ms", "speed_vs_bf16_ratio", "cos_vs_bf16", "error") if c in shown]
    return table(shown[cols], footnotes=[
        "error –: the scheme ran and passed its check. Eager rows are bound by Python dispatch of torchao's "
        "tensor subclasses (host overhead), not by the GPU's kernels."])


# ----------------------------------------------------------------------------- peer wheels
def add_peers_path() -> None:
    """Where the peer wheels were installed into `PI05PERF_PEERS` (a pip --target directory), put
    it first on sys.path: the book's own environment stays unchanged."""
    import os

    target = os.environ.get("PI05PERF_PEERS")
    if target and target not in sys.path:
        sys.path.insert(0, target)


def download_command(dest: Path = WHEELHOUSE) -> list[str]:
    """pip download of exactly `PEER_WHEELS` for the GPU image (Python 3.12, manylinux x86_64),
    without dependencies. Install on the device with
    `pip install --no-deps --target /tmp/peers wheelhouse/peers/*.whl` and run the chapter with
    `PI05PERF_PEERS=/tmp/peers` (or PYTHONPATH=/tmp/peers)."""
    plat = []
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"):
        plat += ["--platform", tag]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", *plat, "-d", str(dest), *PEER_WHEELS]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import subprocess

    ap = argparse.ArgumentParser(prog="python -m pi05perf.peers")
    ap.add_argument("what", choices=["write", "wheels"])
    args = ap.parse_args(argv)
    if args.what == "write":
        from .lerobot_pi05 import _write

        _write()
    else:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        subprocess.run(download_command(), check=True)
        size = sum(p.stat().st_size for p in WHEELHOUSE.glob("*.whl")) / 2**20
        print(f"{len(PEER_WHEELS)} wheels in {WHEELHOUSE} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
