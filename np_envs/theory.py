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

:func:`mean_field_four_variable` iterates the authors' four-variable description (alpha, beta,
eps and a cross term phi) without the reduction to (a, eps); it tracks simulations more closely
late in training, where the two-variable map sits above them, so plots can draw both.

``simulate_linear_np`` (from np_envs/linear_simulation.py, re-exported here) runs the actual NP
rule on the same task so theory and simulation can be drawn side by side (Fig. 1A, Fig. 3A).

Everything here is float64 and pure Python/numpy (importing it does not import torch).
"""

from __future__ import annotations

import math

import numpy as np

from np_envs._checks import (
    check_count,
    check_nonnegative,
    check_positive,
    check_size,
    check_sizes,
)
from np_envs.linear_simulation import simulate_linear_np

__all__ = [
    "initial_order_parameters",
    "coupling_coefficient",
    "critical_learning_rate",
    "sgd_optimal_learning_rate",
    "mean_field_trajectory",
    "mean_field_four_variable",
    "instability_onset",
    "nullcline_eps",
    "simulate_linear_np",
]

#: The critical root is shrunk by this relative margin so that eta* itself is (just) stable.
_CRITICAL_MARGIN = 1e-4


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
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    r = check_positive("init_scale", init_scale)
    alpha0 = 2.0 * r * Lh / (Lx + Lh)
    beta0 = 2.0 * Lh / (Lh + Ly)
    eps0 = 4.0 * r * Lh / ((Lx + Lh) * (Ly + Lh)) + 2.0 / (Lx + Ly)
    a0 = alpha0 / np.cbrt(float(Lh))
    return {"alpha0": alpha0, "beta0": beta0, "eps0": eps0, "a0": float(a0)}


def coupling_coefficient(Lx: int, Lh: int, Ly: int, learning_rate: float) -> float:
    """The paper's c_o = eta Lh^(1/3) Lx Ly (1 + beta0): sets the threshold a = 2/c_o."""
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    lr = check_positive("learning_rate", learning_rate)
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
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
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
    c = check_positive("c", c)
    sigma_t = check_nonnegative("sigma_t", sigma_t)
    Lx = check_size("Lx", Lx)
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
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    lr = check_positive("learning_rate", learning_rate)
    sigma_t = check_nonnegative("sigma_t", sigma_t)
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
    steps = check_count("steps", steps)
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


def mean_field_four_variable(
    Lx: int,
    Lh: int,
    Ly: int,
    learning_rate: float,
    steps: int,
    sigma_t: float = 0.0,
) -> dict[str, np.ndarray]:
    """Iterate the four-variable mean-field model (paper/NOTES.md) once per sample.

    Why beside the two-variable map: it keeps alpha, beta and the cross term phi separate
    instead of reducing them to ``a``, and follows the simulated error more closely late in
    training. Each iteration, with every right-hand side at the values before it,

        q     = Lx eps + sigma_t^2
        n     = eta^2 (Ly (1+beta)(alpha^2 + beta) + 4 alpha beta) q
        psi   = psi0 - (eps + 2 phi),  psi0 = 2/(Lx+Ly)
        alpha <- alpha + 2 eta Ly phi + eta^2 Lh Ly (1+beta) q
        beta  <- beta  + 2 eta Lx phi + eta^2 Lx Ly alpha (1+beta) q
        eps   <- eps - 2 eta (alpha+beta) eps - 4 eta^2 phi (Lx Ly eps + sigma_t^2) + n
        phi   <- phi + eta (alpha+beta)(eps - phi)
                     + 2 eta^2 (Lx Ly phi (eps - phi) - sigma_t^2 (psi - phi)) - n

    from alpha0, beta0, eps0 and phi0 = -4Lh/((Lx+Lh)(Ly+Lh)).

    Args:
        Lx, Lh, Ly: input, hidden and output sizes.
        learning_rate: eta per sample (not eta_h).
        steps: number of samples (iterations).
        sigma_t: teacher noise std.

    Returns:
        Dict of float64 arrays ``alpha``, ``beta``, ``eps``, ``phi`` of length ``steps + 1``
        (index t: after t samples). If the model overflows, every array reads +inf from the
        first non-finite step on (no warnings).
    """
    steps = check_count("steps", steps)
    Lx, Lh, Ly = check_sizes(Lx, Lh, Ly)
    eta = check_positive("learning_rate", learning_rate)
    sigma_t = check_nonnegative("sigma_t", sigma_t)
    p = initial_order_parameters(Lx, Lh, Ly)
    alpha, beta, eps = p["alpha0"], p["beta0"], p["eps0"]
    phi = -4.0 * Lh / ((Lx + Lh) * (Ly + Lh))
    psi0 = 2.0 / (Lx + Ly)
    s2 = sigma_t**2
    eta2 = eta * eta
    out = [(alpha, beta, eps, phi)]
    isfinite = math.isfinite
    for _ in range(steps):
        q = Lx * eps + s2
        n = eta2 * (Ly * (1.0 + beta) * (alpha * alpha + beta) + 4.0 * alpha * beta) * q
        psi = psi0 - (eps + 2.0 * phi)
        alpha, beta, eps, phi = (
            alpha + 2.0 * eta * Ly * phi + eta2 * Lh * Ly * (1.0 + beta) * q,
            beta + 2.0 * eta * Lx * phi + eta2 * Lx * Ly * alpha * (1.0 + beta) * q,
            eps - 2.0 * eta * (alpha + beta) * eps - 4.0 * eta2 * phi * (Lx * Ly * eps + s2) + n,
            phi + eta * (alpha + beta) * (eps - phi)
            + 2.0 * eta2 * (Lx * Ly * phi * (eps - phi) - s2 * (psi - phi)) - n,
        )
        if not all(isfinite(v) for v in (alpha, beta, eps, phi)):
            break
        out.append((alpha, beta, eps, phi))
    arr = np.full((steps + 1, 4), math.inf)
    arr[: len(out)] = out
    return {k: arr[:, i].copy() for i, k in enumerate(("alpha", "beta", "eps", "phi"))}


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
    max_steps = check_count("max_steps", max_steps)
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
