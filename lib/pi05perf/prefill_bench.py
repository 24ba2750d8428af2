"""Measuring the prefill: every variant checked against fp32, then timed.

Variants of the same 18-layer Gemma-2B prefill (eager, fused projections, CUDA graph,
torch.compile), its components one by one, and the matmul shapes behind them.
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from . import flops as fl
from .check import relative_error
from .config import TransformerConfig
from .model import GemmaLM, apply_rope, attend, fuse_projections, init_weights_, rope_tables
from .timing import Graphed, gbps, tflops, time_fn
from .log import progress

Prefill = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def exact_fp32():
    """fp32 references must not silently use TF32 matrix units."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def build_llm(cfg: TransformerConfig, device: torch.device, dtype: torch.dtype, fused: bool = False,
              seed: int = 0) -> GemmaLM:
    """Seeded random weights, identical for every dtype and fusion (init in fp32, then cast)."""
    with torch.device(device):
        model = GemmaLM(cfg)
    init_weights_(model, seed)
    if fused:
        fuse_projections(model)
    return model.to(dtype).eval().requires_grad_(False)


def output_of(model: GemmaLM) -> Prefill:
    """The prefill as a function of the embeddings: final hidden plus the last layer's K, so a
    wrong cache is caught too."""
    def run(x: torch.Tensor) -> torch.Tensor:
        hidden, kv = model.prefill(x)
        return torch.cat([hidden.flatten(), kv[-1][0].flatten()])
    return run


def check_and_time(name: str, fn: Prefill, reference: Prefill, make_input: Callable[[], torch.Tensor],
                   device: torch.device, dtype: torch.dtype, repeats: int, tolerance: float,
                   cuda_graph: bool = False) -> dict:
    """Check `fn` against the fp32 `reference` on two fresh random inputs, then time it."""
    errors = []
    for _ in range(2):
        x = make_input()
        with torch.no_grad(), exact_fp32():
            ref = reference(x.float())
        with torch.no_grad():
            out = fn(x.to(dtype)).clone()
        errors.append(relative_error(out, ref))
    err = max(errors)
    if not err <= tolerance:
        raise AssertionError(f"{name}: relative error {err:.3e} against fp32 exceeds {tolerance:g}")
    x = make_input().to(dtype)
    with torch.no_grad():
        t = time_fn(lambda: fn(x), device, repeats, cuda_graph=cuda_graph)
    return {"variant": name, "rel_err_vs_fp32": err, **t.as_dict()}


def prefill_variants(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
                     repeats: int, variants: list[str], tolerance: float,
                     log=progress) -> tuple[pd.DataFrame, dict[str, Prefill]]:
    """Time the named variants of the prefill: eager, eager_fused, cuda_graph (fused),
    compile (default mode), compile_cuda_graph (default mode inside one CUDA graph),
    compile_max_autotune (includes inductor's CUDA graphs); all but eager use fused projections.
    Returns the table and the checked callables (to profile the winner)."""
    gen = torch.Generator(device=device).manual_seed(1234)
    make_input = lambda: torch.randn(1, tokens, cfg.width, device=device, generator=gen)
    with exact_fp32():
        reference = output_of(build_llm(cfg, device, torch.float32))
        ref_model = reference  # keeps the fp32 weights alive for the checks below
    rows = []
    models = {}
    timed: dict[str, Prefill] = {}
    for name in variants:
        fused = name != "eager"
        if fused not in models:
            models[fused] = build_llm(cfg, device, dtype, fused=fused)
        fn = output_of(models[fused])
        if name == "cuda_graph":
            if device.type != "cuda":
                log(f"skip {name}: no CUDA graphs on {device}")
                continue
            fn = Graphed(fn, [make_input().to(dtype)])
        elif name.startswith("compile"):
            mode = "max-autotune" if "max_autotune" in name else "default"
            if device.type != "cuda" and (mode != "default" or "graph" in name):
                log(f"skip {name}: needs a GPU")
                continue
            compiled = torch.compile(fn, mode=mode, fullgraph=True)
            if name.endswith("cuda_graph"):  # our own graph around the compiled kernels
                fn = Graphed(compiled, [make_input().to(dtype)])
            else:
                fn = lambda x, c=compiled: c(x).clone()
        log(f"checking and timing {name} ...")
        rows.append(check_and_time(name, fn, ref_model, make_input, device, dtype, repeats, tolerance))
        timed[name] = fn
        log(f"  {rows[-1]['variant']}: {rows[-1]['median_ms']:.3f} ms, rel err {rows[-1]['rel_err_vs_fp32']:.2e}")
    return pd.DataFrame(rows), timed


