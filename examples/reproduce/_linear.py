"""Linear student-teacher runs for the paper's panels (Figs. 1A, 2, 3A, 3B, 3D).

The simulation itself is the product's engine, configured by
``np_envs.linear_simulation.simulate_linear_grid``: every seed x learning rate of a setting is one
population of the ``np`` / ``wn-np`` / ``sgd`` agent on ``NPLinearTeacher-v0``. This module adds
what only the panels need: independent populations (other sizes or rules) spread over
processes, first passages read off the records, the map's first passages and Fig. 2's
learning-rate search for the minimum training time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from np_envs import theory
from np_envs.linear_simulation import LinearRun, simulate_linear_grid

__all__ = [
    "LinearRun",
    "simulate_grid",
    "run_grids",
    "first_passage",
    "theory_first_passage",
    "theory_min_time_np",
    "theory_return_time",
    "sgd_min_time_theory",
    "min_training_time",
]


def simulate_grid(*args, threads: int | None = 1, **kwargs) -> list[list[LinearRun]]:
    """``simulate_linear_grid`` (``runs[rate][seed]``) with torch's thread count set first.

    One torch thread: at these sizes a step is a handful of small products, and on a shared
    2-core machine a second thread spins on a busy core (the engine may still draw its noise on
    a worker thread).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return simulate_linear_grid(*args, **kwargs)


def _simulate_kwargs(kwargs: dict) -> list[list[LinearRun]]:
    return simulate_grid(**kwargs)


def run_grids(specs: Sequence[dict], workers: int = 1) -> list[list[list[LinearRun]]]:
    """Run :func:`simulate_grid` for each kwargs dict (one population each).

    Populations of different sizes or rules are independent programs: with ``workers`` > 1 they
    run in a process pool. A single population always runs in one process.
    """
    specs = [dict(s) for s in specs]
    if workers <= 1 or len(specs) <= 1:
        return [simulate_grid(**s) for s in specs]
    with ProcessPoolExecutor(max_workers=min(workers, len(specs))) as pool:
        return list(pool.map(_simulate_kwargs, specs))


def first_passage(steps: np.ndarray, eps: np.ndarray, target: float) -> float:
    """Step at which eps first falls to ``target``, interpolated in log eps between records.

    inf if it never does. Records are where eps was measured (``simulate_grid``), so this is exact
    to within one record interval.
    """
    below = np.flatnonzero(np.asarray(eps) <= target)
    if below.size == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return 0.0
    e0, e1 = float(eps[i - 1]), float(eps[i])
    t0, t1 = float(steps[i - 1]), float(steps[i])
    if not (e0 > 0 and e1 > 0) or e0 == e1:
        return t1
    frac = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
    return t0 + frac * (t1 - t0)


def theory_first_passage(
    Lx: int, Lh: int, Ly: int, learning_rate: float, target: float, max_steps: int
) -> float:
    """Steps for the two-variable map's error to fall to ``target`` (inf if it never does)."""
    _, eps = theory.mean_field_trajectory(Lx, Lh, Ly, learning_rate, max_steps)
    hit = np.flatnonzero(eps <= target)
    return float(hit[0]) if hit.size else math.inf


def theory_min_time_np(
    Lx: int, Lh: int, Ly: int, target: float, ratios: Sequence[float], max_steps: int
) -> tuple[float, float]:
    """Minimum over rates (``ratios`` x eta*) of the map's first passage: (steps, best ratio).

    This is Eq. 13 evaluated numerically on the same map as Fig. 1A's theory lines.
    """
    eta_star = theory.critical_learning_rate(Lx, Lh, Ly)
    best = (math.inf, math.nan)
    for r in ratios:
        t = theory_first_passage(Lx, Lh, Ly, r * eta_star, target, max_steps)
        if t < best[0]:
            best = (t, float(r))
    return best


def sgd_min_time_theory(Lx: int, eps0: float, target: float) -> float:
    """Eq. 9/13's SGD minimum training time, Lx log(eps0/eps_tg)."""
    return Lx * math.log(eps0 / target)


def theory_return_time(
    Lx: int, Lh: int, Ly: int, learning_rate: float, sigma_t: float, max_steps: int
) -> float:
    """First step at which the map's error exceeds its initial value eps0 (inf if within budget).

    Fig. 3B's grey theory line; iterates without storing (cheap for 1e7 steps).
    """
    p = theory.initial_order_parameters(Lx, Lh, Ly)
    a, eps = p["a0"], p["eps0"]
    eta_h = learning_rate * float(np.cbrt(float(Lh)))
    c = eta_h * Lx * Ly * (1.0 + p["beta0"])
    s = sigma_t**2 / Lx
    k = eta_h * c
    eps0 = eps
    for t in range(1, max_steps + 1):
        a, eps = a + k * (eps + s), eps + eta_h * (-2.0 * a * eps + c * a * a * (eps + s))
        if not eps <= eps0:
            return float(t)
    return math.inf


def min_training_time_spec(
    Lx: int,
    Lh: int,
    Ly: int,
    *,
    rule: str,
    target: float,
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    max_steps: int,
    check_every: int,
) -> dict:
    """The population of :func:`min_training_time`: every rate x seed, stopped at the target or
    once the error has doubled from its start (it will not come back)."""
    return dict(
        Lx=Lx,
        Lh=Lh,
        Ly=Ly,
        learning_rates=[float(lr) for lr in learning_rates],
        steps=max_steps,
        seeds=[int(s) for s in seeds],
        rule=rule,
        record_every=check_every,
        stop_below=target,
        stop_above=2.0 * theory.initial_order_parameters(Lx, Lh, Ly)["eps0"] + 0.05,
    )


def min_time_result(runs: list[list[LinearRun]], learning_rates: Sequence[float],
                    target: float) -> dict:
    """Minimum over rates of the seed-mean steps for eps to reach ``target``.

    A rate counts only if every seed reaches the target within the budget. Returns
    ``{"time", "learning_rate", "per_rate": {lr: mean steps or inf}}``.
    """
    per_rate: dict[float, float] = {}
    for lr, group in zip(learning_rates, runs, strict=True):
        ts = [first_passage(r.steps, r.eps, target) for r in group]
        per_rate[float(lr)] = float(np.mean(ts)) if all(math.isfinite(t) for t in ts) else math.inf
    best_lr = min(per_rate, key=per_rate.get)
    return {"time": per_rate[best_lr], "learning_rate": best_lr, "per_rate": per_rate}


def min_training_time(Lx: int, Lh: int, Ly: int, *, rule: str, target: float,
                      learning_rates: Sequence[float], seeds: Sequence[int], max_steps: int,
                      check_every: int) -> dict:
    """Minimum over ``learning_rates`` of the seed-mean steps for eps to reach ``target``.

    One population (every rate x seed); see :func:`min_time_result` for the result.
    """
    spec = min_training_time_spec(Lx, Lh, Ly, rule=rule, target=target,
                                  learning_rates=learning_rates, seeds=seeds,
                                  max_steps=max_steps, check_every=check_every)
    return min_time_result(simulate_grid(**spec), learning_rates, target)
