"""Kernel-level profiles: where the device time of one call goes, grouped by the op each kernel serves.

`kernel_profile(fn, device)` runs `fn` under `torch.profiler` and returns one row per
(kernel, group, op, weight shape) with its calls and device time per run. Each CUDA kernel is
linked to the CPU op that launched it (the profiler's correlation id) and to that op's
ancestors, innermost first; a *classifier* turns (kernel name, op chain) into a group.

- Eager PyTorch: `nn.Linear` launches its GEMM from `aten::mm`/`aten::addmm`, whose recorded
  input shapes give the weight's (K, N), so q/k/v/o, gate/up and down are told apart by shape.
- `torch.compile` (profiled WITHOUT CUDA-graph replay): inductor calls cuBLAS through
  `extern_kernels.mm`, i.e. `aten::mm` with its shapes, and SDPA through the aten attention op;
  its own fused Triton kernels (norms, RoPE, residual adds, GeGLU) are the elementwise group.
- Under CUDA-graph replay the kernels are the same but the launching ops are gone: kernels
  then fall back to being grouped by name only.
- On a CPU the profiler records CPU ops only: each op's self time stands in for a kernel, so
  the same grouping (and the smoke run) exercises the same code.

A classifier is any `f(kernel_name, ops) -> group`, where `ops` is the list of
(op_name, input_shapes) from the launching op outwards (user `record_function` labels
included, so a caller can group by its own labels). `gemm_classifier(cfg)` is the default for
a Gemma stack; `classify_by_name` is the fallback every classifier may call.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections import Counter
from typing import Callable, Iterator, Sequence

import pandas as pd
import torch

from .config import TransformerConfig

OpChain = Sequence[tuple[str, list]]
Classifier = Callable[[str, OpChain], str]

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::_scaled_mm",
            "aten::_int_mm", "aten::baddbmm")
ATTENTION_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")
# Kernel-name patterns. Attention first (flash kernels contain "mm"); inductor's pointwise and
# reduction kernels are elementwise even when named after the matmul they follow (triton_poi_fused_addmm_...);
# names matching nothing are "other" (a profile of a Gemma stack has none of those).
ATTENTION_NAMES = ("flash", "fmha", "sdpa", "attention", "attn", "split_kv")  # split_kv: kernels.decode_attention
INDUCTOR_ELEMENTWISE = ("triton_poi", "triton_red", "triton_per")
MATMUL_NAMES = ("gemm", "cutlass", "xmma", "nvjet", "cublas", "triton_tem", "_mm_", "splitk", "wgmma", "gemv",
                "scaled_mm", "matmul")
MATMUL_PREFIXES = ("sm90_", "sm80_", "sm100_", "ampere_", "hopper_")
ELEMENTWISE_NAMES = ("elementwise", "vectorized", "reduce", "norm", "gelu", "copy", "fill", "cat", "index", "mul",
                     "add", "rope", "where", "pow", "mean", "rsqrt", "softmax")
SKIP = ("ProfilerStep", "cudaGraph", "cudaDeviceSynchronize", "cudaStreamSynchronize")


def gemm_weight_shape(op: str, shapes: list | None) -> tuple[int, int] | None:
    """(K, N) of the weight a GEMM op multiplies by, from its recorded input shapes."""
    try:
        if op == "aten::linear":
            n, k = shapes[1][-2:]
            return int(k), int(n)
        w = shapes[2] if op in ("aten::addmm", "aten::baddbmm") else shapes[1]
        k, n = w[-2:]
        return int(k), int(n)
    except (TypeError, IndexError, ValueError):
        return None


def classify_by_name(kernel: str) -> str:
    """attention, matmul, elementwise, memcpy / memset or other, from a CUDA kernel's name alone
    (what is left under CUDA-graph replay, where the launching ops are gone)."""
    name = kernel.lower()
    if any(p in name for p in ATTENTION_NAMES):
        return "attention"
    if name.startswith(INDUCTOR_ELEMENTWISE):
        return "elementwise"
    if any(p in name for p in MATMUL_NAMES) or name.startswith(MATMUL_PREFIXES):
        return "matmul"
    if "memcpy" in name or "memset" in name:
        return "memcpy / memset"
    if any(p in name for p in ELEMENTWISE_NAMES):
        return "elementwise"
    return "other"


def gemm_classifier(gemms: dict[tuple[int, int], str], other_gemm: str = "matmul (other)") -> Classifier:
    """A classifier that names each GEMM by its weight's (K, N) from `gemms`, puts attention ops
    in "attention" and everything else in `classify_by_name`'s groups."""
    def classify(kernel: str, ops: OpChain) -> str:
        for op, shapes in ops:  # innermost first: the op that launched the kernel
            if op in GEMM_OPS:
                return gemms.get(gemm_weight_shape(op, shapes), other_gemm)
            if any(a in op for a in ATTENTION_OPS):
                return "attention"
        group = classify_by_name(kernel)
        return other_gemm if group == "matmul" else group
    return classify