def component_timings(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
                      repeats: int) -> pd.DataFrame:
    """One layer taken apart: each component timed alone on random inputs (L2 flushed), times
    the number of layers. Components: qkv, rope, attention, o_proj, gate_up (+GeGLU), down_proj,
    norms_residual."""
    one = cfg.with_depth(1)
    layer = build_llm(one, device, dtype).layers[0]
    attn, mlp = layer.attn, layer.mlp
    x = torch.randn(1, tokens, cfg.width, device=device, dtype=dtype)
    rope = rope_tables(torch.arange(tokens, device=device)[None], cfg.head_dim)
    q, k, v = attn.project(x)
    o_in = torch.randn(1, tokens, cfg.q_dim, device=device, dtype=dtype)
    h = torch.randn(1, tokens, cfg.mlp_dim, device=device, dtype=dtype)

    def gate_up():
        return F.gelu(mlp.gate_proj(x), approximate="tanh") * mlp.up_proj(x)

    def norms_residual():
        y = x + layer.input_norm(x)
        return y + layer.post_attn_norm(y)

    parts = {
        "qkv_proj": lambda: attn.project(x),
        "rope": lambda: (apply_rope(q, rope), apply_rope(k, rope)),
        "attention": lambda: attend(q, k, v),
        "o_proj": lambda: attn.o_proj(o_in),
        "gate_up_geglu": gate_up,
        "down_proj": lambda: mlp.down_proj(h),
        "norms_residual": norms_residual,
    }
    ops = {o.name: o for o in fl.layer_ops(cfg, tokens)}
    op_groups = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "rope": ["rope"],
                 "attention": ["attn_scores", "attn_values"], "o_proj": ["o_proj"],
                 "gate_up_geglu": ["gate_proj", "up_proj", "gelu_mul"], "down_proj": ["down_proj"],
                 "norms_residual": ["input_norm", "post_attn_norm", "residual"]}
    rows = []
    with torch.no_grad():
        for name, fn in parts.items():
            t = time_fn(fn, device, repeats)
            group = [ops[o] for o in op_groups[name] if o in ops]
            rows.append({"component": name, "flops": sum(o.flops for o in group) * cfg.depth,
                         "bytes": sum(o.bytes for o in group) * cfg.depth,
                         "ms_per_layer": t.median_ms, "p25_ms": t.p25_ms, "p75_ms": t.p75_ms,
                         "ms_all_layers": t.median_ms * cfg.depth})
    return pd.DataFrame(rows)


