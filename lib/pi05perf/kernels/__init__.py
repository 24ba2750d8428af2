"""Standalone Triton kernels for the denoise step (issue 12's levers), benchmarked in chapter 6.

* `gemv_splitk`: y = x @ Wᵀ for a few rows (the 10 action tokens) as a split-K weight stream,
  bf16 or FP8 (per-output-channel scale) weights.
* `decode_attention`: 10 queries x 8 heads over a ~722-token single-KV-head cache, split over
  the cache (flash-decoding) so that every SM has work.

Each module has the kernel, a float32 reference, a check on fresh random inputs and a benchmark
against the library path (cuBLAS, SDPA), as Triton's tutorials do. The split-KV attention is also
an opaque custom op that the expert's attention can use (`attend_split_kv`: chapter 7's
`compile_graph_splitkv`); the GEMV is not wired into the pipeline (in chapter 6 it does not beat
cuBLAS at M = 10).
Triton is imported lazily, so the package imports on a CPU machine without it; under
TRITON_INTERPRET=1 the kernels run on CPU tensors (Triton's interpreter), which is what the
unit tests use.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import torch


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def runnable(device: torch.device | str) -> bool:
    """True when the kernels can run on `device`: CUDA with triton, or CPU under the interpreter."""
    device = torch.device(device)
    if not triton_importable():
        return False
    return (device.type == "cuda" and torch.cuda.is_available()) or (device.type == "cpu" and interpreting())


def check_runnable(device: torch.device | str) -> None:
    if not runnable(device):
        raise RuntimeError(f"Triton kernels need a CUDA device with triton, or TRITON_INTERPRET=1 on CPU "
                           f"(device {device}, triton {'importable' if triton_importable() else 'not installed'})")


def autotuned(kernel: Any, configs: list, key: list[str], prune: Callable, warmup_ms: float, rep_ms: float) -> Any:
    """`triton.autotune` of `kernel` over `configs` (pruned by `prune` before benchmarking) on the
    running GPU, each timed with a short `do_bench` (`warmup_ms`, `rep_ms`) so that a dozen
    configs over a few shapes autotune in seconds rather than minutes. The choice is cached on
    disk where this Triton can (`cache_results`), so a later run on this GPU reuses it."""
    import inspect

    import triton
    import triton.testing

    def bench(kernel_call, quantiles):
        return triton.testing.do_bench(kernel_call, warmup=warmup_ms, rep=rep_ms, quantiles=quantiles)

    cache = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}
    return triton.autotune(configs=configs, key=key, do_bench=bench, prune_configs_by={"early_config_prune": prune},
                           **cache)(kernel)


def copies_past_l2(nbytes: int, device: torch.device | str, cap: int = 512) -> int:
    """How many distinct copies of an operand of `nbytes` to cycle through so that the set is
    twice the L2 cache: each call then streams its operand from device memory, as in the
    18-layer model where no layer's weights are still in L2 when that layer runs again."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20)
    return int(min(cap, max(1, math.ceil(2 * l2 / max(1, nbytes)))))


def time_on_copies(fn: Callable[..., Any], operands: Sequence[torch.Tensor], device: torch.device | str,
                   repeats: int, min_calls: int = 1, clock: str = "events"):
    """`time_per_call` of `fn(*operands)` over as many copies of `operands` as `copies_past_l2`
    asks for (at least `min_calls` on a GPU): the first set is `operands` themselves, the others
    clones, which keep each operand's strides (a column-major weight stays column-major)."""
    n = copies_past_l2(sum(t.nbytes for t in operands), device)
    if torch.device(device).type == "cuda":
        n = max(n, min_calls)
    sets = [tuple(operands)] + [tuple(t.clone() for t in operands) for _ in range(n - 1)]
    return time_per_call([lambda s=s: fn(*s) for s in sets], device, repeats, clock)


def time_per_call(calls: Sequence[Callable[[], Any]], device: torch.device | str, repeats: int,
                  clock: str = "events"):
    """`timing.Timing` of one call: all `calls` (each on its own operand copies, see
    `copies_past_l2`) captured back to back in one CUDA graph, the graph replayed `repeats` times,
    each replay's time divided by the number of calls. No operand is served from L2 by the
    previous call. One capture, so the cost is a few replays of a few hundred microseconds, not an
    autotuned benchmark loop. On a CPU: wall clock of the calls in a row (no graphs there).

    `clock="events"`: each replay between two CUDA events, so the launch gaps of a graphed step
    count. `clock="kernels"`: the summed durations of each replay's kernels as the profiler
    (CUPTI) records them, the measure a kernel profile sums: a ceiling meant to bound profiled
    kernels is timed this way (chapter 3's gate_up kernels ran 3% faster than the same GEMM's
    graphed call)."""
    if clock not in ("events", "kernels"):
        raise ValueError(f"clock must be 'events' or 'kernels', got {clock!r}")
    import time

    from ..timing import Graphed, quartiles

    device = torch.device(device)
    n = len(calls)

    def all_calls():
        for c in calls:
            c()

    if device.type != "cuda":
        all_calls()  # compiles outside the timed region
        samples = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            all_calls()
            samples.append((time.perf_counter() - t0) * 1e3 / n)
        return quartiles(samples, f"cpu wall clock, {n} operand copies")
    graph = Graphed(all_calls, [])  # warm-up (compiles, autotunes) on a side stream, then one capture
    graph()
    torch.cuda.synchronize(device)
    if clock == "kernels":
        return _kernel_time_per_call(graph, n, device, max(5, repeats))
    samples = []
    for _ in range(max(5, repeats)):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / n)
    return quartiles(samples, f"cuda-graph replay of {n} calls on distinct operand copies, events")


def _kernel_time_per_call(replay: Callable[[], Any], n: int, device: torch.device, replays: int):
    """Quartiles over `replays` replays of (summed kernel durations of one replay) / `n`: all
    replays profiled at once, their kernels taken in start order and cut into equal runs (every
    replay of a graph launches the same kernels)."""
    from torch.profiler import ProfilerActivity, profile

    from ..profiling import is_kernel, quiet_profiler
    from ..timing import quartiles

    with quiet_profiler(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            replay()
        torch.cuda.synchronize(device)
    spans = sorted((e.time_range.start, e.time_range.elapsed_us()) for e in prof.events() if is_kernel(e))
    if not spans or len(spans) % replays:
        raise RuntimeError(f"the profiler saw {len(spans)} kernels in {replays} replays of one graph")
    per = len(spans) // replays
    samples = [sum(us for _, us in spans[i * per:(i + 1) * per]) / 1e3 / n for i in range(replays)]
    return quartiles(samples, f"kernel durations (profiler) of a cuda-graph replay of {n} calls on distinct operand copies")


__all__ = ["interpreting", "triton_importable", "runnable", "check_runnable", "autotuned", "copies_past_l2",
           "time_on_copies", "time_per_call"]