def gemma_gemms(cfg: TransformerConfig) -> dict[tuple[int, int], str]:
    """(K, N) -> component for one Gemma layer, fused or not. q_proj and o_proj have the same
    shape when q_dim == width (Gemma-2B), so the attention projections form one group."""
    W, Q, KV, F = cfg.width, cfg.q_dim, cfg.kv_dim, cfg.mlp_dim
    table = {(W, Q): "qkvo_proj", (W, KV): "qkvo_proj", (W, Q + 2 * KV): "qkvo_proj", (Q, W): "qkvo_proj",
             (W, F): "gate_up_proj", (W, 2 * F): "gate_up_proj"}
    table[(F, W)] = "down_proj"  # last: never shadowed by a projection of the same shape
    return table


def default_classifier(cfg: TransformerConfig) -> Classifier:
    return gemm_classifier(gemma_gemms(cfg))


def _chain(evt, max_depth: int = 32) -> list[tuple[str, list]]:
    out = []
    while evt is not None and len(out) < max_depth:
        out.append((evt.name, evt.input_shapes or []))
        evt = evt.cpu_parent
    return out


def _weight_label(ops: OpChain) -> str:
    for op, shapes in ops:
        if op in GEMM_OPS:
            ws = gemm_weight_shape(op, shapes)
            return f"{ws[0]}x{ws[1]}" if ws else ""
    return ""


