"""lerobot's pi0.5 (`PI05Pytorch`, the PyTorch port of openpi) beside ours: chapter 9's fidelity and timing peer.

Two things live here:

* **Fidelity.** Every parameter tensor of a model, grouped by component (`COMPONENTS`), for
  ours (built on the meta device) and for lerobot's `PI05Pytorch` (the committed table
  `data/reference/lerobot_pi05_params.csv`, written by `python -m pi05perf.peers write` in an
  environment where lerobot imports). `compare_components` lines the two up; each difference
  must be named in `ALLOWED_DIFFERENCES` with the reason.
* **lerobot at run time** (only where it imports: the GPU run, from the carried wheels, see
  `pi05perf.peers`): building `PI05Pytorch` with random weights, its inputs, its stages as
  callables (for `FlopCounterMode` and for timing), the check every timed path passes first,
  and writing the fidelity table (`_write`).

lerobot is never imported at module level: the book's own environment does not have it.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from .check import cosine
from .timing import time_fn
from .log import progress
from .peers import add_peers_path

ROOT = Path(__file__).resolve().parents[2]
PARAMS_CSV = ROOT / "data" / "reference" / "lerobot_pi05_params.csv"

#: Components compared between the two models (the unused LM heads are listed apart).
COMPONENTS = ("vision_tower", "projector", "text_embedding", "gemma_2b", "action_expert", "action_time_proj")
UNUSED = ("lm_head_unused", "expert_lm_head_unused")

#: Differences between our model and lerobot's that are known and kept, with the reason.
#: Keys: (component, what) where what is "count" (parameter count) or "shapes".
ALLOWED_DIFFERENCES: dict[tuple[str, str], str] = {
    ("vision_tower", "shapes"): "position embedding: ours a (1, 256, 1152) Parameter, lerobot an "
                                "nn.Embedding (256, 1152); same numbers, same use",
}


# ----------------------------------------------------------------------------- components
def lerobot_component(name: str) -> str:
    """Component of a `PI05Pytorch` parameter name."""
    if ".vision_tower." in name:
        return "vision_tower"
    if ".multi_modal_projector." in name:
        return "projector"
    if name.endswith("language_model.embed_tokens.weight"):
        return "text_embedding"
    if ".language_model." in name:
        return "gemma_2b"
    if "gemma_expert.lm_head" in name:
        return "expert_lm_head_unused"
    if "paligemma.lm_head" in name:
        return "lm_head_unused"
    if ".gemma_expert." in name:
        return "action_expert"
    if name.split(".")[0] in ("action_in_proj", "action_out_proj", "time_mlp_in", "time_mlp_out"):
        return "action_time_proj"
    raise ValueError(f"unclassified lerobot parameter {name!r}")


def ours_component(name: str) -> str:
    """Component of a `pi05perf.model.Pi05` parameter name."""
    if name.startswith("vision.head."):
        return "projector"  # SigLIP's linear head = PaliGemma's multi_modal_projector
    if name.startswith("vision."):
        return "vision_tower"
    if name.startswith("embed_tokens."):
        return "text_embedding"
    if name.startswith("llm."):
        return "gemma_2b"
    if name.startswith("expert."):
        return "action_expert"
    if name.split(".")[0] in ("action_in_proj", "action_out_proj", "time_mlp_in", "time_mlp_out"):
        return "action_time_proj"
    raise ValueError(f"unclassified parameter {name!r}")


def param_table(model: nn.Module, component_of: Callable[[str], str]) -> pd.DataFrame:
    """One row per parameter tensor (tied tensors once): name, shape, numel, dtype, component."""
    rows = [{"component": component_of(n), "name": n, "shape": "x".join(map(str, p.shape)),
             "numel": p.numel(), "dtype": str(p.dtype).removeprefix("torch.")}
            for n, p in model.named_parameters()]
    return pd.DataFrame(rows)


def ours_meta(horizon: int = 10) -> nn.Module:
    """Our full-size model on the meta device with openpi's vocabulary (the benchmarks use a
    small one: the table is only gathered from)."""
    from .model import Pi05

    with torch.device("meta"):
        return Pi05(action_horizon=horizon)


def ours_param_table() -> pd.DataFrame:
    return param_table(ours_meta(), ours_component)


def load_lerobot_params() -> pd.DataFrame:
    """The committed parameter rows of lerobot's model (kind == 'param')."""
    df = pd.read_csv(PARAMS_CSV, dtype={"shape": str})
    df = df[df.kind == "param"].rename(columns={"value": "numel"})
    df["numel"] = df["numel"].astype("int64")
    return df[["component", "name", "shape", "numel", "dtype"]].reset_index(drop=True)


