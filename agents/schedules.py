"""Learning-rate schedules as Stable-Baselines3 users know them, and device resolution.

A schedule is a function of ``progress_remaining`` (1 at the start of ``learn``, 0 at its end),
exactly as in SB3. Besides a callable, a rate may be written as RL Zoo's string ``"lin_1e-3"``
(linear from 1e-3 to 0): a string is data, so it is saved with the agent and survives the
runner's reloads; a callable is kept in memory only (``save`` records its current value).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

Schedule = Callable[[float], float]


class LinearSchedule:
    """``initial * progress_remaining`` (RL Zoo's ``lin_<initial>``)."""

    def __init__(self, initial: float) -> None:
        self.initial = float(initial)

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * progress_remaining

    def __repr__(self) -> str:
        return f"lin_{self.initial:g}"


def parse_rate(value: Any, name: str = "learning_rate") -> tuple[float, Schedule | None]:
    """``(value at the start, schedule or None)`` from a number, ``"lin_<x>"`` or a callable.

    Raises ValueError for a negative, NaN or infinite rate: a rule must never be trained uphill
    or into NaN by a typo.
    """
    schedule: Schedule | None = None
    if callable(value):
        schedule = value
        start = float(value(1.0))
    elif isinstance(value, str) and value.startswith("lin_"):
        schedule = LinearSchedule(float(value[len("lin_"):]))
        start = schedule(1.0)
    else:
        try:
            start = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, 'lin_<number>' or a callable of the "
                             f"remaining progress, got {value!r}") from None
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return start, schedule


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device on a CPU-only torch is refused
    in one line instead of failing deep inside a kernel."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}, but this torch ({torch.__version__}) sees no "
                         "CUDA device: use device='cpu' (or 'auto'), or install a CUDA build")
    return dev
