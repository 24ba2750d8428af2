"""The project's speed targets (issue 12), judged from one run's figures, and what stands in the way
of each: the launch floor of a graphed denoise step, each stage's and each kernel class's excess
over its floor, and what an FP8 call still spends. Chapter 7 shows them; every function takes
measured figures and returns a table or a sentence, so that no figure is written into prose.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .timing import Timing


def launch_floor(latency: Timing, kernels_per_step: float, step_floor_ms: float,
                 target_x: float = 2.0) -> tuple[float, float, int]:
    """The launch floor (kernels × one graphed kernel's cost), the target (`target_x` × the
    step's floor) and how many kernels that do nothing would fit it."""
    target = target_x * step_floor_ms
    return kernels_per_step * latency.median_ms, target, int(target // latency.median_ms)


def launch_floor_table(latency: Timing, kernels_per_step: float, step_ms: float, step_floor_ms: float,
                       target_x: float = 2.0) -> pd.DataFrame:
    """One denoise step's kernel count, one graphed kernel's cost (`timing.graphed_kernel_latency`),
    their product (the launch floor), the step's floor, the target, the measured step and how many
    kernels would fit the target if each did nothing; values as text with units."""
    from .report import fmt

    launch, target, room = launch_floor(latency, kernels_per_step, step_floor_ms, target_x)
    rows = [("kernels (best path)", fmt(kernels_per_step)),
            ("one graphed kernel that does almost nothing", fmt(latency.median_ms * 1e3, "µs")),
            ("kernels × that cost: the launch floor", fmt(launch, "ms")),
            ("floor (bytes over bandwidth, FLOPs over peak)", fmt(step_floor_ms, "ms")),
            (f"target: {target_x:g} × floor", fmt(target, "ms")),
            ("measured (best path)", fmt(step_ms, "ms")),
            ("kernels that fit the target if each did nothing", fmt(room))]
    return pd.DataFrame(rows, columns=["per denoise step", "value"])


def launch_floor_text(latency: Timing, kernels_per_step: float, step_ms: float, step_floor_ms: float,
                      by_class: pd.DataFrame, path: str, depth: int, target_x: float = 2.0) -> str:
    """What stands between a denoise step and `target_x` times its floor, in words: the kernel
    count times one graphed kernel's `latency` (the launch floor) against the target, then each
    kernel class of `path` (`kernels_by_kind` per step, with a floor_ms column) against its floor."""
    lat = latency.median_ms
    launch, target, room = launch_floor(latency, kernels_per_step, step_floor_ms, target_x)
    parts = [f"One kernel in a graph costs {lat * 1e3:.2f} µs here (IQR {latency.p25_ms * 1e3:.2f}–{latency.p75_ms * 1e3:.2f}) "
             f"however little it does, so the {kernels_per_step:.0f} kernels of a `{path}` step cost **{launch:.3f} ms before "
             f"any byte moves**: {launch / step_ms:.0%} of the measured {step_ms:.3f} ms and {launch / step_floor_ms:.1f}× the "
             f"step's floor of {step_floor_ms:.3f} ms. The target of {target_x:g}× that floor ({target:.3f} ms) leaves room for "
             f"{room} such kernels, {room / depth:.1f} per layer of the {depth}-layer expert; this step runs "
             f"{kernels_per_step / depth:.1f} per layer."]
    if kernels_per_step <= room:
        parts.append(f"So the kernel count alone does not rule the target out ({target - launch:.3f} ms would be left for "
                     "work); the work inside the kernels does.")
    else:
        parts.append("So the kernel count alone rules the target out: fewer kernels, not faster ones, come first.")
    t = by_class.set_index("kind")
    time_col = f"{path} time_ms"
    cls = [(k, float(t.loc[k, time_col]), float(t.loc[k, "floor_ms"])) for k in t.index if t.loc[k, time_col] > 0]
    parts.append("Per step, by class: " + "; ".join(
        f"{k} {ms:.3f} ms against a floor of {fl:.3f} ms ({ms / fl:.1f}×)" if fl > 0 else
        f"{k} {ms:.3f} ms (floor 0: a fused step keeps this traffic on chip)" for k, ms, fl in cls) + ".")
    over = [(k, ms) for k, ms, _ in cls if ms > target]
    parts.append(" ".join(f"The {k} kernels alone ({ms:.3f} ms) take more than the whole target." for k, ms in over)
                 or f"No class alone exceeds the target; together they take {sum(ms for _, ms, _ in cls):.3f} ms.")
    return " ".join(parts)


@dataclass(frozen=True)
class Target:
    """One target: `measured` against `limit` (at most, or at least when `at_least`), in `unit`,
    with what stands in the way when it is not met. A target of two conditions is met only when
    both are (`also`: the second condition, a Target of its own)."""
    name: str
    measured: float
    limit: float
    unit: str
    in_the_way: str = ""
    at_least: bool = False
    also: "Target | None" = None

    @property
    def met(self) -> bool:
        ok = self.measured >= self.limit if self.at_least else self.measured <= self.limit
        return ok and (self.also is None or self.also.met)

    def shown(self) -> tuple[str, str]:
        """(measured, limit) as text with units, each condition's after the other's."""
        from .report import fmt

        val = (lambda v: f"{v:.5f}") if self.unit == "cosine" else (lambda v: fmt(v, self.unit))
        measured, limit = val(self.measured), ("≥ " if self.at_least else "≤ ") + val(self.limit)
        if self.also is None:
            return measured, limit
        m2, l2 = self.also.shown()
        return f"{measured}; {m2}", f"{limit}; {l2}"


def targets_table(targets: list[Target]) -> pd.DataFrame:
    """One row per target, values as text with units: measured, limit, met or not, and (where
    not met) what stands in the way."""
    return pd.DataFrame([{"target": t.name, "measured": t.shown()[0], "limit": t.shown()[1],
                          "met": "met" if t.met else "not met", "in the way": "" if t.met else t.in_the_way}
                         for t in targets])


def stage_excess_text(gap: pd.DataFrame) -> str:
    """Each stage's time over its floor, largest first (`gap`: stage, floor_ms, measured_ms)."""
    ex = (gap.measured_ms - gap.floor_ms).set_axis(gap.stage).sort_values(ascending=False)
    return "over their floors: " + ", ".join(f"{s} +{e:.2f} ms" for s, e in ex.items() if e > 0)


def class_excess_text(per_step: pd.DataFrame, limit_ms: float) -> str:
    """A denoise step's kernel classes against their floors and the step's limit (`per_step`:
    indexed by class, time_ms and floor_ms)."""
    rows = per_step[per_step.time_ms > 0].sort_values("time_ms", ascending=False)
    parts = [f"{k} {r.time_ms:.3f} ms" + (f" ({r.time_ms / r.floor_ms:.1f}× its floor)" if r.floor_ms > 0 else " (floor 0)")
             for k, r in rows.iterrows()]
    alone = [k for k, r in rows.iterrows() if r.time_ms > limit_ms]
    return ("; ".join(parts) + (f"; {' and '.join(alone)} alone over the {limit_ms:.3f} ms limit" if alone else ""))


def kinds_left_text(by_kind: pd.DataFrame, name: str, limit_ms: float) -> str:
    """What a call (`name` columns of `kernels_by_kind`) spends kind by kind, against a limit."""
    t = by_kind.set_index("kind")[f"{name} time_ms"].sort_values(ascending=False)
    return (f"kernel time {t.sum():.2f} ms against the {limit_ms:.2f} ms limit: "
            + ", ".join(f"{k} {ms:.2f} ms" for k, ms in t.items() if ms > 0.005))
