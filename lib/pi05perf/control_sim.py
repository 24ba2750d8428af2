"""A toy closed-loop simulation of action buffering under inference latency.

This is a *simulation*, not LIBERO and not a robot. It exists to weigh one claim
of the seed report -- "action buffering fails (0/9 success on LIBERO at replan 10
vs 9/9 replanning every step), VLA models need a fresh observation every step" --
against published practice: openpi evaluates pi0.5 on LIBERO executing 5 actions
of each 10-action chunk (``replan_steps=5``) at about 97 % success; Real-Time
Chunking (RTC, Black et al., arXiv 2506.07339) executes chunks asynchronously,
freezing the actions that will run while the next chunk is being inferred, and
works with delays above 300 ms; ACT (Zhao et al., arXiv 2304.13705) averages the
overlapping predictions of successive chunks ("temporal ensembling").

The task
--------
A point in the plane (think: an end effector under velocity control, ``dt`` =
``control_period_ms``) must reach a goal at the origin from 15-30 cm away and then
stay within ``tolerance`` of it for ``dwell_steps`` consecutive control periods
(think: hold still long enough to grasp). The episode ends on success, or fails
when ``episode_steps`` control periods of *wall-clock time* have passed. Random
impulses ("somebody bumps the arm / the object slips") displace the point by
``disturbance_scale`` in a random direction, as a Poisson process of
``disturbance_rate_hz``. The world runs on the wall clock: while the robot waits
for an inference it holds still (zero velocity) but disturbances keep coming.

The policy
----------
Queried with the position observed at time ``s``, it returns a chunk of
``horizon`` velocity commands: the ideal saturated proportional plan rolled
forward from the observed position (it cannot know future disturbances), plus
Gaussian noise whose standard deviation grows along the chunk,
``action_noise + error_growth * i`` for entry ``i``. That growth is the one
modelling assumption everything hinges on: predictions far from the observation
are worse. One inference runs at a time.

Time
----
The world is stepped in ticks of ``control_period_ms / ticks_per_period`` (5 ms by
default), so latencies below one control period are resolved: a blocking loop
waits ``ceil(latency_ms / tick)`` ticks for its chunk and then executes each action
for one control period, so ``sync`` cycles in ``latency + period`` (22 ms and 49 ms
give 72 and 99 ms cycles). The asynchronous strategies run on a fixed 20 Hz
controller that can switch to a new chunk only at a control-period boundary, so
for them latency counts in whole periods, ``latency_steps = ceil(latency_ms /
control_period_ms)`` (22 ms and 49 ms both mean "one period late" -- a property
of the controller, not a rounding of the simulator).

``clock="wall"`` (default): the world moves while the policy thinks.
``clock="frozen"``: the world waits for every inference -- what LIBERO's
simulator does, stepping only when an action is sent -- so latency has no effect
at all (every strategy behaves as at 0 ms).

Strategies (``k`` = actions executed per chunk)
------------------------------------------------
``sync``      query, wait (hold still) for the result, execute its first action,
              repeat; ``k`` is ignored (it is ``naive`` with ``k = 1``).
``naive``     query, wait (hold still), execute the first ``k`` actions open loop,
              repeat -- the seed report's "replan = k".
``ensemble``  ACT temporal ensembling: a new query every ``k`` steps (ACT uses
              ``k = 1``), asynchronously; the action for step ``t`` is the average
              of every arrived prediction for ``t``, weighted ``exp(-m * j)`` with
              ``j = 0`` the *oldest* prediction (ACT's convention, ``m =
              ensemble_m``). The policy is not told about the latency.
``rtc``       RTC-style asynchronous chunking: a new query every ``k`` steps; the
              actions that will execute during the inference delay are frozen
              (taken from the current chunk), the policy plans the rest of the
              new chunk from where those frozen actions will leave the robot
              (RTC's inpainting), and that rest replaces the old chunk. No
              blocking.

For ``ensemble`` and ``rtc`` the query period is clipped to
``[max(d, 1), max(d, horizon - d)]`` with ``d = latency_steps``: not more often
than one inference at a time allows, and not so rarely that the buffer runs dry
(RTC requires ``d <= s <= H - d``). ``SimResult.k_effective`` reports the period
used: e.g. ``rtc`` with ``k = 10`` at 180 ms (d = 4, H = 10) replans every 6 steps.
If the buffer does run dry (``d > H / 2``, or ``d >= H``) the robot holds still.

What it can and cannot tell
---------------------------
Mechanisms only, in a 2-D toy with invented parameters: how blocking, open-loop staleness and
latency trade off *given* the chosen error growth. Nothing about LIBERO, a real pi0.5's chunks,
or why the seed measured 0/9. Chapter 7 says this beside every figure; the tests check only the
mechanics, never which strategy wins.

Everything is numpy, vectorised over episodes, and deterministic for a seed.
Strategies share common random numbers: for a given seed, the start positions,
disturbances and the policy noise of a query issued at wall-clock step ``s`` are
the same for every strategy (so e.g. ``rtc`` and ``naive`` coincide at zero
latency).

Sweeps of :func:`simulate` over strategies, k, latencies and seeds, and the tables pooled over
seeds, are in :mod:`pi05perf.control_sweep`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

STRATEGIES: tuple[str, ...] = ("sync", "naive", "ensemble", "rtc")

__all__ = ["STRATEGIES", "SimConfig", "SimResult", "latency_steps", "latency_ticks", "CLOCKS", "simulate",
           "wilson_interval"]


@dataclass(frozen=True)
class SimConfig:
    """Task and policy knobs. Lengths in metres, speeds in m/s, times as noted.

    The defaults are invented, chosen only so that waiting and open-loop error both
    matter at the latencies the book discusses (0 to ~180 ms); ``error_growth`` is
    the parameter every outcome hinges on.
    """

    horizon: int = 10  #: actions per chunk (pi05_libero uses 10)
    control_period_ms: float = 50.0  #: one action per control period (20 Hz)
    episode_steps: int = 120  #: wall-clock budget in control periods (6 s)
    start_distance: tuple[float, float] = (0.15, 0.30)  #: initial distance to goal, uniform
    max_speed: float = 0.2  #: actuator limit on the commanded speed
    gain_per_s: float = 5.0  #: proportional gain of the ideal plan (1/s)
    tolerance: float = 0.02  #: success radius around the goal
    dwell_steps: int = 10  #: consecutive control periods inside the radius to succeed
    disturbance_rate_hz: float = 1.0  #: mean impulses per second of wall-clock time
    disturbance_scale: float = 0.04  #: displacement of one impulse
    action_noise: float = 0.01  #: noise std of chunk entry 0 (m/s)
    error_growth: float = 0.02  #: added noise std per chunk index (m/s per entry)
    ensemble_m: float = 0.01  #: ACT's temporal-ensembling decay (ACT's default)
    ticks_per_period: int = 10  #: time resolution of the world: 5 ms ticks at 20 Hz

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")
        if self.control_period_ms <= 0:
            raise ValueError("control_period_ms must be > 0")
        if self.ticks_per_period < 1:
            raise ValueError("ticks_per_period must be >= 1")
        if self.episode_steps < 1 or self.dwell_steps < 1:
            raise ValueError("episode_steps and dwell_steps must be >= 1")
        lo, hi = self.start_distance
        if not 0 <= lo <= hi:
            raise ValueError("start_distance must be (low, high) with 0 <= low <= high")
        for name in ("max_speed", "gain_per_s", "tolerance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("disturbance_rate_hz", "disturbance_scale", "action_noise",
                     "error_growth", "ensemble_m"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def dt(self) -> float:
        """Control period in seconds."""
        return self.control_period_ms / 1000.0

    @property
    def tick_ms(self) -> float:
        """The world's time step in ms."""
        return self.control_period_ms / self.ticks_per_period

    def noise_std(self) -> np.ndarray:
        """Noise std of each chunk entry, shape ``(horizon,)``."""
        return self.action_noise + self.error_growth * np.arange(self.horizon)


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate` for one strategy, k, latency and seed."""

    strategy: str
    k: int  #: the k asked for
    k_effective: int  #: actions per chunk / query period actually used (see module doc)
    latency_ms: float  #: the inference latency asked for
    latency_steps: int  #: control periods the asynchronous controller is late (0 if frozen)
    wait_ms: float  #: what a blocking loop waits per query: latency in whole ticks (0 if frozen)
    clock: str  #: "wall" (the world moves during inference) or "frozen" (it waits, as LIBERO)
    seed: int
    successes: int
    episodes: int
    success_pct: float
    ci_low_pct: float  #: Wilson 95 % interval, percent
    ci_high_pct: float
    control_rate_hz: float  #: executed actions per second of wall-clock time (blocking counts)
    inferences_per_episode: float
    mean_final_error: float  #: distance to goal when the episode ended (m)
    mean_time_to_success_s: float  #: over successful episodes; nan if none

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, as fractions in [0, 1].

    ``wilson_interval(0, 9)`` is ``(0.0, 0.299)``; ``wilson_interval(9, 9)`` is
    ``(0.701, 1.0)``. With ``n == 0`` there is no information: ``(0.0, 1.0)``.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def latency_steps(latency_ms: float, config: SimConfig | None = None) -> int:
    """Inference latency in whole control periods, rounded up (0 ms -> 0)."""
    cfg = config or SimConfig()
    if latency_ms < 0 or not math.isfinite(latency_ms):
        raise ValueError(f"latency_ms must be finite and >= 0, got {latency_ms}")
    return int(math.ceil(latency_ms / cfg.control_period_ms - 1e-9))


def latency_ticks(latency_ms: float, config: SimConfig | None = None) -> int:
    """Inference latency in the world's ticks, rounded up (0 ms -> 0)."""
    cfg = config or SimConfig()
    latency_steps(latency_ms, cfg)  # validates
    return int(math.ceil(latency_ms / cfg.tick_ms - 1e-9))


CLOCKS: tuple[str, ...] = ("wall", "frozen")


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")


def _k_effective(strategy: str, k: int, d: int, horizon: int) -> int:
    if strategy == "sync":
        return 1
    if strategy == "naive":
        return k
    lo, hi = max(d, 1), max(d, horizon - d)
    return int(min(max(k, lo), hi))


def _clip_speed(a: np.ndarray, vmax: float) -> np.ndarray:
    """Scale each 2-D command down to at most ``vmax`` (last axis)."""
    norm = np.sqrt(np.einsum("...i,...i->...", a, a))[..., None]
    return a * np.minimum(1.0, vmax / np.maximum(norm, 1e-12))


def _plan(x_obs: np.ndarray, frozen: np.ndarray | None, noise: np.ndarray,
          cfg: SimConfig) -> np.ndarray:
    """One policy query: chunk ``(E, H, 2)`` from observed positions ``(E, 2)``.

    Entries ``0..f-1`` are the ``f`` frozen actions (copied, no new noise); the
    plan continues from where they leave the robot (RTC inpainting). ``noise`` is
    standard normal ``(E, H, 2)``.
    """
    h, dt = cfg.horizon, cfg.dt
    chunk = np.empty_like(noise)
    x = x_obs.copy()
    f = 0
    if frozen is not None and frozen.shape[1]:
        f = min(frozen.shape[1], h)
        chunk[:, :f] = frozen[:, :f]
        x += dt * _clip_speed(frozen[:, :f], cfg.max_speed).sum(axis=1)
    for i in range(f, h):
        a = _clip_speed(-cfg.gain_per_s * x, cfg.max_speed)  # goal at the origin
        chunk[:, i] = a
        x = x + dt * a
    std = cfg.noise_std()
    chunk[:, f:] += noise[:, f:] * std[None, f:, None]
    return chunk


@functools.lru_cache(maxsize=8)
def _world(seed: int, episodes: int, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Start positions ``(E, 2)`` and disturbance impulses per tick ``(T * n, E, 2)``, read-only:
    the same world for every strategy, k and latency of a seed (cached, it is most of the cost)."""
    rng = np.random.default_rng([seed, 0])
    lo, hi = cfg.start_distance
    r = rng.uniform(lo, hi, size=episodes)
    th = rng.uniform(0, 2 * np.pi, size=episodes)
    x0 = np.stack([r * np.cos(th), r * np.sin(th)], axis=1)
    ticks = cfg.episode_steps * cfg.ticks_per_period
    p = min(1.0, cfg.disturbance_rate_hz * cfg.tick_ms / 1000.0)  # Poisson process, per tick
    hit = rng.random((episodes, ticks)) < p
    phi = rng.uniform(0, 2 * np.pi, size=(episodes, ticks))
    kick = cfg.disturbance_scale * hit[..., None] * np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    kick = np.ascontiguousarray(kick.transpose(1, 0, 2))
    x0.flags.writeable = kick.flags.writeable = False
    return x0, kick


def _query_noise(seed: int, tick: int, episodes: int, cfg: SimConfig) -> np.ndarray:
    """Policy noise of a query issued at wall-clock ``tick`` (common to strategies)."""
    return np.random.default_rng([seed, 1, tick]).standard_normal((episodes, cfg.horizon, 2))


def simulate(strategy: str, k: int, latency_ms: float, episodes: int, seed: int,
             config: SimConfig | None = None, clock: str = "wall") -> SimResult:
    """Run ``episodes`` episodes of one strategy and return the tally.

    ``k`` is the number of actions executed per chunk (ignored by ``sync``; for
    ``ensemble`` and ``rtc`` the query period, clipped as the module doc says).
    ``latency_ms`` is the inference latency (see "Time" in the module doc); with
    ``clock="frozen"`` the world waits for it, so it has no effect.
    Raises ``ValueError`` for an unknown strategy or clock, or ``k`` outside ``1..horizon``.
    """
    _check_strategy(strategy)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    cfg = config or SimConfig()
    h, n, T = cfg.horizon, cfg.ticks_per_period, cfg.episode_steps
    if not 1 <= int(k) <= h:
        raise ValueError(f"k must be in 1..horizon={h}, got {k}")
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    k = int(k)
    frozen = clock == "frozen"
    d = 0 if frozen else latency_steps(latency_ms, cfg)  # async: control periods late
    wait = 0 if frozen else latency_ticks(latency_ms, cfg)  # blocking: ticks waited
    k_eff = _k_effective(strategy, k, d, h)
    blocking = strategy in ("sync", "naive")
    tick_s = cfg.tick_ms / 1000.0

    x, kicks = _world(seed, episodes, cfg)
    E, n_ticks = episodes, T * n
    # asynchronous strategies: action buffer indexed by control period
    buf = np.zeros((T + h + d + 1, E, 2))
    valid = np.zeros(T + h + d + 1, dtype=bool)
    ens: list[tuple[int, np.ndarray]] = []  # (query period, chunk) for ensembling
    ens_w = np.exp(-cfg.ensemble_m * np.arange(h + 1))
    # blocking strategies: the chunk being executed, from tick `run_from`, `run_len` actions
    chunk_now, run_from, run_len = None, 0, 0

    active = np.ones(E, dtype=bool)
    dwell = np.zeros(E, dtype=np.int64)
    end_tick = np.full(E, n_ticks - 1)
    final_err = np.zeros(E)
    success = np.zeros(E, dtype=bool)
    executed = np.zeros(n_ticks, dtype=bool)
    queried = np.zeros(n_ticks, dtype=bool)
    next_query = 0  # in ticks (blocking) or periods (asynchronous)
    step = np.zeros((E, 2))  # motion per tick of the current action

    # The world is advanced one segment at a time: a stretch of ticks with one commanded action
    # (or none), at most a control period long. Within it, motion is linear and the pushes add up,
    # so every tick's position comes from one cumulative sum -- the same ticks, fewer Python steps.
    steps_up = np.arange(1, n + 1, dtype=float)[:, None, None]
    dwell_ticks = cfg.dwell_steps * n
    tau = 0
    while tau < n_ticks:
        if blocking:
            if tau == next_query:  # query on x now, hold still until the chunk arrives
                queried[tau] = True
                chunk_now = _plan(x, None, _query_noise(seed, tau, E, cfg), cfg)
                run_from, run_len = tau + wait, (1 if strategy == "sync" else k)
                next_query = run_from + run_len * n
            if tau < run_from:  # waiting for the inference
                moving, seg_end = False, run_from
            else:
                j = (tau - run_from) // n
                moving, seg_end = True, run_from + (j + 1) * n
                step = tick_s * _clip_speed(chunk_now[:, j], cfg.max_speed)
            seg_end = min(seg_end, next_query, n_ticks)
        else:  # asynchronous: decisions on control-period boundaries only
            t = tau // n
            if t == next_query:
                queried[tau] = True
                noise = _query_noise(seed, tau, E, cfg)
                if strategy == "rtc":
                    f = min(d, h)
                    held = np.where(valid[t:t + f, None, None], buf[t:t + f], 0.0).transpose(1, 0, 2)
                    chunk = _plan(x, held, noise, cfg)
                    if f < h:
                        buf[t + f:t + h] = chunk[:, f:].transpose(1, 0, 2)
                        valid[t + f:t + h] = True
                    valid[t + h:] = False
                else:  # ensemble: the policy is not latency-aware
                    ens.append((t, _plan(x, None, noise, cfg)))
                next_query = t + k_eff
            a = None
            if strategy == "ensemble":
                ens = [(s, c) for (s, c) in ens if s + h > t]
                arrived = [(s, c) for (s, c) in ens if s + d <= t]  # oldest first
                if arrived:
                    w = ens_w[:len(arrived)]
                    a = sum(wj * c[:, t - s] for wj, (s, c) in zip(w, arrived)) / w.sum()
            elif valid[t]:
                a = buf[t]
            moving = a is not None
            if moving:
                step = tick_s * _clip_speed(a, cfg.max_speed)
            seg_end = min(tau + n, n_ticks)
        L = seg_end - tau
        executed[tau:seg_end] = moving
        disp = np.cumsum(kicks[tau:seg_end], axis=0)  # (L, E, 2)
        if moving:
            disp += steps_up[:L] * step[None]
        X = x[None] + disp * active[None, :, None]
        err = np.sqrt(np.einsum("lei,lei->le", X, X))
        # consecutive ticks inside the radius, carried over from the previous segment
        idx = np.arange(L)[:, None]
        last_out = np.maximum.accumulate(np.where(err < cfg.tolerance, -1, idx), axis=0)
        run = np.where(last_out >= 0, idx - last_out, dwell[None] + idx + 1)
        reached = (run >= dwell_ticks) & active[None]
        done_now = reached.any(axis=0)
        if done_now.any():
            first = reached.argmax(axis=0)[done_now]
            success |= done_now
            end_tick[done_now] = tau + first
            final_err[done_now] = err[first, np.flatnonzero(done_now)]
            active &= ~done_now
        dwell = run[-1]
        x = X[-1]
        if not active.any():
            break
        tau = seg_end
    final_err[active] = np.sqrt(np.einsum("ei,ei->e", x[active], x[active]))

    ticks = end_tick + 1  # wall-clock ticks each episode lasted
    n_exec = np.cumsum(executed)[end_tick] / n  # in actions (control periods of motion)
    n_query = np.cumsum(queried)[end_tick]
    s = int(success.sum())
    lo, hi = wilson_interval(s, E)
    return SimResult(
        strategy=strategy, k=k, k_effective=k_eff, latency_ms=float(latency_ms),
        latency_steps=d, wait_ms=wait * cfg.tick_ms, clock=clock, seed=int(seed), successes=s,
        episodes=E, success_pct=100.0 * s / E, ci_low_pct=100.0 * lo, ci_high_pct=100.0 * hi,
        control_rate_hz=float(n_exec.sum() / (ticks.sum() * tick_s)),
        inferences_per_episode=float(n_query.mean()),
        mean_final_error=float(final_err.mean()),
        mean_time_to_success_s=float(ticks[success].mean() * tick_s) if s else float("nan"),
    )
