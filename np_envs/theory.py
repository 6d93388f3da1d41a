"""Mean-field predictions for node perturbation (NP) in the linear student-teacher task.

Section 4 of the paper reduces NP learning in a one-hidden-layer linear network
``y = W2 W1 x`` (teacher ``y* = A x + sigma_t zeta``) to two order parameters: the error
``eps = ||W2 W1 - A||_F^2 / (Lx Ly)`` and the normalised input-weight norm
``a = ||W1||_F^2 / (Lx Lh^(1/3))``. Their continuous-time dynamics (Eq. 12, with teacher noise as
in Eq. 14) is

    da/dt = c (eps + s),    deps/dt = -2 a eps + c a^2 (eps + s),    s = sigma_t^2 / Lx,

with time in units of ``eta_h = eta Lh^(1/3)`` per sample and ``c = eta_h Lx Ly (1 + beta0)``.
This module iterates that map once per sample exactly as paper/NOTES.md states it (an explicit
Euler step in which both updates read the OLD ``a`` and ``eps``), and derives from it the critical
learning rate eta* above which the error turns back up before reaching zero, SGD's optimal rate,
the onset of the teacher-noise instability and the Eq. 14 nullcline.

``simulate_linear_np`` runs the actual NP rule on the same task (float64, one sample per step) so
theory and simulation can be drawn side by side (Fig. 1A, Fig. 3A).

Everything here is float64; the mean-field functions are pure Python/numpy, the simulation uses
torch for in-place rank-one updates.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "initial_order_parameters",
    "coupling_coefficient",
    "critical_learning_rate",
    "sgd_optimal_learning_rate",
    "mean_field_trajectory",
    "instability_onset",
    "nullcline_eps",
    "simulate_linear_np",
]

#: The critical root is shrunk by this relative margin so that eta* itself is (just) stable.
_CRITICAL_MARGIN = 1e-4
#: Perturbation amplitude of the authors' linear runs (NOTES.md): small enough for the finite
#: difference to be a directional derivative, large enough for float64.
_LINEAR_NP_SIGMA = 1e-6
#: A simulated error beyond this has blown up (eps0 is O(1/Lx)); stop instead of iterating on.
_DIVERGED_EPS = 1e100


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _check_size(name: str, value: object) -> int:
    """Accept Python/numpy integers >= 1 (bools and floats like 2.0 are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_count(name: str, value: object) -> int:
    """Accept Python/numpy integers >= 0 (a number of steps may be zero)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return x


def _check_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return x


def _check_sizes(Lx: object, Lh: object, Ly: object) -> tuple[int, int, int]:
    return _check_size("Lx", Lx), _check_size("Lh", Lh), _check_size("Ly", Ly)


# --------------------------------------------------------------------------------------------
# closed-form quantities
# --------------------------------------------------------------------------------------------


def initial_order_parameters(Lx: int, Lh: int, Ly: int, init_scale: float = 1.0) -> dict:
    """Expected order parameters at Xavier-Glorot initialisation (NOTES.md, "Initial values").

    ``init_scale`` (r) multiplies the variance of W1, as in Fig. 1C; it scales alpha0 and the
    student part of eps0 (E||W2 W1||^2 / (Lx Ly) = 4 r Lh / ((Lx+Lh)(Lh+Ly))). With r = 1 the
    values are exactly NOTES.md's.

    Returns a dict with keys ``alpha0``, ``beta0``, ``eps0``, ``a0``.
    """
    Lx, Lh, Ly = _check_sizes(Lx, Lh, Ly)
    r = _check_positive("init_scale", init_scale)
    alpha0 = 2.0 * r * Lh / (Lx + Lh)
    beta0 = 2.0 * Lh / (Lh + Ly)
    eps0 = 4.0 * r * Lh / ((Lx + Lh) * (Ly + Lh)) + 2.0 / (Lx + Ly)
    a0 = alpha0 / np.cbrt(float(Lh))
    return {"alpha0": alpha0, "beta0": beta0, "eps0": eps0, "a0": float(a0)}


def coupling_coefficient(Lx: int, Lh: int, Ly: int, learning_rate: float) -> float:
    """The paper's c_o = eta Lh^(1/3) Lx Ly (1 + beta0): sets the threshold a = 2/c_o."""
    Lx, Lh, Ly = _check_sizes(Lx, Lh, Ly)
    lr = _check_positive("learning_rate", learning_rate)
    beta0 = initial_order_parameters(Lx, Lh, Ly)["beta0"]
    return float(lr * np.cbrt(float(Lh)) * Lx * Ly * (1.0 + beta0))


def critical_learning_rate(Lx: int, Lh: int, Ly: int, init_scale: float = 1.0) -> float:
    """eta*: the largest rate at which the sigma_t = 0 mean-field error still reaches zero.

    Eq. 12 conserves eps - a^3/3 + a^2/c, so eps(a) is a cubic in a with its minimum at a = 2/c;
    the error reaches zero first iff that minimum is <= 0, i.e. iff
    f(c) = (eps0 - a0^3/3) c^3 + a0^2 c^2 - 4/3 <= 0. c is (1 - 1e-4) times the critical root of
    f, and eta* = c / (Lx Ly (1 + beta0) Lh^(1/3)).

    NOTES.md (and the authors' code) take the largest real root. Since f(0) < 0, when
    eps0 > a0^3/3 (always the case at init_scale = 1) f has exactly one positive root and that
    is the largest real root; we use it. With a strongly scaled-up W1 (eps0 < a0^3/3, e.g.
    init_scale >~ 4 at Lx=100, Lh=1e4, Ly=10) f has two positive roots and the larger one lies
    where a0 > 2/c already, i.e. the error rises from the first step; there the smaller positive
    root is the threshold (checked against the map), so we take the smallest positive root.
    """
    Lx, Lh, Ly = _check_sizes(Lx, Lh, Ly)
    p = initial_order_parameters(Lx, Lh, Ly, init_scale)
    eps0, a0, beta0 = p["eps0"], p["a0"], p["beta0"]
    coeffs = [eps0 - a0**3 / 3.0, a0**2, 0.0, -4.0 / 3.0]
    roots = np.roots(coeffs)
    scale = max(1.0, float(np.max(np.abs(roots)))) if roots.size else 1.0
    # np.roots returns complex values; a real root has an imaginary part at rounding level
    real = [float(z.real) for z in roots if abs(z.imag) <= 1e-9 * scale]
    positive = [r for r in real if r > 0.0]
    if not positive:
        raise ValueError(
            f"no positive real root of the eta* cubic for Lx={Lx}, Lh={Lh}, Ly={Ly}, "
            f"init_scale={init_scale} (coefficients {coeffs}, roots {roots.tolist()}): the "
            "mean-field error never reaches zero, so there is no critical learning rate"
        )
    root = max(real) if coeffs[0] > 0.0 else min(positive)
    c = (1.0 - _CRITICAL_MARGIN) * root
    return float(c / (Lx * Ly * (1.0 + beta0) * np.cbrt(float(Lh))))


def sgd_optimal_learning_rate(Lx: int, Lh: int, Ly: int) -> float:
    """SGD's optimal learning rate at initialisation, 1 / (Lx (alpha0 + beta0))."""
    p = initial_order_parameters(Lx, Lh, Ly)
    return float(1.0 / (int(Lx) * (p["alpha0"] + p["beta0"])))


def nullcline_eps(
    a: np.ndarray | float, c: float, sigma_t: float, Lx: int
) -> np.ndarray | float:
    """Eq. 14's nullcline eps = c a s / (2 - c a), s = sigma_t^2 / Lx: below it the error rises.

    ``c`` is the coupling coefficient (:func:`coupling_coefficient`). Returns nan where
    2 - c a <= 0 (beyond the threshold a = 2/c the error rises at any eps). A scalar ``a`` gives
    a float, an array gives an array of the same shape.
    """
    c = _check_positive("c", c)
    sigma_t = _check_nonnegative("sigma_t", sigma_t)
    Lx = _check_size("Lx", Lx)
    s = sigma_t**2 / Lx
    arr = np.asarray(a, dtype=np.float64)
    denom = 2.0 - c * arr
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0.0, c * arr * s / np.where(denom > 0.0, denom, 1.0), np.nan)
    if np.ndim(a) == 0:
        return float(out)
    return out