def splitk_linear(x: torch.Tensor, w_t: torch.Tensor, splits: int) -> torch.Tensor:
    """x[M,K] @ w_t[K,N] as `splits` partial products over K in one batched GEMM, then summed in
    fp32: `splits` times more output tiles for a GEMM whose N is too small to fill the SMs, at
    the price of writing and re-reading `splits` partial outputs."""
    M, K = x.shape
    xs = x.view(M, splits, K // splits).transpose(0, 1).contiguous()
    parts = torch.bmm(xs, w_t.view(splits, K // splits, w_t.shape[1]))
    return parts.sum(0, dtype=torch.float32).to(x.dtype)


TILE = re.compile(r"(\d{2,3})x(\d{2,3})(?:x(\d{2,3}))?")


def kernel_tile(kernel: str) -> tuple[int, int] | None:
    """The output tile a GEMM kernel's name declares (cuBLAS `..._128x256x64_...`, nvjet
    `nvjet_tst_128x256_64x4_...`, CUTLASS `..._128x128_...`), or None when the name has none.
    cuBLAS works column-major, so the tile's first side may run along N rather than M."""
    m = TILE.search(kernel)
    return (int(m.group(1)), int(m.group(2))) if m else None


_SPLIT = re.compile(r"split_?k|stream_?k", re.IGNORECASE)


def declared_split(kernel: str) -> str | None:
    """The K-splitting schedule a GEMM kernel's name declares ("split-K" for nvjet/cuBLAS
    `..._splitK_...`, "stream-K" for `..._streamk_...`), None when its name declares none. The
    names give no split factor: a kernel that declares one runs a grid the no-split tile count
    (`flops.waves` with split_k=1) does not describe."""
    m = _SPLIT.search(kernel or "")
    return None if m is None else ("stream-K" if m[0].lower().startswith("stream") else "split-K")


#: What each of `prefill_variants`' variants is, in words for the page.
VARIANT_WORDS: dict[str, str] = {
    "eager": "eager PyTorch, host overhead included", "eager_fused": "eager PyTorch, fused projections",
    "cuda_graph": "eager modules, fused projections, captured in one CUDA graph",
    "compile": "torch.compile (default mode), launched from the host",
    "compile_cuda_graph": "torch.compile (default mode), captured in one CUDA graph",
    "compile_max_autotune": "torch.compile max-autotune, inductor's own CUDA graphs"}

LINEAR_LAYOUT = "linear (W[N,K], x@W.T)"  #: `matmul_sweep`'s nn.Linear layout (the weight as nn.Linear keeps it)


def tile_of(row) -> tuple[int, int]:
    """The (M, N) tile of a `matmul_sweep` row, from its `tile` column ("128x256")."""
    return tuple(int(v) for v in str(row.tile).split("x"))


def down_proj_tiles(sweep: pd.DataFrame | None, tol: float = 0.15) -> dict | None:
    """Chapter 3's down_proj/gate_proj comparison from its `matmul_sweep` table (computed by the
    chapter and read back from its results by the verdict): the measured rate ratio (nn.Linear layout), what wave quantisation
    predicts with the tiles cuBLAS's kernel names declare (tiles along (M, N) and along (N, M)),
    which predictions fall within `tol` of the measurement, and the best down_proj layout.
    None where the run lacks the table or either GEMM."""
    if sweep is None or sweep.empty or "gemm" not in sweep:
        return None
    lin = sweep[sweep.layout == LINEAR_LAYOUT].set_index("gemm")
    if not {"down_proj", "gate_proj"} <= set(lin.index):
        return None
    kd, kg = lin.loc["down_proj"], lin.loc["gate_proj"]
    out: dict = {"down_tflops": float(kd.tflops), "gate_tflops": float(kg.tflops),
                           "ratio": float(kd.tflops / kg.tflops), "same_kernel": kd.get("kernel") == kg.get("kernel"),
                           "predicted": {}, "explained": [],
                           "down_proj_kernel": str(kd.get("kernel", "")), "gate_proj_kernel": str(kg.get("kernel", ""))}
    downs = sweep[sweep.gemm == "down_proj"]
    best = downs.loc[downs.tflops.idxmax()]
    out["best_layout"], out["best_tflops"] = str(best.layout), float(best.tflops)
    try:
        sms = round(float(kd.tiles) / float(kd.waves))  # the chapter's SM count: waves = tiles / SMs
        mn = lambda r: (int(r.M), int(r.N))  # noqa: E731
        for name, flip in (("(M, N)", False), ("(N, M)", True)):
            d, g = (mn(r)[::-1] if flip else mn(r) for r in (kd, kg))
            out["predicted"][name] = (fl.waves(*d, sms, *tile_of(kd))["sm_utilisation"]
                                      / fl.waves(*g, sms, *tile_of(kg))["sm_utilisation"])
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
        return out  # an older table without tiles: the measured ratio only
    out["explained"] = [o for o, p in out["predicted"].items() if abs(p / out["ratio"] - 1) <= tol]
    return out


def down_proj_text(mm: pd.DataFrame) -> str:
    """Chapter 3's reading of down_proj against gate_proj on a GPU, in markdown: the kernels cuBLAS
    ran (from `matmul_sweep`'s table `mm`), their rates, what wave quantisation predicts with the
    tiles the names declare, and the best split-K layout."""
    from . import profiling
    from .timing import iqr_overlap

    lin = LINEAR_LAYOUT
    down, gate = (mm[mm.gemm == g].set_index("layout") for g in ("down_proj", "gate_proj"))
    kd, kg = down.loc[lin], gate.loc[lin]
    dp = down_proj_tiles(mm)  # the verdict reads the same comparison back from the results
    measured_ratio, predicted, explained = dp["ratio"], dp["predicted"], dp["explained"]
    along = ", ".join("tiles along " + o.strip("()") for o in explained)
    splits = {g: declared_split(k.kernel) for g, k in (("down_proj", kd), ("gate_proj", kg))}
    split_words = " and ".join(f"{g}'s kernel declares {kind}" for g, kind in splits.items() if kind)
    if explained and not split_words:
        wave_verdict = (f"That matches the measurement within 15% ({along}): the gap is the last wave's "
                        "idle SMs.")
    elif explained:
        wave_verdict = (f"That matches the measurement within 15% ({along}), but {split_words} (its "
                        "factor is not in the name), which the no-split tile count does not describe: the match does not "
                        "show that the gap is the last wave's idle SMs, and the book leaves the gap unexplained.")
    elif split_words:
        wave_verdict = (f"Neither matches the measurement within 15%. That is no test of wave quantisation: {split_words} "
                        "(its factor is not in the name), and the no-split tile count does not describe the grid such a "
                        "kernel runs. The gap stays unexplained here.")
    else:
        wave_verdict = ("Neither matches the measurement within 15%: the tile count does not explain the gap here, and "
                        "the book leaves it unexplained.")
    top = down.tflops.idxmax()
    best_words = (f"no other layout beats nn.Linear's own ({kd.tflops:.0f} TFLOP/s)." if top == lin else
                  f"the best down_proj layout here is **{top}** at {down.tflops.max():.0f} TFLOP/s "
                  f"({down.tflops.max() / kd.tflops:.2f}× nn.Linear{'; within the noise' if iqr_overlap(down, top, lin) else ''}).")
    return f"""**This device.** As nn.Linear, cuBLAS ran down_proj with `{profiling.short_kernel_name(kd.kernel)}`
({kd.tflops:.0f} TFLOP/s) and gate_proj with `{profiling.short_kernel_name(kg.kernel)}` ({kg.tflops:.0f} TFLOP/s):
down_proj reaches {measured_ratio:.2f}× gate_proj's rate{" with a different kernel" if kd.kernel != kg.kernel else " with the same kernel"}.
With the tiles those names declare{"" if kd.tile_named and kg.tile_named else " (where a name declares none, 128×256 is assumed)"}
and no split over K, wave quantisation predicts {predicted["(M, N)"]:.2f}× (tiles along M, N) or {predicted["(N, M)"]:.2f}× (along N, M, as
column-major cuBLAS may lay them). {wave_verdict}
Split-K by hand (in the table above) is kept as measured: {best_words}{autotune_text(down)}
Counted the seed's way (weight bytes over time) down_proj moves {kd.weight_gbps:.0f} GB/s, far below the copy
bandwidth: it is computing, not reading."""


AUTOTUNE_LAYOUT = "max-autotune (inductor)"  #: `matmul_sweep`'s inductor-compiled layout


def autotune_text(rows: pd.DataFrame) -> str:
    """One GEMM's `matmul_sweep` rows (indexed by layout): where inductor's max-autotune call ran
    the same kernel as nn.Linear, whether its extra time is the GPU's or the host's, from the
    two rows' kernel durations (`kernel_ms`). Empty where there is no such row or no kernel time."""
    if AUTOTUNE_LAYOUT not in rows.index or LINEAR_LAYOUT not in rows.index or "kernel_ms" not in rows:
        return ""
    at, lin = rows.loc[AUTOTUNE_LAYOUT], rows.loc[LINEAR_LAYOUT]
    if not at.kernel_ms == at.kernel_ms or not lin.kernel_ms == lin.kernel_ms:
        return ""
    same = at.kernel == lin.kernel
    extra, extra_gpu = at.median_ms - lin.median_ms, at.kernel_ms - lin.kernel_ms
    lead = (f" Inductor's max-autotune ran {'the same kernel as nn.Linear' if same else 'a kernel of its own choice'}: "
            f"its timed call takes {at.median_ms:.4f} ms against nn.Linear's {lin.median_ms:.4f} ms, its kernels "
            f"{at.kernel_ms:.4f} ms against {lin.kernel_ms:.4f} ms (one profiled call each, summed kernel durations)")
    if extra > 0.25 * lin.median_ms and extra_gpu < 0.5 * extra:
        return (lead + f"; of the {extra:.4f} ms it takes more, the kernels account for {max(extra_gpu, 0.0):.4f} ms: "
                "the rest is the compiled call's host overhead (guards, wrapper, launch), which a GEMM this short cannot "
                "hide — not a GPU difference.")
    return lead + "."


def top_kernel_and_ms(fn: Callable[[], object], device: torch.device) -> tuple[str, float]:
    """The kernel (on a CPU: the op) that takes most of one call of `fn`, and the summed duration
    (ms) of all its kernels (copies and memsets left out; on a CPU: the ops' self time): the call's
    GPU time, without the host."""
    from .profiling import kernel_profile

    prof = kernel_profile(fn, device, runs=1)
    prof = prof[prof.group != "memcpy / memset"]
    return (str(prof.kernel.iloc[0]), float(prof.total_ms.sum())) if len(prof) else ("", float("nan"))


def matmul_sweep(shapes: dict[str, tuple[int, int, int]], device: torch.device, dtype: torch.dtype,
                 repeats: int, splits: tuple[int, ...] = (1, 2, 4), sms: int | None = None,
                 autotune: tuple[str, ...] = (), kernels: bool = True) -> pd.DataFrame:
    """Each (M, N, K) as nn.Linear lays it out (weight [N,K], "x @ W.T"), as a row-major
    [K,N] weight ("x @ W"), split over K, and (for the shapes named in `autotune`, on a GPU)
    as the GEMM inductor's max-autotune picks among its Triton tile configs and cuBLAS;
    each checked against fp32, then timed. With `kernels`, one profiled call names the kernel
    that ran (`kernel`), sums its kernels' durations (`kernel_ms`: the GPU's time, beside the
    timed call's, which also holds what the host adds) and reads the tile its name declares (`tile`; 128x256 assumed when the name
    has none, `tile_named` False), from which the tile and wave counts are computed: with the
    tile along (M, N) (`tiles`, `waves`) and along (N, M) (`tiles_if_transposed`)."""
    sms = sms or (torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1)
    rows = []
    for label, (M, N, K) in shapes.items():
        x = torch.randn(M, K, device=device, dtype=dtype)
        w = torch.randn(N, K, device=device, dtype=dtype) / math.sqrt(K)
        w_t = w.t().contiguous()
        with exact_fp32():
            ref = x.float() @ w.float().t()
        cases = {LINEAR_LAYOUT: lambda: F.linear(x, w), "row-major (W[K,N], x@W)": lambda: x @ w_t}
        for s in splits:
            if s > 1 and K % s == 0:
                cases[f"split-K {s}"] = lambda s=s: splitk_linear(x, w_t, s)
        if label in autotune and device.type == "cuda":
            tuned = torch.compile(lambda a, b: F.linear(a, b), mode="max-autotune-no-cudagraphs", dynamic=False)
            cases["max-autotune (inductor)"] = lambda: tuned(x, w)
        for layout, fn in cases.items():
            err = relative_error(fn(), ref)
            if err > 2e-2:
                raise AssertionError(f"{label} {layout}: relative error {err:.2e}")
            t = time_fn(fn, device, repeats)
            split = int(layout.split()[-1]) if layout.startswith("split") else 1
            kernel, kernel_ms = top_kernel_and_ms(fn, device) if kernels else ("", float("nan"))
            tile = kernel_tile(kernel) or (128, 256)
            rows.append({"gemm": label, "M": M, "N": N, "K": K, "layout": layout, **t.as_dict(),
                         "tflops": tflops(2 * M * N * K, t), "weight_gbps": gbps(N * K * x.element_size(), t),
                         "rel_err": err, "kernel": kernel, "kernel_ms": kernel_ms, "tile": "x".join(map(str, tile)),
                         "tile_named": kernel_tile(kernel) is not None,
                         **fl.waves(M, N, sms, *tile, split_k=split),
                         "tiles_if_transposed": fl.waves(N, M, sms, *tile, split_k=split)["tiles"]})
    return pd.DataFrame(rows)


def time_layer_ops(cfg: TransformerConfig, tokens: int, device: torch.device, dtype: torch.dtype,
                   repeats: int) -> pd.DataFrame:
    """Each matmul of one layer timed alone as nn.Linear on random data, attention as one SDPA
    call: attained TFLOP/s and intensity (the op's own bytes) for a roofline plot."""
    rows = []
    ops = fl.layer_ops(cfg, tokens)
    for op in ops:
        if op.flops == 0 or op.name.startswith("attn"):
            continue
        x = torch.randn(op.m, op.k, device=device, dtype=dtype)
        w = torch.randn(op.n, op.k, device=device, dtype=dtype)
        t = time_fn(lambda: F.linear(x, w), device, repeats)
        rows.append({"op": op.name, "flops": op.flops, "bytes": op.bytes, **t.as_dict()})
    attn = [o for o in ops if o.name.startswith("attn")]
    q = torch.randn(1, cfg.num_heads, tokens, cfg.head_dim, device=device, dtype=dtype)
    k = torch.randn(1, cfg.num_kv_heads, tokens, cfg.head_dim, device=device, dtype=dtype)
    t = time_fn(lambda: attend(q, k, k), device, repeats)
    rows.append({"op": "attention (QKᵀ + AV)", "flops": sum(o.flops for o in attn),
                 "bytes": sum(o.bytes for o in attn), **t.as_dict()})
    table = pd.DataFrame(rows)
    table["intensity"] = table.flops / table.bytes
    table["tflops"] = table.flops / (table.median_ms * 1e-3) / 1e12
    return table


def _check_then_time(name: str, fn: Prefill, reference: Prefill, x: torch.Tensor, dtype: torch.dtype,
                     device: torch.device, repeats: int, tolerance: float) -> dict:
    with torch.no_grad(), exact_fp32():
        ref = reference(x.float())
    with torch.no_grad():
        err = relative_error(fn(x.to(dtype)), ref)
    if not err <= tolerance:
        raise AssertionError(f"{name}: relative error {err:.3e} against fp32 exceeds {tolerance:g}")
    xd = x.to(dtype)
    with torch.no_grad():
        t = time_fn(lambda: fn(xd), device, repeats)
    return {"rel_err_vs_fp32": err, **t.as_dict()}


def layer_token_sweep(cfg: TransformerConfig, tokens_list: list[int], device: torch.device, dtype: torch.dtype,
                      repeats: int, floors_for: list, tolerance: float = 3e-2, graph: bool | None = None,
                      log=progress) -> pd.DataFrame:
    """One layer and the whole `cfg.depth` stack timed at each token count, beside each device's
    floor per layer. On a GPU each is captured in a CUDA graph (`timing.Graphed`) and its replays
    are timed, so host dispatch is out of the figure; one eager layer is kept as the host-overhead
    reference. Without CUDA (or with graph=False) only the eager series exist, labelled so.
    Every timed callable is first checked against the float32 model on a fresh random input.
    Columns: tokens, series, layers, median_ms, p25_ms, p75_ms, per_layer_ms, rel_err_vs_fp32,
    error (a failed measurement keeps its row, with NaN times and the error text)."""
    graph = device.type == "cuda" if graph is None else graph
    depths = [1, cfg.depth] if graph else [1]
    gen = torch.Generator(device=device).manual_seed(4321)
    rows = []
    for depth in depths:
        sub = cfg.with_depth(depth)
        with exact_fp32():
            reference = output_of(build_llm(sub, device, torch.float32))
        fn = output_of(build_llm(sub, device, dtype))
        kinds = (["CUDA graph"] if graph else []) + (["eager"] if depth == 1 else [])
        for t in tokens_list:
            for kind in kinds:
                what = f"{depth} layer{'s' if depth > 1 else ''}, {kind}" + (" (host overhead)" if kind == "eager" else "")
                x = torch.randn(1, t, cfg.width, device=device, generator=gen)
                try:
                    timed = Graphed(fn, [x.to(dtype)]) if kind == "CUDA graph" else fn
                    r = _check_then_time(what, timed, reference, x, dtype, device, repeats, tolerance)
                    err = ""
                except Exception as exc:  # noqa: BLE001 - recorded and shown, the sweep goes on
                    log(f"{what} at {t} tokens failed: {exc}")
                    r, err = {"median_ms": float("nan"), "p25_ms": float("nan"), "p75_ms": float("nan")}, str(exc)[:300]
                rows.append({"tokens": t, "series": what, "layers": depth, **r, "per_layer_ms": r["median_ms"] / depth,
                             "error": err})
        del reference, fn
    for t in tokens_list:
        cost = fl.stack_cost(cfg.with_depth(1), t)
        for d in floors_for:
            ms = fl.roofline_time_s(cost["flops"], cost["min_bytes"], d.bf16_tflops, d.bandwidth_gbps) * 1e3
            rows.append({"tokens": t, "series": f"floor: {d.name}", "layers": 1, "median_ms": ms, "per_layer_ms": ms,
                         "error": ""})
    return pd.DataFrame(rows)


def component_floors(cfg: TransformerConfig, tokens: int, peak_tflops: float, copy_gbps: float) -> dict[str, float]:
    """Floor (ms, all layers) of each profiled group (`profiling.gemma_gemms` names): each op's
    FLOPs over the peak or its bytes over the bandwidth, whichever is longer. The elementwise
    floor counts every norm, RoPE, GeGLU product and residual add as its own kernel (its
    activations read and written once); a fused kernel can move fewer bytes than that."""
    groups = {"qkvo_proj": ("q_proj", "k_proj", "v_proj", "o_proj"), "gate_up_proj": ("gate_proj", "up_proj"),
              "down_proj": ("down_proj",), "attention": ("attn_scores", "attn_values"),
              "elementwise": ("input_norm", "post_attn_norm", "rope", "gelu_mul", "residual")}
    ops = {o.name: o for o in fl.layer_ops(cfg, tokens)}
    return {g: cfg.depth * 1e3 * sum(fl.roofline_time_s(ops[n].flops, ops[n].bytes, peak_tflops, copy_gbps)
                                      for n in names if n in ops) for g, names in groups.items()}


def target_gap_text(groups: pd.DataFrame, timed_ms: float, floor_ms: float, gaps_ms: float | None,
                    target_x: float = 1.25) -> str:
    """How far a timed prefill is from `target_x` times its floor and where that time sits: each
    profiled group's excess over its own floor (`profiling.by_group`: total_ms, floor_ms), largest
    first, and the gaps between kernels."""
    target = target_x * floor_ms
    under = groups[groups.total_ms < groups.floor_ms]
    caveat = "".join(f" **{r.group} ran at {r.total_ms / r.floor_ms:.2f}× its floor**: its kernels beat the measured "
                     f"ceiling, which is therefore at least {100 * (r.floor_ms / r.total_ms - 1):.1f}% low for them, and "
                     "every floor of this run is that much long." for r in under.itertuples())
    if timed_ms <= target:
        return f"The prefill meets {target_x:g}× its floor ({timed_ms:.2f} ms against {target:.2f} ms).{caveat}"
    excess = (groups.total_ms - groups.floor_ms).set_axis(groups.group).sort_values(ascending=False)
    over = "; ".join(f"{g} {e:+.2f} ms" for g, e in excess.items() if e > 0.005)
    gaps = f"; the gaps between kernels {gaps_ms:.2f} ms" if gaps_ms is not None else ""
    return (f"{target_x:g}× the floor is {target:.2f} ms; the timed prefill is {timed_ms - target:.2f} ms above it. "
            f"Over their own floors: {over or 'no group'}{gaps}. Those are the places to take it from.{caveat}")
