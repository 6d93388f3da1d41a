"""Linear student-teacher simulations that ``np_envs.theory`` does not cover (Figs. 2, 3B, 3D).

``np_envs.theory.simulate_linear_np`` runs plain NP. The paper's linear panels also need SGD on
the same task (Fig. 2), NP with the incoming weights of every hidden neuron held at a fixed norm
(Fig. 3D), early stopping on an error threshold (minimum training time, Fig. 2; return to the
initial error, Fig. 3B) and a learning-rate search for the minimum training time. This module
adds them, keeping the draw order of ``simulate_linear_np`` (A, W1, W2, then one vector per step
holding x, zeta, xi1, xi2), so that plain NP here reproduces that function's trajectory exactly.

Everything is float64 and one sample per step, as in the authors' linear runs (paper/NOTES.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from np_envs import theory

__all__ = [
    "LinearRun",
    "simulate",
    "first_passage",
    "theory_first_passage",
    "theory_min_time_np",
    "theory_return_time",
    "sgd_min_time_theory",
    "min_training_time",
    "run_many",
]

#: The linear runs' perturbation amplitude (NOTES.md).
SIGMA = 1e-6
#: An error beyond this has blown up; the run stops and later records read +inf.
DIVERGED = 1e100


@dataclass
class LinearRun:
    """One simulated run: records at ``steps`` of a = ||W1||^2/(Lx Lh^(1/3)) and the error eps.

    ``stopped`` says why the run ended: "budget" (all steps done), "below" (eps fell to
    ``stop_below``), "above" (eps rose past ``stop_above``) or "diverged". Records after an
    early stop are nan ("below"/"above") or +inf ("diverged"); ``last`` is the last step run.
    """

    steps: np.ndarray
    a: np.ndarray
    eps: np.ndarray
    stopped: str = "budget"
    last: int = 0
    params: dict = field(default_factory=dict)


def simulate(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    *,
    rule: str = "np",
    sigma_t: float = 0.0,
    seed: int = 0,
    normalize_w1: bool = False,
    record_every: int = 100,
    record_steps: Sequence[int] | None = None,
    stop_below: float | None = None,
    stop_above: float | None = None,
    sigma: float = SIGMA,
    init_scale: float = 1.0,
    threads: int | None = 1,
) -> LinearRun:
    """Train y = W2 W1 x on the teacher y* = A x + sigma_t zeta with NP or SGD, one sample a step.

    ``rule="np"``: y~ = W2 (W1 x + sigma xi1) + sigma xi2, dl = l~ - l,
    W1 -= lr (dl/sigma) xi1 x^T, W2 -= lr (dl/sigma) xi2 h^T (h = W1 x clean), exactly as
    ``theory.simulate_linear_np``. ``rule="sgd"``: the gradient of l = 1/2 ||y - y*||^2.
    ``normalize_w1``: after each step every row of W1 is rescaled to its initial RMS
    sqrt(2 r/(Lx+Lh)) (NOTES.md's weight normalisation; Fig. 3D), which holds ||W1|| and a fixed.
    ``stop_below`` / ``stop_above`` end the run at the first record with eps <= / > the value;
    records are where eps is measured, so they set the resolution of these first passages.
    ``threads`` sets torch's (process-wide) thread count; one is fastest at these sizes, and on a
    shared 2-core machine two threads were 5-50x slower per step (spinning on a busy core).
    """
    import torch

    if rule not in ("np", "sgd"):
        raise ValueError(f"rule must be 'np' or 'sgd', got {rule!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    dt = torch.float64
    gen = torch.Generator()
    gen.manual_seed(int(seed))

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dt)

    w1_std = math.sqrt(2.0 * init_scale / (Lx + Lh))
    A = randn(Ly, Lx) * math.sqrt(2.0 / (Lx + Ly))
    W1 = randn(Lh, Lx) * w1_std
    W2 = randn(Ly, Lh) * math.sqrt(2.0 / (Lh + Ly))
    row_norm = w1_std * math.sqrt(Lx)  # ||row|| at RMS w1_std

    if record_steps is None:
        record_at = list(range(0, steps + 1, record_every))
    else:
        record_at = sorted({int(t) for t in record_steps if 0 <= int(t) <= steps} | {0})
    if record_at[-1] != steps:
        record_at.append(steps)
    n_rec = len(record_at)
    a_rec = np.full(n_rec, np.nan)
    eps_rec = np.full(n_rec, np.nan)
    cbrt_lh = float(np.cbrt(float(Lh)))

    def measure(i: int) -> float:
        a_rec[i] = float(torch.sum(W1 * W1)) / (Lx * cbrt_lh)
        D = W2 @ W1 - A
        eps_rec[i] = float(torch.sum(D * D)) / (Lx * Ly)
        return eps_rec[i]

    measure(0)
    nxt = 1
    stopped = "budget"
    last = 0
    n_noise = Lx + Ly + Lh + Ly
    with torch.no_grad():
        for t in range(1, steps + 1):
            noise = randn(n_noise)
            x = noise[:Lx]
            target = A @ x
            if sigma_t > 0.0:
                target = target + sigma_t * noise[Lx : Lx + Ly]
            h = W1 @ x
            err = W2 @ h - target
            if rule == "np":
                xi1 = noise[Lx + Ly : Lx + Ly + Lh]
                xi2 = noise[Lx + Ly + Lh :]
                err_p = W2 @ (h + sigma * xi1) + sigma * xi2 - target
                dl = 0.5 * (torch.dot(err_p, err_p) - torch.dot(err, err))
                k = learning_rate * float(dl) / sigma
                if not math.isfinite(k):
                    stopped = "diverged"
                    break
                W1.addr_(xi1, x, alpha=-k)
                W2.addr_(xi2, h, alpha=-k)
            else:
                g1 = W2.T @ err  # before W2 changes
                W2.addr_(err, h, alpha=-learning_rate)
                W1.addr_(g1, x, alpha=-learning_rate)
            if normalize_w1:
                W1.mul_((row_norm / torch.linalg.vector_norm(W1, dim=1)).unsqueeze(1))
            last = t
            if t == record_at[nxt]:
                e = measure(nxt)
                nxt += 1
                if not e <= DIVERGED:
                    stopped = "diverged"
                    break
                if stop_below is not None and e <= stop_below:
                    stopped = "below"
                    break
                if stop_above is not None and e > stop_above:
                    stopped = "above"
                    break
                if nxt == n_rec:
                    break
    if stopped == "diverged":
        # the record that crossed DIVERGED (if any) reads inf too: the run blew up there
        first = nxt - 1 if nxt > 0 and not eps_rec[nxt - 1] <= DIVERGED else nxt
        a_rec[first:] = np.inf
        eps_rec[first:] = np.inf
    params = dict(
        Lx=Lx,
        Lh=Lh,
        Ly=Ly,
        learning_rate=learning_rate,
        rule=rule,
        sigma_t=sigma_t,
        seed=seed,
        normalize_w1=normalize_w1,
    )
    return LinearRun(np.asarray(record_at), a_rec, eps_rec, stopped, last, params)


def _simulate_kwargs(kwargs: dict) -> LinearRun:
    return simulate(**kwargs)


def run_many(jobs: Sequence[dict], workers: int = 1) -> list[LinearRun]:
    """Run :func:`simulate` for each kwargs dict, in a process pool when ``workers`` > 1.

    Each worker uses one torch thread: at these sizes a step is a handful of small kernels, so
    two processes beat two threads on a 2-core machine.
    """
    jobs = [dict(j) for j in jobs]
    if workers <= 1 or len(jobs) <= 1:
        return [simulate(**j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_simulate_kwargs, jobs))


def first_passage(steps: np.ndarray, eps: np.ndarray, target: float) -> float:
    """Step at which eps first falls to ``target``, interpolated in log eps between records.

    inf if it never does. Records are where eps was measured (``simulate``), so this is exact
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


def min_training_time(
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
    workers: int = 1,
) -> dict:
    """Minimum over ``learning_rates`` of the seed-mean steps for eps to reach ``target``.

    A rate counts only if every seed reaches the target within ``max_steps``. Returns
    ``{"time", "learning_rate", "per_rate": {lr: mean steps or inf}}``. Runs stop at the target
    or once the error has doubled from its start (it will not come back).
    """
    jobs = []
    for lr in learning_rates:
        for s in seeds:
            jobs.append(
                dict(
                    Lx=Lx,
                    Lh=Lh,
                    Ly=Ly,
                    learning_rate=float(lr),
                    steps=max_steps,
                    rule=rule,
                    seed=int(s),
                    record_every=check_every,
                    stop_below=target,
                    stop_above=2.0 * theory.initial_order_parameters(Lx, Lh, Ly)["eps0"] + 0.05,
                )
            )
    runs = run_many(jobs, workers)
    per_rate: dict[float, float] = {}
    for i, lr in enumerate(learning_rates):
        ts = [
            first_passage(r.steps, r.eps, target)
            for r in runs[i * len(seeds) : (i + 1) * len(seeds)]
        ]
        per_rate[float(lr)] = float(np.mean(ts)) if all(math.isfinite(t) for t in ts) else math.inf
    best_lr = min(per_rate, key=per_rate.get)
    return {"time": per_rate[best_lr], "learning_rate": best_lr, "per_rate": per_rate}
