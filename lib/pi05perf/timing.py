"""Timing: device events on a GPU, torch.utils.benchmark on a CPU; medians with spread.

On CUDA, `triton.testing.do_bench` times with events and flushes L2 between runs, so a
weight that would not be cache-resident in the real model is not served from L2 here.
With `cuda_graph=True` the function is captured once and its replays are timed
(`do_bench_cudagraph`), which removes launch gaps.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    n: int
    method: str

    @property
    def iqr_ms(self) -> float:
        return self.p75_ms - self.p25_ms

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.median_ms:.3f} ms [IQR {self.p25_ms:.3f}-{self.p75_ms:.3f}, n={self.n}, {self.method}]"


def quartiles(samples: Sequence[float], method: str) -> Timing:
    """Median and interquartile range of timed samples (ms)."""
    xs = sorted(samples)
    if len(xs) == 1:
        return Timing(xs[0], xs[0], xs[0], 1, method)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return Timing(statistics.median(xs), q[0], q[2], len(xs), method)


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device | str, repeats: int = 50, *,
            cuda_graph: bool = False, warmup_ms: float = 25.0) -> Timing:
    """Median and interquartile range of `fn()` over `repeats` timed runs.

    `fn` takes no arguments; rotate inputs inside it (or rely on the L2 flush) where
    cache residency would flatter the result.
    """
    device = torch.device(device)
    if device.type == "cuda":
        import triton.testing as tt

        fn()  # compile / autotune / allocate outside the timed region
        torch.cuda.synchronize()
        one = tt.do_bench(fn, warmup=warmup_ms, rep=max(1.0, warmup_ms), return_mode="median")
        rep_ms = max(10.0, one * repeats)
        if cuda_graph:
            times = tt.do_bench_cudagraph(fn, rep=rep_ms, return_mode="all")
            return quartiles(times, "cuda-graph replay, events")
        times = tt.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
        return quartiles(times, "cuda events, L2 flushed")
    import torch.utils.benchmark as tb

    fn()
    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    samples = [timer.timeit(1).median * 1e3 for _ in range(max(1, repeats))]
    if cuda_graph:
        return quartiles(samples, "cpu wall clock (no graphs on cpu)")
    return quartiles(samples, "cpu wall clock")


def graphed_kernel_latency(device: torch.device | str, kernels: int = 200, repeats: int = 50) -> Timing:
    """Time per kernel of one CUDA graph of `kernels` dependent kernels that each add one to a
    one-element tensor: what a kernel of a graphed step costs on this device however little it
    does (launch, one wave, completion before the next may start). Per-kernel quartiles."""
    device = torch.device(device)
    if device.type != "cuda":
        raise RuntimeError(f"a graphed kernel's latency needs a CUDA device, not {device}")
    x = torch.randn(1, device=device)
    start = x.clone()
    for _ in range(3):  # load the kernel outside the capture
        x.add_(1.0)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(kernels):
            x.add_(1.0)
    x.copy_(start)
    graph.replay()
    torch.cuda.synchronize(device)
    if not torch.allclose(x, start + kernels):
        raise AssertionError("the graphed kernels did not all run")
    t = time_fn(graph.replay, device, repeats)
    return Timing(t.median_ms / kernels, t.p25_ms / kernels, t.p75_ms / kernels, t.n,
                  f"CUDA graph of {kernels} dependent one-element kernels, per kernel")


def spread_overlaps(a: Timing, b: Timing) -> bool:
    """True when the two interquartile ranges overlap: the difference is noise."""
    return not (a.p75_ms < b.p25_ms or b.p75_ms < a.p25_ms)


def tflops(flops: float, t: Timing) -> float:
    return flops / (t.median_ms * 1e-3) / 1e12


def gbps(bytes_moved: float, t: Timing) -> float:
    return bytes_moved / (t.median_ms * 1e-3) / 1e9


def iqr_overlap(table, a: str, b: str) -> bool:
    """`spread_overlaps` for two rows (by index label) of a table with median/p25/p75 columns."""
    row = lambda k: Timing(table.median_ms[k], table.p25_ms[k], table.p75_ms[k], 0, "")
    return spread_overlaps(row(a), row(b))


def standard_strides(t: torch.Tensor) -> torch.Tensor:
    """`t` contiguous with the default strides, also on its size-1 dims (a view when only
    those differ): compiled code guards on strides, so every path must present the same."""
    if not t.is_contiguous():
        t = t.contiguous()
    strides = torch.empty(t.shape, device="meta").stride()
    return t if t.stride() == strides else t.as_strided(t.shape, strides)


class Graphed:
    """`fn(*inputs)` captured once in a CUDA graph on static copies of `example`; calling it
    copies new inputs in (skipped for the static tensors themselves), replays and returns
    the static outputs. `fn` stays reachable (`.fn`) so the same kernels can be profiled
    without the graph, where the profiler can still tie each kernel to its op."""

    def __init__(self, fn: Callable[..., Any], example: Sequence[torch.Tensor], warmup: int = 3):
        self.fn = fn
        self.inputs = [standard_strides(e.clone()) for e in example]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(warmup):  # compiles / autotunes / loads kernels outside the capture
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.outputs = fn(*self.inputs)

    def __call__(self, *xs: torch.Tensor) -> Any:
        if len(xs) != len(self.inputs):
            raise TypeError(f"graph takes {len(self.inputs)} inputs, got {len(xs)}")
        for s, x in zip(self.inputs, xs):
            if x is not s:
                s.copy_(x)
        self.graph.replay()
        return self.outputs
