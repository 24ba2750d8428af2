"""The two ceilings of the running device, measured: memory copy bandwidth and matmul rate.

Datasheet numbers are leads, not floors: every floor in the book divides by these. A peak
measured too low makes every floor too long and every "x floor" too flattering, so the matmul
peak is the best of several large shapes on random data (zeros run faster, so never zeros), of
cuBLAS (`torch.matmul`) and of inductor's max-autotune GEMM, on warm clocks. One run measures
the ceilings once, in chapter 2; every later chapter of the run reads them back (`for_run`) and
records what it divided by (`headline`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from . import config
from .timing import Timing, quartiles, time_fn
from .log import progress

# NVIDIA's dense (no sparsity) figures for the SXM parts; the book compares measured peaks with
# these, never divides by them. Sources: NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: BF16
# 989.5 TFLOP/s, FP8 1979 TFLOP/s, HBM3 3.35 TB/s) and NVIDIA H200 datasheet (H200 SXM: same
# tensor cores, HBM3e 4.8 TB/s). The datasheets quote sparse rates (2x); these are halved.
SPECS = {
    "H200": {"bf16_tflops": 989.0, "fp8_tflops": 1979.0, "copy_gbps": 4800.0,
             "source": "NVIDIA H200 datasheet (SXM, dense)"},
    "H100": {"bf16_tflops": 989.0, "fp8_tflops": 1979.0, "copy_gbps": 3350.0,
             "source": "NVIDIA H100 datasheet (SXM, dense)"},
}
RUN_MAX_AGE_H = 12.0  # results of the same commit older than this belong to an earlier run
GRAPHED_CALLS = 8  # matmuls per CUDA graph when a ceiling candidate is timed
INDUCTOR_TIMEOUT_S = 35.0  # child start-up + compile + autotune + timing of one shape: the book's GPU run is ~10 min


@dataclass(frozen=True)
class Ceiling:
    what: str
    value: float  # GB/s or TFLOP/s
    unit: str
    timing: Timing | None
    size: str
    stack: str = ""
    error: str = ""  # why a candidate was not measured (then value is NaN)


def spec_for(device_name: str) -> dict | None:
    """NVIDIA's figures for this device, when it is one the book knows (SXM parts only)."""
    if "pcie" in device_name.lower() or "nvl" in device_name.lower():
        return None
    return next((s for key, s in SPECS.items() if key in device_name.upper()), None)


def fp8_matmul_supported(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type != "cuda" or not hasattr(torch, "float8_e4m3fn"):
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def copy_bandwidth(device: torch.device | str, nbytes: int, repeats: int) -> Ceiling:
    """Device-to-device copy; counts bytes read plus bytes written."""
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, repeats)
    if not torch.equal(dst, src):
        raise AssertionError("copy kernel did not copy")
    return Ceiling("copy bandwidth (read + write)", 2 * n * 4 / (t.median_ms * 1e-3) / 1e9, "GB/s", t,
                   f"{n * 4 / 2**20:.0f} MiB", "Tensor.copy_")