def load_lerobot_stages() -> pd.DataFrame:
    """The committed FLOP and KV-cache rows (kind in flops, kv_cache_bytes), one per config and stage."""
    df = pd.read_csv(PARAMS_CSV, dtype={"shape": str})
    return df[df.kind != "param"].reset_index(drop=True)


def compare_components(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """Per component: parameter counts of both, the relative difference, whether the tensor
    shapes agree as multisets, and the allow-listed reason for any difference."""
    rows = []
    for comp in COMPONENTS + UNUSED:
        o, t = ours[ours.component == comp], theirs[theirs.component == comp]
        oc, tc = int(o.numel.sum()), int(t.numel.sum())
        diff = 0.0 if oc == tc else 100.0 * abs(oc - tc) / max(oc, tc)
        shapes_equal = sorted(o["shape"].astype(str)) == sorted(t["shape"].astype(str))
        reasons = [ALLOWED_DIFFERENCES.get((comp, w)) for w, bad in (("count", oc != tc),
                                                                       ("shapes", not shapes_equal)) if bad]
        if comp in UNUSED and oc == 0:
            reasons = ["not used at inference (pi0.5 never decodes text): ours has no LM head"]
        rows.append({"component": comp, "ours_count": oc, "lerobot_count": tc, "diff_pct": diff,
                     "ours_tensors_count": len(o), "lerobot_tensors_count": len(t),
                     "shapes_equal": shapes_equal,
                     "allowed": all(r is not None for r in reasons),
                     "reason": "; ".join(r for r in reasons if r) or ("identical" if not reasons else "NOT ALLOWED")})
    return pd.DataFrame(rows)


def mismatch_pct(cmp: pd.DataFrame) -> float:
    """The largest relative parameter-count difference of any compared component (0: identical);
    the unused LM heads are not part of the model that runs."""
    return float(cmp[cmp.component.isin(COMPONENTS)].diff_pct.max())


def shape_differences(ours: pd.DataFrame, theirs: pd.DataFrame, comp: str) -> pd.DataFrame:
    """Shapes present in one model's component and not the other's (counted), for the page."""
    o = ours[ours.component == comp]["shape"].value_counts()
    t = theirs[theirs.component == comp]["shape"].value_counts()
    idx = sorted(set(o.index) | set(t.index))
    df = pd.DataFrame({"shape": idx, "ours_count": [int(o.get(s, 0)) for s in idx],
                       "lerobot_count": [int(t.get(s, 0)) for s in idx]})
    return df[df.ours_count != df.lerobot_count].reset_index(drop=True)


# ----------------------------------------------------------------------------- lerobot
def import_lerobot() -> tuple[Any, Any]:
    """(PI05Pytorch, PI05Config), or ImportError (or whatever lerobot raises) with the reason."""
    add_peers_path()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = importlib.import_module("lerobot.policies.pi05.modeling_pi05")
        cfg = importlib.import_module("lerobot.policies.pi05.configuration_pi05")
    return mod.PI05Pytorch, cfg.PI05Config


def import_error() -> str | None:
    """Why lerobot's pi0.5 does not import here ("Type: message"), or None when it does."""
    try:
        import_lerobot()
    except Exception as e:  # noqa: BLE001 - absent on the CPU machine: the chapter says so
        return f"{type(e).__name__}: {e}"
    return None


def lerobot_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("lerobot")
    except Exception:  # noqa: BLE001 - any failure means "not installed"
        return None


def build_lerobot(chunk: int, device: torch.device | str, dtype: str = "bfloat16", *,
                  compile_model: bool = False, compile_mode: str = "max-autotune",
                  seed: int = 0) -> nn.Module:
    """`PI05Pytorch` with random weights (lerobot's own init, seeded), as lerobot builds it:
    `dtype` bfloat16 keeps the vision tower, projector and norms in float32. With
    `compile_model` lerobot wraps `sample_actions` in torch.compile(mode=compile_mode) and sets
    float32 matmul precision to "high" (a process-wide setting: callers restore it)."""
    PI05Pytorch, PI05Config = import_lerobot()
    cfg_device = "cpu" if torch.device(device).type == "meta" else str(device)  # lerobot rejects "meta"
    cfg = PI05Config(chunk_size=chunk, n_action_steps=chunk, dtype=dtype, device=cfg_device,
                     compile_model=compile_model, compile_mode=compile_mode)
    torch.manual_seed(seed)
    with torch.device(device):
        model = PI05Pytorch(cfg)
    return model.eval().requires_grad_(False)


def lerobot_inputs(views: int, text_tokens: int, chunk: int, device: torch.device | str,
                   seed: int = 0, vocab: int = 257152, image_size: int = 224) -> dict[str, Any]:
    """Fresh random inputs in lerobot's layout: a list of [B, 3, S, S] images in [-1, 1] (fp32),
    their masks, token ids and mask, and the fp32 noise the Euler loop starts from."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    dev = torch.device(device)
    meta = dev.type == "meta"

    def rnd(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device=dev) if meta else torch.randn(*shape, generator=g).to(dev)

    images = [rnd(1, 3, image_size, image_size).clamp(-1, 1) for _ in range(views)]
    tokens = (torch.zeros(1, text_tokens, dtype=torch.long, device=dev) if meta else
              torch.randint(0, vocab, (1, text_tokens), generator=g).to(dev))
    return {"images": images, "img_masks": [torch.ones(1, dtype=torch.bool, device=dev) for _ in range(views)],
            "tokens": tokens, "masks": torch.ones(1, text_tokens, dtype=torch.bool, device=dev),
            "noise": rnd(1, chunk, 32)}


def lerobot_stages(model: nn.Module, inp: dict[str, Any], steps: int) -> dict[str, Callable[[], Any]]:
    """lerobot's `sample_actions` cut at its stage boundaries, with lerobot's own code:
    vision (embed_prefix: SigLIP + projector + text embedding), prefill (the language model
    with use_cache), denoise (`steps` calls of its denoise_step through its Euler loop) and
    whole (sample_actions itself). The later stages reuse the earlier stages' outputs, made
    once here."""
    vu = importlib.import_module("lerobot.policies.common.vla_utils")
    fm = importlib.import_module("lerobot.policies.common.flow_matching")
    args = (inp["images"], inp["img_masks"], inp["tokens"], inp["masks"])
    with torch.no_grad():
        embs, pad, att = model.embed_prefix(*args)
        mask4d = vu.prepare_attention_masks_4d(vu.make_att_2d_masks(pad, att))
        pos = torch.cumsum(pad, dim=1) - 1

    def prefill():
        model.paligemma_with_expert.paligemma.model.language_model.config._attn_implementation = "eager"
        return model.paligemma_with_expert.forward(attention_mask=mask4d, position_ids=pos, past_key_values=None,
                                                   inputs_embeds=[embs, None], use_cache=True)[1]

    with torch.no_grad():
        kv = prefill()

    def denoise():
        return fm.euler_integrate(lambda x, t: model.denoise_step(prefix_pad_masks=pad, past_key_values=kv,
                                                                  x_t=x, timestep=t), inp["noise"], steps)

    return {"vision": lambda: model.embed_prefix(*args), "prefill": prefill, "denoise": denoise,
            "whole": lambda: model.sample_actions(*args, noise=inp["noise"], num_steps=steps)}


def cache_bytes(kv: Any) -> int:
    """Bytes of a transformers cache (DynamicCache or legacy tuples) of K and V."""
    total = 0
    for layer in kv:
        for t in tuple(layer)[:2]:
            total += t.numel() * t.element_size()
    return total


def stage_flops(fns: dict[str, Callable[[], Any]]) -> dict[str, int]:
    """FlopCounterMode FLOPs of each stage callable (run once each; works on meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for name, fn in fns.items():
        fc = FlopCounterMode(display=False)
        with torch.no_grad(), fc:
            fn()
        out[name] = int(fc.get_total_flops())
    return out


def check_actions(actions: torch.Tensor, noise: torch.Tensor) -> dict[str, float]:
    """Every timed path must return finite, non-trivial actions: finite, not constant, and
    moved away from the noise the Euler loop started from. AssertionError otherwise."""
    a = actions.detach().float()
    if a.shape != noise.shape:
        raise AssertionError(f"actions shape {tuple(a.shape)} != noise shape {tuple(noise.shape)}")
    if not torch.isfinite(a).all():
        raise AssertionError("actions contain NaN or inf")
    std = float(a.std())
    moved = float((a - noise.float()).norm() / noise.float().norm())
    if not std > 1e-6 or not moved > 1e-4:
        raise AssertionError(f"trivial actions: std {std:.2e}, displacement from noise {moved:.2e}")
    return {"actions_std": std, "displacement_ratio": moved}


def kernel_time_ms(fn: Callable[[], Any], device: torch.device | str, runs: int = 3) -> tuple[float, str]:
    """GPU kernel time of one call of `fn` (summed kernel durations, `kernel_kinds.kernel_table`, as
    chapter 7 profiles its calls) and "" -- or NaN and the error, printed, where the profile fails:
    the timings around it stand."""
    import math

    from .kernel_kinds import kernel_table

    try:
        with torch.no_grad():
            return float(kernel_table(fn, device, runs).total_ms.sum()), ""
    except Exception as e:  # noqa: BLE001 - the page says what failed; the chapter goes on
        msg = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        print(f"kernel-time profile failed: {msg}")
        return math.nan, msg


def compiled_comparison_text(ours_variant: str, ours_ms: float, ours_kernels_ms: float, lerobot_eager_ms: float,
                             lerobot_ms: float, lerobot_kernels_ms: float, mode: str, host_bound_below: float = 0.8) -> str:
    """Markdown: ours best against lerobot compiled (`compile_model=True`, torch.compile `mode`, no
    CUDA graphs), on wall time and on GPU kernel time (NaN where not measured). lerobot compiled
    is called host-bound where its kernels fill less than `host_bound_below` of its wall time:
    then the wall-time ratio measures host dispatch more than GPU work, and is labelled so."""
    head = (f"Ours best (**{ours_variant}**) takes **{ours_ms:.2f} ms**; lerobot takes {lerobot_eager_ms:.1f} ms eager "
            "(host overhead dominates: Python dispatch of every op) and ")
    if lerobot_ms != lerobot_ms:
        return head + "no compiled time (skipped or failed, see the table)."
    wall = lerobot_ms / ours_ms
    text = (head + f"**{lerobot_ms:.2f} ms** with its own `compile_model=True` (mode `{mode}`, no CUDA graphs; lerobot's own "
            f"default, max-autotune, autotunes for minutes). On wall time ours is **{wall:.2f}×** faster: both compiled, "
            "same shapes, same steps, but ours runs inside one CUDA graph and lerobot launches every kernel from Python.")
    if lerobot_kernels_ms != lerobot_kernels_ms:
        return text + (" lerobot's GPU kernel time was not measured in this run (see the table), so whether that ratio "
                       "is host dispatch or GPU work is not known here.")
    busy = lerobot_kernels_ms / lerobot_ms
    text += (f" lerobot compiled's kernels add up to **{lerobot_kernels_ms:.2f} ms** per call, {100 * busy:.0f}% of its "
             + (f"wall time: it is **host-bound**, and the other {lerobot_ms - lerobot_kernels_ms:.1f} ms are host overhead "
                "(Python, guards, launches) that CUDA graphs would remove, so the wall-time ratio is mostly host overhead, "
                "not a GPU comparison." if busy < host_bound_below else
                "wall time: it is GPU-bound, so the wall-time ratio is mostly GPU work."))
    if ours_kernels_ms == ours_kernels_ms:
        text += (f" On GPU kernel time ours takes {ours_kernels_ms:.2f} ms: **{lerobot_kernels_ms / ours_kernels_ms:.2f}×** "
                 "less than lerobot compiled. That sets the same network at the same shapes and steps side by side, but "
                 "not the same work: the two place their precision differently (lerobot keeps its vision tower, projector "
                 "and norms in float32) and run attention differently (lerobot's masked eager attention, and a copy of the "
                 "K/V cache every step; the differences table above), and that is what this ratio measures, with no host "
                 "overhead in it.")
    else:
        text += " Ours' kernel time was not measured in this run, so the two are not compared on kernel time."
    return text


def latency_table(ours: pd.DataFrame, failed: dict[str, str], lat: pd.DataFrame, best_variant: str,
                  ours_kernels_ms: float) -> pd.DataFrame:
    """Chapter 9's timing table: our paths (`pipeline_bench` rows, `failed` ones with their error),
    then lerobot's rows (`measure_lerobot`) with their checks; GPU kernel time (`kernels_ms`) for
    ours best (`ours_kernels_ms`) and where lerobot's rows carry one, NaN elsewhere."""
    nan = float("nan")
    table = [{"path": f"ours {r.variant}", "stage": "whole", "median_ms": r.median_ms, "p25_ms": r.p25_ms,
              "p75_ms": r.p75_ms, "kernels_ms": ours_kernels_ms if r.variant == best_variant else nan,
              "check": f"rel err vs fp32 {r.max_rel_err:.1e}"} for r in ours.itertuples()]
    table += [{"path": f"ours {v}", "stage": "whole", "median_ms": nan, "p25_ms": nan, "p75_ms": nan,
               "kernels_ms": nan, "check": f"FAILED: {err}"} for v, err in failed.items()]
    for r in lat.to_dict("records"):
        ok = not r.get("error")
        cos = r.get("cos_vs_eager", nan)
        chk = (f"std {r.get('actions_std', nan):.2f}, moved {r.get('displacement_ratio', nan):.2f}"
               + (f", cos vs eager {cos:.5f}" if cos == cos else "")) if ok else f"FAILED: {r['error']}"
        kernel_error = r.get("kernels_error")
        if isinstance(kernel_error, str) and kernel_error:
            chk += f"; kernel time FAILED: {kernel_error}"
        table.append({"path": f"{r['path']} ({r['views']}v, H{r['horizon']})", "stage": r["stage"],
                      "median_ms": r["median_ms"], "p25_ms": r.get("p25_ms", nan), "p75_ms": r.get("p75_ms", nan),
                      "kernels_ms": r.get("kernels_ms", nan), "check": chk})
    return pd.DataFrame(table)


def measure_lerobot(device: torch.device, views: int, text_tokens: int, steps: int, chunk: int, repeats: int, *,
                    compile_mode: str | None = None, state_from: nn.Module | None = None,
                    reference: list[torch.Tensor] | None = None, stages: bool = True,
                    log: Callable[[str], None] = progress) -> tuple[list[dict[str, Any]], nn.Module | None,
                                                                 list[torch.Tensor]]:
    """Build lerobot's model (eager, or with its own compile_model=True in `compile_mode`, weights
    copied from `state_from`), check `sample_actions` on two fresh random inputs (finite,
    non-trivial actions; cosine against `reference` outputs of the same inputs where given), then
    time it on a third -- and, with `stages`, each stage alone. Returns (rows, model, the checked
    outputs). A failure is one row with `error` set, never an exception."""
    path = "lerobot_eager" if compile_mode is None else "lerobot_compiled"
    prev = torch.get_float32_matmul_precision()  # lerobot's compile_model sets "high" process-wide
    rows: list[dict[str, Any]] = []
    model, outs = None, []
    try:
        model = build_lerobot(chunk, device, compile_model=compile_mode is not None,
                              compile_mode=compile_mode or "max-autotune")
        if state_from is not None:
            model.load_state_dict(state_from.state_dict())
        checks: dict[str, float] = {}
        for i, seed in enumerate((1, 2)):
            inp = lerobot_inputs(views, text_tokens, chunk, device, seed=seed)
            with torch.no_grad():
                a = model.sample_actions(inp["images"], inp["img_masks"], inp["tokens"], inp["masks"],
                                         noise=inp["noise"], num_steps=steps).float().clone()
            for k, v in check_actions(a, inp["noise"]).items():
                checks[k] = min(checks.get(k, v), v)
            if reference is not None:
                checks["cos_vs_eager"] = min(checks.get("cos_vs_eager", 1.0), cosine(a, reference[i]))
            outs.append(a)
        timed = lerobot_inputs(views, text_tokens, chunk, device, seed=3)
        fns = lerobot_stages(model, timed, steps)
        for stage in (("vision", "prefill", "denoise", "whole") if stages else ("whole",)):
            with torch.no_grad():
                t = time_fn(fns[stage], device, repeats)
            rows.append({"path": path, "stage": stage, "views": views, "horizon": chunk, "steps": steps,
                         **t.as_dict(), **checks, "error": ""})
            log(f"  {path:>17} {stage:>8} {views}v H{chunk}: {t.median_ms:8.3f} ms")
        if compile_mode is not None:  # is the compiled call bound by the host? its GPU kernel time beside the wall time
            rows[-1]["kernels_ms"], rows[-1]["kernels_error"] = kernel_time_ms(fns["whole"], device)
            log(f"  {path:>17}    whole kernels: {rows[-1]['kernels_ms']:8.3f} ms {rows[-1]['kernels_error']}")
    except Exception as e:  # noqa: BLE001 - recorded and shown as failed, the chapter goes on
        msg = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        rows.append({"path": path, "stage": "whole", "views": views, "horizon": chunk, "steps": steps,
                     "median_ms": float("nan"), "error": msg})
        log(f"  {path:>17}: FAILED {msg}")
    finally:
        torch.set_float32_matmul_precision(prev)
    return rows, model, outs


# ----------------------------------------------------------------------------- writing the table
def _write(path: Path = PARAMS_CSV, device: str = "meta") -> None:
    """Write the fidelity table from lerobot's model (run where lerobot imports)."""
    rows = []
    tables = {}
    configs = {"headline": dict(views=2, chunk=10), "lerobot_default": dict(views=3, chunk=50)}
    for cname, c in configs.items():
        model = build_lerobot(c["chunk"], device)
        tables[cname] = param_table(model, lerobot_component)
        inp = lerobot_inputs(c["views"], 200, c["chunk"], device)
        fns = lerobot_stages(model, inp, steps=10)
        fl = stage_flops(fns)
        with torch.no_grad():
            kv = fns["prefill"]()
        for stage, f in fl.items():
            rows.append({"config": cname, "kind": "flops", "component": "", "name": stage,
                         "shape": f"views={c['views']} text=200 steps=10 chunk={c['chunk']}", "dtype": "",
                         "value": f})
        rows.append({"config": cname, "kind": "kv_cache_bytes", "component": "", "name": "prefix_kv_cache",
                     "shape": f"prefix_tokens={c['views'] * 256 + 200}", "dtype": str(next(iter(kv))[0].dtype)
                     .removeprefix("torch."), "value": cache_bytes(kv)})
        del model
    a, b = tables["headline"], tables["lerobot_default"]
    if not a.equals(b):
        raise AssertionError("lerobot's parameters depend on the chunk size: write both")
    params = [{"config": "all", "kind": "param", **r, "value": r["numel"]} for r in a.to_dict("records")]
    for r in params:
        del r["numel"]
    out = pd.DataFrame(params + rows)[["config", "kind", "component", "name", "shape", "dtype", "value"]]
    out.to_csv(path, index=False)
    print(f"wrote {path}: {len(params)} parameter tensors, {len(rows)} stage rows")

