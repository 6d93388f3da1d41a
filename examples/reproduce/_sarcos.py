"""SARCOS training curves for the nonlinear panels (Figs. 4B, 4C, 4F): test error and ||W1||^2.

A panel is a configuration of the product's runner (``np_envs.experiments.executor.execute``):
its grid points become run specs, the runner groups those that share rule and width into
population jobs, trains them, writes every run's rows into ``<out>/runs`` as it goes (so a
killed panel resumes where it stopped) and this module turns the rows into curves. On this
machine only the 4,449-row test file exists, so the default split scheme is ``"test-file"``
(contiguous blocks of that file for train and test); an epoch there is ~3,550 samples (35.5
batches of 100), twelve times fewer updates than an epoch of the paper's 44,484-row training
file, which is why curves are also reported in updates.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

# the repository root, so that ``agents`` imports from a source checkout too
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

#: The paper's SARCOS batch and perturbation size (NOTES.md).
BATCH = 100
SIGMA = 1e-4
#: A test MSE beyond this has diverged (the initial error is a few hundred).
DIVERGED_MSE = 1e6
#: the runner's divergence bound, relative to a run's initial test error (~400): ~DIVERGED_MSE
DIVERGENCE_FACTOR = 2500.0


def curve_spec(rule: str, width: int, learning_rate: float, seed: int, epochs: int,
               eval_every: int, split_scheme: str = "test-file",
               agent_kwargs: dict[str, Any] | None = None) -> Any:
    """The run spec of one curve: the runner's configuration of a panel's grid point."""
    from np_envs.experiments import defaults as dflt
    from np_envs.experiments.spec import RunSpec

    kw: dict[str, Any] = {"hidden_sizes": [int(width)], "learning_rate": float(learning_rate),
                          **(agent_kwargs or {})}
    if rule != "sgd":
        kw.setdefault("sigma", SIGMA)
    return RunSpec(
        env_id="NPSarcos-v0", agent=rule, seed=int(seed), budget=float(epochs),
        eval_every=float(eval_every), unit="epochs", num_envs=BATCH,
        env_kwargs={"split_scheme": split_scheme, "evals_per_input": dflt.evals_per_input(rule)},
        agent_kwargs=kw, metric="mse", divergence_factor=DIVERGENCE_FACTOR,
    )


def run_many(jobs: list[dict], workers: int = 1, root: str | Path = "runs/reproduce/sarcos",
             progress: bool = False) -> list[dict]:
    """Train every job (keywords of :func:`curve_spec`) through the runner; one curve each.

    A curve is ``{"epoch", "updates", "mse", "w1_sq", "diverged", ...settings}``, with the
    diverged record (inf where the error is not finite) last.
    """
    from np_envs.data import load_sarcos
    from np_envs.experiments.executor import execute

    specs = [curve_spec(**job) for job in jobs]
    results = {r["run_id"]: r for r in execute(specs, Path(root), jobs=workers,
                                                progress=progress)}
    curves = []
    for job, spec in zip(jobs, specs, strict=True):
        result = results[spec.run_id]
        rows = sorted(result["rows"], key=lambda r: r["chunk"])
        if result["status"] not in ("done", "diverged"):
            raise RuntimeError(f"{spec.run_id} {result['status']}: {result.get('error')}")
        n_train = int(load_sarcos("train", job.get("split_scheme", "test-file"))[0].shape[0])
        per_epoch = n_train / BATCH
        epochs = np.asarray([r["epoch"] for r in rows], dtype=float)
        curves.append({
            "rule": job["rule"], "width": job["width"], "learning_rate": job["learning_rate"],
            "seed": job["seed"], "epoch": epochs,
            "updates": np.asarray([r["trials"] for r in rows]),
            "mse": np.asarray([_value(r["test_mse"]) for r in rows]),
            "w1_sq": np.asarray([_value(r.get("w2_l0")) for r in rows]),
            "diverged": result["status"] == "diverged",
            "batches_per_epoch": per_epoch,
        })
    return curves


def _value(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else math.inf


def onset_and_return(epochs: np.ndarray, mse: np.ndarray) -> tuple[float, float]:
    """Epoch of the minimum test error if it rose by >10 % afterwards (else inf), and the first
    epoch after the minimum at which the error exceeds 1.1 x its initial value (else inf):
    Fig. 4C's two measures."""
    m = np.where(np.isfinite(mse), mse, np.inf)
    imin = int(np.argmin(m))
    after = m[imin:]
    onset = float(epochs[imin]) if np.any(after > 1.1 * m[imin]) else math.inf
    back = np.flatnonzero(after > 1.1 * m[0])
    ret = float(epochs[imin + back[0]]) if back.size else math.inf
    return onset, ret