def _shape(n: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (n, n, n) if isinstance(n, int) else tuple(n)


def cublas_product(dtype: torch.dtype, device: torch.device | str,
                   fast_accum: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The library product of two `dtype` operands: `torch.matmul`, or for fp8 e4m3
    `torch._scaled_mm` with unit scales and a bf16 output (B column-major, as cuBLASLt wants),
    with Hopper's fast (lower-precision) accumulation if `fast_accum`."""
    if dtype != getattr(torch, "float8_e4m3fn", None):
        return torch.matmul
    # made once here, not per call: every call (and a CUDA graph's capture of it) reads this one tensor
    one = torch.ones((), device=device)
    if fast_accum:
        return lambda x, y: torch._scaled_mm(x, y, scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                             use_fast_accum=True)
    return lambda x, y: torch._scaled_mm(x, y, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def matmul_rate(device: torch.device | str, dtype: torch.dtype, n: int | tuple[int, int, int],
                repeats: int, fast_accum: bool = False) -> Ceiling:
    """cuBLAS (`torch.matmul`, or `torch._scaled_mm` for fp8) on random [M,K] x [K,N]; the first
    rows are checked against a float64 product before timing. Timed as the model's GEMMs run and
    as a kernel profile sums them: back to back in one CUDA graph (`kernels.time_on_copies`, at
    least `GRAPHED_CALLS` calls on their own operand copies), each call's time the duration of its
    kernels (CUPTI), so that no launch gap enters the rate. Timed between events instead, the H200
    run of ef564c0 had the 712-row gate_up GEMM at 706 TFLOP/s while chapter 3's profile of the
    same kernel summed to 730: a ceiling that a profiled kernel beats is no ceiling. Where the
    profiler fails, the events' time is used and the timing's `method` says so. `fast_accum`
    (fp8 only): the accumulation chapter 4's fastest FP8 path uses, so it is a candidate too."""
    from .check import relative_error
    from .kernels import time_on_copies

    device = torch.device(device)
    M, N, K = _shape(n)
    a = torch.randn(M, K, device=device)
    b = torch.randn(K, N, device=device)
    rows = min(M, 256)  # a slice of the output is enough to catch a wrong kernel, at 1/M the cost
    if dtype == getattr(torch, "float8_e4m3fn", None):
        a, b = a.to(dtype), b.t().contiguous().to(dtype).t()  # cuBLASLt wants B column-major
        label = "fp8 e4m3 matmul"
        stack = "cuBLAS (torch._scaled_mm, fast accumulation)" if fast_accum else "cuBLAS (torch._scaled_mm)"
    else:
        a, b = a.to(dtype), b.to(dtype)
        label, stack = f"{str(dtype).removeprefix('torch.')} matmul", "cuBLAS (torch.matmul)"
    mm = cublas_product(dtype, device, fast_accum)
    err = relative_error(mm(a, b)[:rows], a[:rows].double() @ b.double())
    if err > 2e-2:
        raise AssertionError(f"{label} at {M}x{N}x{K}: relative error {err:.2e} against the reference")
    try:
        t = time_on_copies(mm, (a, b), device, repeats, min_calls=GRAPHED_CALLS, clock="kernels")
    except Exception:  # noqa: BLE001 - a profiler that cannot trace here: the events' clock, said in `method`
        t = time_on_copies(mm, (a, b), device, repeats, min_calls=GRAPHED_CALLS)
    return Ceiling(label, 2 * M * N * K / (t.median_ms * 1e-3) / 1e12, "TFLOP/s", t, f"{M}x{N}x{K}", stack)


_INDUCTOR_CHILD = r"""
import sys, torch, triton.testing as tt
M, N, K, reps = map(int, sys.argv[1:5])
a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16); b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
f = torch.compile(lambda x, y: x @ y, mode="max-autotune-no-cudagraphs", dynamic=False)
out = f(a, b); ref = a[:256].double() @ b.double()
err = ((out[:256].double() - ref).norm() / ref.norm()).item()
assert err < 2e-2, f"relative error {err:.2e}"
one = tt.do_bench(lambda: f(a, b), warmup=25, rep=25, return_mode="median")
ts = tt.do_bench(lambda: f(a, b), warmup=25, rep=max(10.0, one * reps), return_mode="all")
print("RESULT", *ts)
"""


def inductor_matmul_rate(shape: tuple[int, int, int], repeats: int,
                         timeout_s: float = INDUCTOR_TIMEOUT_S) -> Ceiling:
    """bf16 GEMM as `torch.compile(mode="max-autotune-no-cudagraphs")` picks it (Triton templates
    and cuBLAS), in a child process so that its compile and autotune cost is bounded by
    `timeout_s`: on timeout the child's process group is killed and the reason recorded."""
    M, N, K = shape
    label, size = "bfloat16 matmul", f"{M}x{N}x{K}"
    stack = "inductor (max-autotune-no-cudagraphs)"
    proc = subprocess.Popen([sys.executable, "-c", _INDUCTOR_CHILD, str(M), str(N), str(K), str(repeats)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers, nothing else
        proc.communicate()
        return Ceiling(label, float("nan"), "TFLOP/s", None, size, stack, f"timed out after {timeout_s:.0f} s")
    line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
    if proc.returncode != 0 or line is None:
        why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]
        return Ceiling(label, float("nan"), "TFLOP/s", None, size, stack, why)
    t = quartiles([float(x) for x in line.split()[1:]], "cuda events, L2 flushed (child process)")
    return Ceiling(label, 2 * M * N * K / (t.median_ms * 1e-3) / 1e12, "TFLOP/s", t, size, stack)


def warm_clocks(device: torch.device | str, seconds: float = 1.0) -> None:
    """Keep the tensor cores busy for `seconds` so the first timed shape does not pay for the
    GPU's ramp out of idle."""
    if torch.device(device).type != "cuda":
        return
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize(device)


def best(candidates: list[Ceiling]) -> Ceiling | None:
    """The highest measured value; failed candidates (NaN) never win."""
    ok = [c for c in candidates if c.value == c.value and not c.error]
    return max(ok, key=lambda c: c.value) if ok else None


def _attempt(fn, what: str, size: str, stack: str, unit: str, log) -> Ceiling:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a failed candidate is recorded, the others still count
        log(f"{what} {size} ({stack}) failed: {exc}")
        return Ceiling(what, float("nan"), unit, None, size, stack, f"{type(exc).__name__}: {exc}"[:300])


@dataclass(frozen=True)
class Measured:
    copy: Ceiling
    matmul: Ceiling  # the run's dtype (bf16 on a GPU)
    fp8: Ceiling | None
    candidates: list[Ceiling]

    def table(self, spec: dict | None = None) -> pd.DataFrame:
        """Every candidate measured, one row each: which ones the floors use, why a candidate
        failed, and (given NVIDIA's `spec`) the percentage of the datasheet figure."""
        chosen = {id(self.copy), id(self.matmul), id(self.fp8)}
        key = lambda c: "copy_gbps" if c.unit == "GB/s" else ("fp8_tflops" if "fp8" in c.what else "bf16_tflops")
        rows = [{"ceiling": c.what, "stack": c.stack, "size": c.size, "timed_by": timed_by(c.timing),
                 "value": c.value, "unit": c.unit,
                 "of_spec_pct": 100 * c.value / spec[key(c)] if spec else float("nan"),
                 "used": "best (floors divide by this)" if id(c) in chosen else (c.error or "")}
                for c in self.candidates]
        return pd.DataFrame(rows)


def timed_by(t: Timing | None) -> str:
    """What clock a candidate was read with, in a few words for the ceilings table."""
    method = t.method if t else ""
    if method.startswith("kernel durations"):
        return "kernel durations"
    if "events" in method:
        return "graphed calls, events" if "graph" in method else "events"
    return method.split(",")[0] or "–"


def measure(run, log=progress) -> Measured:
    """All ceilings of `run.device`, once: copy bandwidth (best of sizes well above L2), the
    matmul peak in the run's dtype (best of shapes and stacks) and, where supported, fp8."""
    if run.full:
        copy_sizes = [1 << 30, 2 << 30]
        # large products, and the prefill's own MLP GEMMs: a ceiling that one of the model's GEMMs
        # beats is no ceiling (the H200 run of 9219b15 had gate_up at 715 TFLOP/s against 693)
        g, tokens = config.GEMMA_2B, config.PREFIX_TOKENS
        shapes = [(8192, 8192, 8192), (16384, 8192, 8192), (4096, 16384, 8192), (8192, 16384, 16384),
                  (tokens, 2 * g.mlp_dim, g.width), (tokens, g.mlp_dim, g.width)]
    else:
        copy_sizes, shapes = [1 << 24], [(512, 512, 512), (256, 512, 1024)]
    cands = [_attempt(lambda s=s: copy_bandwidth(run.device, s, run.repeats), "copy bandwidth (read + write)",
                      f"{s >> 20} MiB", "Tensor.copy_", "GB/s", log) for s in copy_sizes]
    warm_clocks(run.device)
    mm = [_attempt(lambda s=s: matmul_rate(run.device, run.dtype, s, run.repeats),
                   f"{str(run.dtype).removeprefix('torch.')} matmul", "x".join(map(str, s)), "cuBLAS", "TFLOP/s", log)
          for s in shapes]
    if run.cuda and run.dtype == torch.bfloat16:
        mm.append(inductor_matmul_rate(shapes[0], run.repeats))
        if mm[-1].error:
            log(f"inductor matmul not measured ({mm[-1].error}); the peak is cuBLAS's")
    fp8 = []
    if fp8_matmul_supported(run.device):
        warm_clocks(run.device, 0.5)  # the child process above let the clocks settle
        # both accumulations: chapter 4's fastest FP8 path accumulates fast, and a ceiling that
        # one of the model's FP8 GEMMs beats is no ceiling
        fp8 = [_attempt(lambda s=s, f=f: matmul_rate(run.device, torch.float8_e4m3fn, s, run.repeats, fast_accum=f),
                        "fp8 e4m3 matmul", "x".join(map(str, s)),
                        "cuBLAS, fast accumulation" if f else "cuBLAS", "TFLOP/s", log)
               for f in (False, True) for s in shapes]
    copy, peak = best(cands), best(mm)
    if copy is None or peak is None:
        raise RuntimeError("no copy or matmul ceiling could be measured: " +
                           "; ".join(c.error for c in cands + mm if c.error))
    return Measured(copy, peak, best(fp8), cands + mm + fp8)


def headline(ceil: dict) -> dict:
    """The ceilings a chapter's floors divided by, for its headline (one line in each chapter)."""
    return {"floor_peak_bf16_tflops": float(ceil["matmul_bf16_tflops"]), "floor_copy_gbps": float(ceil["copy_gbps"])}


def _from_headline(head: dict) -> dict | None:
    """Ceilings from a chapter-2 headline; older runs lack the floor_* keys, and smoke runs on a
    CPU store the float32 peak only under the dtype-neutral key."""
    peak = head.get("floor_peak_bf16_tflops") or head.get("matmul_peak_tflops") or head.get("matmul_bf16_tflops")
    copy = head.get("floor_copy_gbps") or head.get("copy_gbps")
    if not peak or not copy:
        return None
    return {"copy_gbps": copy, "matmul_bf16_tflops": peak, "matmul_fp8_tflops": head.get("matmul_fp8_tflops")}


def _same_run(prov: dict, max_age_h: float = RUN_MAX_AGE_H) -> bool:
    """Written by this run of the book: same commit, and recent (a later re-run measures anew)."""
    from .results import git_commit

    if prov.get("git_commit") != git_commit():
        return False
    try:
        age = _dt.datetime.now(_dt.timezone.utc) - _dt.datetime.fromisoformat(prov["date"])
    except (KeyError, TypeError, ValueError):
        return False
    return age.total_seconds() < max_age_h * 3600


def _cache_path(run) -> Path:
    from . import results

    slug = results.device_slug(results.device_name(run.device))
    return results.ROOT / "_build" / "ceilings" / f"{slug}-{run.profile}.json"


def measure_once(run, log=progress) -> tuple[dict, pd.DataFrame]:
    """This run's ceilings and the table of every candidate: measured by the first chapter that
    needs them (normally chapter 2; chapter 1 runs before it) and kept in `_build/ceilings/`
    for the rest of the run, so every chapter of one run divides by the same numbers."""
    path = _cache_path(run)
    if path.exists():
        doc = json.loads(path.read_text())
        if _same_run(doc["provenance"]):
            log(f"ceilings measured earlier in this run ({doc['provenance']['date']})")
            return doc["ceilings"], pd.DataFrame(doc["table"])
    from .results import device_name, git_commit

    log(f"ceilings measured now, in {run.chapter}: the first chapter of this run to need them")
    m = measure(run, log)
    ceil = {"copy_gbps": m.copy.value, "matmul_bf16_tflops": m.matmul.value,
            "matmul_fp8_tflops": m.fp8.value if m.fp8 else None, "source": "measured in this run"}
    table = m.table(spec_for(device_name(run.device)))
    prov = {"git_commit": git_commit(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": device_name(run.device), "profile": run.profile}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": prov, "ceilings": ceil,
                                "table": json.loads(table.to_json(orient="records"))}, indent=1))
    return ceil, table


def for_run(run, log=progress) -> dict:
    """The running device's ceilings for this run of the book: chapter 2's headline when chapter 2
    has run at this commit, else `measure_once` (measured by the first chapter that asks).
    Keys: copy_gbps, matmul_bf16_tflops (the run dtype's peak: float32 on a CPU smoke run),
    matmul_fp8_tflops, source."""
    from . import results

    slug = results.device_slug(results.device_name(run.device))
    docs = [d for d in results.load_all("ch02_roofline")
            if d["slug"] == slug and d["provenance"].get("profile") == run.profile
            and _from_headline(d["headline"]) and _same_run(d["provenance"])]
    if docs:
        doc = max(docs, key=lambda d: d["provenance"]["date"])
        log(f"ceilings from chapter 2 ({doc['source']}, {doc['provenance'].get('date')})")
        return {**_from_headline(doc["headline"]), "source": "chapter 2"}
    return measure_once(run, log)[0]


def this_device(run, ceil: dict | None = None, log=progress):
    """The running device as a `config.Hardware` with its measured ceilings: `ceil` where the
    caller already holds them, else `for_run`'s."""
    from .config import Hardware
    from .results import device_name

    ceil = ceil or for_run(run, log)
    return Hardware(f"{device_name(run.device)} (measured)", ceil["copy_gbps"], ceil["matmul_bf16_tflops"],
                    ceil.get("matmul_fp8_tflops"), ceil["source"])


def thor_comparison(here, prefill_floor_ms: float) -> list[dict]:
    """Rows for `report.side_by_side`: Thor's quoted bandwidth, bf16 peak, 712-token prefill and the
    seed's weight-read floor, beside `here` (a `config.Hardware`) and its prefill floor."""
    from .reference import quoted

    thor_bw, thor_bf16, thor_seed_bw = (quoted(k) for k in ("thor_bandwidth_gbps", "thor_bf16_dense_tflops",
                                                             "hw_avg_bandwidth_gbps"))
    seed_floor_bw = quoted("weight_read_floor_bandwidth_gbps")
    return [
        {"quantity": "copy bandwidth (read + write)", "unit": "GB/s", "thor_quoted": thor_seed_bw,
         "thor_source": f"seed, Phase 0 (spec: {thor_bw:.0f})", "measured": here.bandwidth_gbps},
        {"quantity": "dense bf16 matmul peak", "unit": "TFLOP/s", "thor_quoted": thor_bf16,
         "thor_source": "NVIDIA spec (not measured by the seed)", "measured": here.bf16_tflops},
        {"quantity": "18-layer prefill at 712 tokens", "unit": "ms", "thor_quoted": quoted("kv_prefill_standalone_ms"),
         "thor_source": "seed (standalone benchmark); this device's is chapter 3's, which runs after this chapter",
         "measured": None,
         "floor": prefill_floor_ms},
        {"quantity": "the seed's floor (weights / bandwidth)", "unit": "ms", "thor_quoted": quoted("weight_read_floor_ms"),
         "thor_source": f"seed: 3.96 GB / {seed_floor_bw:.0f} GB/s"},
    ]
