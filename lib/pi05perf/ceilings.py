"""The two ceilings of the running device, measured: memory copy bandwidth and matmul rate.

Datasheet numbers are leads, not floors: every floor in the book divides by these.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .timing import Timing, time_fn


@dataclass(frozen=True)
class Ceiling:
    what: str
    value: float  # GB/s or TFLOP/s
    unit: str
    timing: Timing
    size: str


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
                   f"{n * 4 / 2**20:.0f} MiB")


def matmul_rate(device: torch.device | str, dtype: torch.dtype, n: int, repeats: int) -> Ceiling:
    """A large square matmul on random data (never zeros: they run faster)."""
    from .check import relative_error

    device = torch.device(device)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    ref = None
    if n <= 2048:
        ref = (a.double() @ b.double())
    if dtype in (getattr(torch, "float8_e4m3fn", None),):
        a8, b8 = a.to(dtype), b.t().contiguous().to(dtype).t()  # cuBLASLt wants B column-major
        one = torch.ones((), device=device)
        fn = lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        label = "fp8 e4m3 matmul (torch._scaled_mm)"
        check = (a8.float() @ b8.float()).double()
    else:
        a, b = a.to(dtype), b.to(dtype)
        fn = lambda: a @ b
        label = f"{str(dtype).removeprefix('torch.')} matmul"
        check = ref if ref is not None else (a.float() @ b.float()).double()
    out = fn()
    err = relative_error(out, check)
    if err > 2e-2:
        raise AssertionError(f"{label} at n={n}: relative error {err:.2e} against the reference")
    t = time_fn(fn, device, repeats)
    return Ceiling(label, 2 * n**3 / (t.median_ms * 1e-3) / 1e12, "TFLOP/s", t, f"{n}x{n}x{n}")


def for_run(run, log=print) -> dict:
    """The running device's ceilings: taken from chapter 2's results for this device and
    profile when that chapter has run (one measurement serves the whole book), else measured."""
    from . import results

    slug = results.device_slug(results.device_name(run.device))
    for doc in reversed(results.load_all("ch02_roofline")):
        head = doc["headline"]
        if doc["slug"] == slug and doc["provenance"].get("profile") == run.profile and head.get("matmul_bf16_tflops"):
            log(f"ceilings from chapter 2 ({doc['source']}, {doc['provenance'].get('date')})")
            return {"copy_gbps": head["copy_gbps"], "matmul_bf16_tflops": head["matmul_bf16_tflops"],
                    "matmul_fp8_tflops": head.get("matmul_fp8_tflops"), "source": "chapter 2"}
    n = 8192 if run.full else 512
    bw = copy_bandwidth(run.device, (1 << 30) if run.full else (1 << 24), run.repeats)
    mm = matmul_rate(run.device, torch.bfloat16 if run.cuda else run.dtype, n, run.repeats)
    fp8 = matmul_rate(run.device, torch.float8_e4m3fn, n, run.repeats) if fp8_matmul_supported(run.device) else None
    log("ceilings measured here (chapter 2 has no results for this device and profile)")
    return {"copy_gbps": bw.value, "matmul_bf16_tflops": mm.value,
            "matmul_fp8_tflops": fp8.value if fp8 else None, "source": "measured in this chapter"}


def this_device(run, log=print):
    """The running device as a `config.Hardware` with its measured ceilings (see `for_run`)."""
    from .config import Hardware
    from .results import device_name

    ceil = for_run(run, log)
    return Hardware(f"{device_name(run.device)} (measured)", ceil["copy_gbps"], ceil["matmul_bf16_tflops"],
                    ceil.get("matmul_fp8_tflops"), ceil["source"])
