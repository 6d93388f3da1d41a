"""Experiments at scale: compare rules, sweep learning rates and widths, diagnose, plot.

Modules, one job each: :mod:`results` (atomic files, append-only rows, run folders),
:mod:`spec` (what one run is), :mod:`defaults` (per-task settings), :mod:`config` (flags and
YAML to specs), :mod:`cliargs` (the shared flags), :mod:`envstate` (resumable data order),
:mod:`runner` (one run: chunks, evaluation, checkpoints, divergence), :mod:`executor`
(in-process, process pool, Ray), :mod:`compare` and :mod:`sweep` (grids and their tables),
:mod:`summary` (tables), :mod:`plots` (PNG figures), :mod:`diagnostics` (cosine to SGD, weight
norms, participation ratio, as functions and SB3 callbacks).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExperimentEnv": "envstate",
    "RunSpec": "spec",
    "Runner": "runner",
    "run_job": "runner",
    "run_compare": "compare",
    "run_sweep": "sweep",
    "execute": "executor",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use: the command line must not pay for torch before it needs it."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"np_envs.experiments.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'np_envs.experiments' has no attribute {name!r}")