@contextlib.contextmanager
def quiet_profiler() -> Iterator[None]:
    """Silence the profiler's own chatter while it runs: Kineto's C++ log lines on file
    descriptor 2 (which a notebook would print into the page) and its Python warnings."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def is_kernel(event) -> bool:
    """A device event that is a kernel (or copy/memset), not a user annotation: record_function
    ranges, such as inductor's "## Call CompiledFxGraph … ##", also appear on the GPU timeline,
    spanning the kernels they enclose, and would count those kernels twice."""
    return (event.device_type == torch.autograd.DeviceType.CUDA
            and not getattr(event, "is_user_annotation", False) and not event.name.startswith("## "))


def kernel_profile(fn: Callable[[], object], device: torch.device | str, runs: int = 5,
                   classify: Classifier | None = None, warmup: int = 1) -> pd.DataFrame:
    """Device time of one call of `fn`, kernel by kernel.

    Columns: kernel, group, op (the launching op), weight_shape ("KxN" for a GEMM),
    calls_per_run, total_ms (device time per run, summed over the calls). On a CPU the rows
    are CPU ops and total_ms is their self time. `fn` is called `warmup` times first, so
    compilation and autotuning stay out of the profile."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    classify = classify or (lambda kernel, ops: classify_by_name(kernel))
    cuda = device.type == "cuda"
    with torch.no_grad():
        for _ in range(warmup):
            fn()
    if cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.no_grad(), quiet_profiler(), profile(activities=activities, record_shapes=True) as prof:
        for _ in range(runs):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.events()
    DeviceType = torch.autograd.DeviceType
    samples: list[tuple[str, float, list]] = []  # (kernel, ms, op chain)
    if cuda:
        # Each kernel is listed under the frontend op that launched it (the profiler's correlation
        # ids); kernels no op launched (CUDA-graph replay) are the device events left over.
        left = Counter((e.name, e.time_range.elapsed_us()) for e in events if is_kernel(e))
        for op in events:
            if op.device_type != DeviceType.CPU or getattr(op, "is_legacy", False):
                continue
            for k in op.kernels:
                if left[(k.name, k.duration)] > 0:
                    left[(k.name, k.duration)] -= 1
                    samples.append((k.name, k.duration / 1e3, _chain(op)))
        samples += [(name, us / 1e3, []) for (name, us), n in left.items() for _ in range(n)]
    else:
        samples = [(e.name, e.self_cpu_time_total / 1e3, _chain(e)) for e in events
                   if e.device_type == DeviceType.CPU and not e.is_async]
    rows: dict[tuple, dict] = {}
    for name, ms, ops in samples:
        if ms <= 0 or name.startswith(SKIP):
            continue
        key = (name, classify(name, ops), ops[0][0] if ops else "", _weight_label(ops))
        r = rows.setdefault(key, {"kernel": key[0], "group": key[1], "op": key[2], "weight_shape": key[3],
                                  "calls_per_run": 0.0, "total_ms": 0.0})
        r["calls_per_run"] += 1  # summed as counts, divided once: 92 calls stay 92, not 91.99999
        r["total_ms"] += ms
    for r in rows.values():
        r["calls_per_run"] /= runs
        r["total_ms"] /= runs
    cols = ["kernel", "group", "op", "weight_shape", "calls_per_run", "total_ms"]
    return pd.DataFrame(list(rows.values()), columns=cols).sort_values("total_ms", ascending=False,
                                                                       ignore_index=True)


def by_group(kernels: pd.DataFrame, floors: dict[str, float] | None = None) -> pd.DataFrame:
    """Per-group device time per run, its share, and (where `floors` names the group) its floor
    and how many times the floor it takes. Columns: group, total_ms, share_pct, floor_ms,
    x_floor_ratio."""
    g = kernels.groupby("group", as_index=False).agg(total_ms=("total_ms", "sum"),
                                                     calls_per_run=("calls_per_run", "sum"))
    g["share_pct"] = 100 * g.total_ms / g.total_ms.sum()
    g["floor_ms"] = g.group.map(floors or {}).astype(float)
    g["x_floor_ratio"] = g.total_ms / g.floor_ms
    return g.sort_values("total_ms", ascending=False, ignore_index=True)[
        ["group", "total_ms", "share_pct", "floor_ms", "x_floor_ratio", "calls_per_run"]]


def short_kernel_name(name: str, width: int = 70) -> str:
    """A kernel name for a table: template arguments and signatures dropped, tile shapes kept."""
    s = re.sub(r"\(.*$", "", name)  # signature
    s = re.sub(r"<.*>", "<…>", s) if len(s) > width else s
    return s if len(s) <= width else s[: width - 1] + "…"


def gemm_kernels(kernels: pd.DataFrame) -> pd.DataFrame:
    """Which kernel ran each GEMM shape: one row per (group, weight shape, kernel) of the GEMM
    rows of a `kernel_profile`, with its device time per call (per_call_ms)."""
    launched = ~kernels.kernel.str.startswith("aten::") | kernels.kernel.isin(GEMM_OPS[:3] + GEMM_OPS[5:])
    mm = kernels[(kernels.weight_shape != "") & launched].copy()  # on a CPU: the GEMM ops, not their views
    mm["per_call_ms"] = mm.total_ms / mm.calls_per_run
    mm["kernel"] = mm.kernel.map(short_kernel_name)
    return mm[["group", "weight_shape", "kernel", "calls_per_run", "per_call_ms"]].reset_index(drop=True)
