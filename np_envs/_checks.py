"""Argument checks shared by the linear-task theory and simulation: clear errors, exact types.

Why strict: a float size (100.0) or a bool step count is almost always a caller's mistake, and
the closed forms would silently accept it.
"""

from __future__ import annotations

import math
import numbers


def check_size(name: str, value: object) -> int:
    """Accept Python/numpy integers >= 1 (bools and floats like 2.0 are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_count(name: str, value: object) -> int:
    """Accept Python/numpy integers >= 0 (a number of steps may be zero)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return x


def check_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return x


def check_sizes(Lx: object, Lh: object, Ly: object) -> tuple[int, int, int]:
    return check_size("Lx", Lx), check_size("Lh", Lh), check_size("Ly", Ly)