# --------------------------------------------------------------------------------------------
# the two-variable map
# --------------------------------------------------------------------------------------------


def _map_constants(
    Lx: int, Lh: int, Ly: int, learning_rate: float, sigma_t: float, init_scale: float
) -> tuple[float, float, float, float, float]:
    """(a0, eps0, eta_h, c, s) of NOTES.md's map, validated."""
    Lx, Lh, Ly = _check_sizes(Lx, Lh, Ly)
    lr = _check_positive("learning_rate", learning_rate)
    sigma_t = _check_nonnegative("sigma_t", sigma_t)
    p = initial_order_parameters(Lx, Lh, Ly, init_scale)
    eta_h = lr * float(np.cbrt(float(Lh)))
    c = eta_h * Lx * Ly * (1.0 + p["beta0"])
    s = sigma_t**2 / Lx
    return p["a0"], p["eps0"], eta_h, c, s


def mean_field_trajectory(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    sigma_t: float = 0.0,
    *,
    init_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterate the two-variable mean-field map once per sample, ``steps`` times.

    Returns ``(a, eps)``, float64 arrays of length ``steps + 1``: index 0 holds the initial values
    (a0, eps0), index t the values after t samples. Each iteration is

        a   <- a   + eta_h c (eps + s)
        eps <- eps + eta_h (-2 a eps + c a^2 (eps + s))

    with both right-hand sides evaluated at the OLD (a, eps) (simultaneous update: an explicit
    Euler step of Eq. 12, as in NOTES.md and the authors' code). If the map overflows (above
    the critical rate the error blows up in finite time), the loop stops and both arrays read
    +inf from the first step at which either is non-finite (no warnings).
    """
    steps = _check_count("steps", steps)
    a, eps, eta_h, c, s = _map_constants(Lx, Lh, Ly, learning_rate, sigma_t, init_scale)
    a_out = np.full(steps + 1, np.nan)
    eps_out = np.full(steps + 1, np.nan)
    # Python floats: overflow gives inf silently and avoids numpy scalar overhead per step.
    a_list = [a]
    eps_list = [eps]
    k = eta_h * c
    isfinite = math.isfinite
    for _ in range(steps):
        a, eps = a + k * (eps + s), eps + eta_h * (-2.0 * a * eps + c * a * a * (eps + s))
        a_list.append(a)
        eps_list.append(eps)
        if not (isfinite(a) and isfinite(eps)):
            break
    n = len(a_list)
    a_out[:n] = a_list
    eps_out[:n] = eps_list
    if n < steps + 1 or not (isfinite(a_list[-1]) and isfinite(eps_list[-1])):
        # Blew up: inf - inf may have produced nan, but the map only overflows upwards (a is
        # non-decreasing and eps grows like a^3), so both read +inf from the blow-up on.
        a_out[n - 1 :] = math.inf
        eps_out[n - 1 :] = math.inf
    return a_out, eps_out


def instability_onset(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    sigma_t: float,
    max_steps: int = 10**7,
    *,
    init_scale: float = 1.0,
) -> int | None:
    """First iteration t at which the mean-field error rises: eps[t] > eps[t-1].

    t uses :func:`mean_field_trajectory`'s indexing (t >= 1 samples seen). The authors' code
    reports the 0-based index of the update instead, i.e. t - 1. Returns None if the error keeps
    falling for ``max_steps`` iterations. Iterates without storing the trajectory, so 1e7 steps
    cost seconds and no memory.
    """
    max_steps = _check_count("max_steps", max_steps)
    a, eps, eta_h, c, s = _map_constants(Lx, Lh, Ly, learning_rate, sigma_t, init_scale)
    k = eta_h * c
    for t in range(1, max_steps + 1):
        deps = eta_h * (-2.0 * a * eps + c * a * a * (eps + s))
        if deps > 0.0:
            return t
        a, eps = a + k * (eps + s), eps + deps
        if not math.isfinite(eps):  # pragma: no cover - cannot fall to -inf while deps <= 0
            return None
    return None


# --------------------------------------------------------------------------------------------
# simulation of the NP rule itself
# --------------------------------------------------------------------------------------------


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
    sigma: float = _LINEAR_NP_SIGMA,
    init_scale: float = 1.0,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run node perturbation on the linear student-teacher task, one sample per step, float64.

    Teacher A ~ N(0, 2/(Lx+Ly)), student W1 ~ N(0, 2 r/(Lx+Lh)), W2 ~ N(0, 2/(Lh+Ly)), all drawn
    from ``seed``; x ~ N(0, I), target A x + sigma_t z. Each step perturbs both pre-activations,
    y~ = W2 (W1 x + sigma xi1) + sigma xi2, and with dl = l~ - l (l = 1/2 ||y - target||^2)
    updates W1 -= lr (dl/sigma) xi1 x^T, W2 -= lr (dl/sigma) xi2 h^T (h = W1 x, clean).

    Returns ``(steps_recorded, a, eps)``: the step counts 0, record_every, 2 record_every, ...
    (and ``steps`` itself), or 0, the sorted ``record_steps`` (any in 1..steps; e.g. log-spaced
    for log-log plots) and ``steps`` when those are given, with a = ||W1||^2/(Lx Lh^(1/3)) and
    eps = ||W2 W1 - A||^2/(Lx Ly) measured there. eps is only formed at recording steps, since
    W2 W1 costs O(Lx Lh Ly) while a step costs O(Lh (Lx + Ly)). A run whose error passes 1e100
    (or overflows) has diverged: it stops there and the remaining records are +inf.
    """
    import torch  # local: the mean-field functions must not pay for importing torch

    Lx, Lh, Ly = _check_sizes(Lx, Lh, Ly)
    lr = _check_positive("learning_rate", learning_rate)
    steps = _check_count("steps", steps)
    sigma_t = _check_nonnegative("sigma_t", sigma_t)
    record_every = _check_size("record_every", record_every)
    sigma = _check_positive("sigma", sigma)
    r = _check_positive("init_scale", init_scale)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")

    dev = torch.device(device)
    dt = torch.float64
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dt, device=dev)

    A = randn(Ly, Lx) * math.sqrt(2.0 / (Lx + Ly))
    W1 = randn(Lh, Lx) * math.sqrt(2.0 * r / (Lx + Lh))
    W2 = randn(Ly, Lh) * math.sqrt(2.0 / (Lh + Ly))

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
    n_rec = len(record_at)
    a_rec = np.full(n_rec, np.nan)
    eps_rec = np.full(n_rec, np.nan)
    cbrt_lh = float(np.cbrt(float(Lh)))

    def measure(i: int) -> None:
        a_rec[i] = float(torch.sum(W1 * W1)) / (Lx * cbrt_lh)
        D = W2 @ W1 - A
        eps_rec[i] = float(torch.sum(D * D)) / (Lx * Ly)

    measure(0)
    next_rec = 1
    diverged = False
    n_noise = Lx + Ly + Lh + Ly
    with torch.no_grad():
        for t in range(1, steps + 1):
            # one draw per step for all the step's noise: fewer small-kernel calls
            noise = randn(n_noise)
            x = noise[:Lx]
            z = noise[Lx : Lx + Ly]
            xi1 = noise[Lx + Ly : Lx + Ly + Lh]
            xi2 = noise[Lx + Ly + Lh :]
            target = A @ x
            if sigma_t > 0.0:
                target = target + sigma_t * z
            h = W1 @ x
            err = W2 @ h - target
            err_p = W2 @ (h + sigma * xi1) + sigma * xi2 - target
            dl = 0.5 * (torch.dot(err_p, err_p) - torch.dot(err, err))
            k = lr * float(dl) / sigma
            if not math.isfinite(k):
                diverged = True
                break
            W1.addr_(xi1, x, alpha=-k)
            W2.addr_(xi2, h, alpha=-k)
            if t == record_at[next_rec]:
                measure(next_rec)
                next_rec += 1
                if not eps_rec[next_rec - 1] <= _DIVERGED_EPS:  # also catches nan
                    diverged = True
                    break
                if next_rec == n_rec:
                    break
    if diverged:
        a_rec[next_rec:] = np.inf
        eps_rec[next_rec:] = np.inf
    return np.asarray(record_at, dtype=np.int64), a_rec, eps_rec
