"""The learning rules themselves on the linear student-teacher task, to set beside the theory.

The paper's linear panels compare the mean-field map (np_envs/theory.py) with simulated runs:
plain NP (Figs. 1A, 3A, 3B), SGD on the same stream (Fig. 2), NP with every hidden neuron's
incoming weights held at a fixed norm (Fig. 3D), and first passages of the error through a
threshold (training time, Fig. 2; return to the initial error, Fig. 3B). One function runs them
all, so that every panel draws the same numbers in the same order.

Everything is float64 and one sample per step, as in the authors' linear runs (paper/NOTES.md);
torch does the in-place rank-one updates.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from np_envs._checks import (
    check_count,
    check_nonnegative,
    check_positive,
    check_size,
    check_sizes,
)

__all__ = ["LinearRun", "simulate_linear", "simulate_linear_np", "LINEAR_SIGMA", "DIVERGED_FACTOR"]

#: Perturbation amplitude of the authors' linear runs (NOTES.md): small enough for the finite
#: difference to be a directional derivative, large enough for float64.
LINEAR_SIGMA = 1e-6
#: A simulated error this many times its initial value has blown up: NP's error cannot come back
#: from there (||W1|| only grows), and well before 1e100 the float64 finite difference loses the
#: perturbation (l~ == l), so the weights freeze at a huge error that never reaches inf.
DIVERGED_FACTOR = 1e10
RULES = ("np", "sgd")


@dataclass
class LinearRun:
    """One simulated run: a = ||W1||^2/(Lx Lh^(1/3)) and the error eps recorded at ``steps``.

    ``stopped`` says why the run ended: "budget" (all steps done), "below" (eps fell to
    ``stop_below``), "above" (eps rose past ``stop_above``) or "diverged". Records after an
    early stop are nan ("below"/"above"); a diverged run's records from the one that saw the
    blow-up on are +inf (so log plots keep their scale). ``last`` is the last step run.
    """

    steps: np.ndarray
    a: np.ndarray
    eps: np.ndarray
    stopped: str = "budget"
    last: int = 0
    params: dict = field(default_factory=dict)


def _record_steps(steps: int, record_every: int, record_steps: Sequence[int] | None) -> list[int]:
    if record_steps is None:
        record_at = list(range(0, steps + 1, record_every))
    else:
        wanted = {int(t) for t in record_steps}
        bad = [t for t in wanted if not 0 <= t <= steps]
        if bad:
            raise ValueError(f"record_steps must lie in [0, steps={steps}], got {sorted(bad)[:5]}")
        record_at = sorted(wanted | {0})
    if record_at[-1] != steps:
        record_at.append(steps)
    return record_at


def _optional_threshold(name: str, value: float | None) -> float | None:
    return None if value is None else check_positive(name, value)


def simulate_linear(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    *,
    rule: str = "np",
    sigma_t: float = 0.0,
    seed: int = 0,
    record_every: int = 100,
    record_steps: Sequence[int] | None = None,
    sigma: float = LINEAR_SIGMA,
    init_scale: float = 1.0,
    normalize_w1: bool = False,
    stop_below: float | None = None,
    stop_above: float | None = None,
    device: str = "cpu",
) -> LinearRun:
    """Train y = W2 W1 x on the teacher y* = A x + sigma_t zeta, one sample a step.

    Teacher A ~ N(0, 2/(Lx+Ly)), student W1 ~ N(0, 2 r/(Lx+Lh)) (r = ``init_scale``),
    W2 ~ N(0, 2/(Lh+Ly)), drawn from ``seed`` in that order; then each step draws one vector
    holding x ~ N(0, I), zeta, xi1, xi2 (the same numbers for every rule and option).

    ``rule="np"``: y~ = W2 (W1 x + sigma xi1) + sigma xi2, dl = l~ - l (l = 1/2 ||y - y*||^2),
    W1 -= lr (dl/sigma) xi1 x^T, W2 -= lr (dl/sigma) xi2 h^T with h = W1 x clean.
    ``rule="sgd"``: the exact gradient of l, both layers from the weights before the step.
    ``normalize_w1``: after each step every row of W1 is rescaled to its initial RMS
    sqrt(2 r/(Lx+Lh)) (NOTES.md's weight normalisation; Fig. 3D), which holds ||W1|| and a.

    a and eps are measured at step 0, every ``record_every`` steps (or at the sorted
    ``record_steps``) and at ``steps``; eps only there, since W2 W1 costs O(Lx Lh Ly) while a
    step costs O(Lh (Lx + Ly)). ``stop_below`` / ``stop_above`` end the run at the first record
    with eps <= / > the value, so the records set the resolution of these first passages. An
    error past ``DIVERGED_FACTOR`` times its initial value, or a non-finite update, ends the run
    as diverged.
    """
    import torch  # local: np_envs.theory imports this module and must not pay for torch

    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    lr = check_positive("learning_rate", learning_rate)
    steps = check_count("steps", steps)
    sigma_t = check_nonnegative("sigma_t", sigma_t)
    record_every = check_size("record_every", record_every)
    sigma = check_positive("sigma", sigma)
    r = check_positive("init_scale", init_scale)
    stop_below = _optional_threshold("stop_below", stop_below)
    stop_above = _optional_threshold("stop_above", stop_above)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")

    dev = torch.device(device)
    dt = torch.float64
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dt, device=dev)

    w1_std = math.sqrt(2.0 * r / (Lx + Lh))
    A = randn(Ly, Lx) * math.sqrt(2.0 / (Lx + Ly))
    W1 = randn(Lh, Lx) * w1_std
    W2 = randn(Ly, Lh) * math.sqrt(2.0 / (Lh + Ly))
    row_norm = w1_std * math.sqrt(Lx)  # ||row|| at RMS w1_std

    record_at = _record_steps(steps, record_every, record_steps)
    n_rec = len(record_at)
    a_rec = np.full(n_rec, np.nan)
    eps_rec = np.full(n_rec, np.nan)
    cbrt_lh = float(np.cbrt(float(Lh)))

    def measure(i: int) -> float:
        a_rec[i] = float(torch.sum(W1 * W1)) / (Lx * cbrt_lh)
        D = W2 @ W1 - A
        eps_rec[i] = float(torch.sum(D * D)) / (Lx * Ly)
        return eps_rec[i]

    diverged_above = DIVERGED_FACTOR * measure(0)
    nxt = 1
    stopped = "budget"
    last = 0
    n_noise = Lx + Ly + Lh + Ly
    with torch.no_grad():
        for t in range(1, steps + 1):
            # one draw per step for all the step's noise: fewer small-kernel calls
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
                k = lr * float(dl) / sigma
                if not math.isfinite(k):
                    stopped = "diverged"
                    break
                W1.addr_(xi1, x, alpha=-k)
                W2.addr_(xi2, h, alpha=-k)
            else:
                g1 = W2.T @ err  # before W2 changes
                W2.addr_(err, h, alpha=-lr)
                W1.addr_(g1, x, alpha=-lr)
            if normalize_w1:
                W1.mul_((row_norm / torch.linalg.vector_norm(W1, dim=1)).unsqueeze(1))
            last = t
            if t == record_at[nxt]:
                e = measure(nxt)
                nxt += 1
                if not e <= diverged_above:  # also catches nan
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
        first = nxt - 1 if not eps_rec[nxt - 1] <= diverged_above else nxt
        a_rec[first:] = np.inf
        eps_rec[first:] = np.inf
    params = dict(Lx=Lx, Lh=Lh, Ly=Ly, learning_rate=lr, rule=rule, sigma_t=sigma_t,
                  seed=int(seed), normalize_w1=bool(normalize_w1))
    return LinearRun(np.asarray(record_at, dtype=np.int64), a_rec, eps_rec, stopped, last, params)


def simulate_linear_np(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    sigma_t: float = 0.0,
    seed: int = 0,
    record_every: int = 100,
    *,
    record_steps: Sequence[int] | None = None,
    sigma: float = LINEAR_SIGMA,
    init_scale: float = 1.0,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain node perturbation on the linear task: ``(steps_recorded, a, eps)``.

    The same run as ``simulate_linear(..., rule="np")``; see there for the model, the draws and
    the records. A diverged run's records from the blow-up on read +inf.
    """
    run = simulate_linear(
        Lx, Lh, Ly, learning_rate, steps, sigma_t=sigma_t, seed=seed, record_every=record_every,
        record_steps=record_steps, sigma=sigma, init_scale=init_scale, device=device,
    )
    return run.steps, run.a, run.eps
