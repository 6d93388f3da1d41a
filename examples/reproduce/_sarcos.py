"""SARCOS training curves for the nonlinear panels (Figs. 4B, 4C): test error and ||W1||^2.

Uses only the public API: ``gym.make_vec("NPSarcos-v0")``, ``agents.make_agent`` and
``np_envs.evaluate``. On this machine only the 4,449-row test file exists, so the default split
scheme is ``"test-file"`` (contiguous blocks of that file for train and test); an epoch there is
~3,600 samples (36 batches of 100), twelve times fewer updates than an epoch of the paper's
44,484-row training file, which is why curves are also reported in updates.
"""

from __future__ import annotations

import math
import sys
from concurrent.futures import ProcessPoolExecutor
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


def train_curve(
    rule: str,
    width: int,
    learning_rate: float,
    seed: int,
    epochs: int,
    eval_every: int,
    split_scheme: str = "test-file",
    agent_kwargs: dict[str, Any] | None = None,
) -> dict:
    """Train one agent on SARCOS; test MSE and ||W1||_F^2 every ``eval_every`` epochs.

    Returns ``{"epoch", "updates", "mse", "w1_sq", "diverged", ...settings}``; after a
    divergence the remaining records are inf.
    """
    import gymnasium as gym
    import torch

    import np_envs
    from agents import make_agent
    from np_envs.data import load_sarcos

    torch.set_num_threads(1)
    kw = dict(agent_kwargs or {})
    if rule != "sgd":
        kw.setdefault("sigma", SIGMA)
    env = gym.make_vec(
        "NPSarcos-v0", num_envs=BATCH, split_scheme=split_scheme, reveal_target=rule == "sgd"
    )
    test_env = gym.make_vec("NPSarcos-v0", num_envs=BATCH, split="test", split_scheme=split_scheme)
    agent = make_agent(
        rule, env, hidden_sizes=(width,), learning_rate=learning_rate, seed=seed, **kw
    )
    n_train = int(load_sarcos("train", split_scheme)[0].shape[0])
    batches_per_epoch = math.ceil(n_train / BATCH)
    steps_per_epoch = int(agent.evals_per_input) * BATCH * batches_per_epoch
    first = next(m for m in agent.network.modules() if isinstance(m, torch.nn.Linear))

    def record() -> tuple[float, float]:
        mse = float(np_envs.evaluate(agent, test_env, split="test")["mse"])
        return mse, float(torch.sum(first.weight.detach().double() ** 2))

    epochs_at, mses, norms = [0], *([v] for v in record())
    diverged = False
    for e in range(eval_every, epochs + 1, eval_every):
        try:
            agent.learn(steps_per_epoch * eval_every, reset_num_timesteps=False)
            mse, w1 = record()
        except (ValueError, RuntimeError, FloatingPointError):  # NaN actions are refused
            mse, w1 = math.inf, math.inf
        epochs_at.append(e)
        mses.append(mse)
        norms.append(w1)
        if not mse <= DIVERGED_MSE:
            diverged = True
            break
    env.close()
    test_env.close()
    return {
        "rule": rule,
        "width": width,
        "learning_rate": learning_rate,
        "seed": seed,
        "epoch": np.asarray(epochs_at),
        "updates": np.asarray(epochs_at) * batches_per_epoch,
        "mse": np.asarray(mses),
        "w1_sq": np.asarray(norms),
        "diverged": diverged,
        "batches_per_epoch": batches_per_epoch,
    }


def _job(kw: dict) -> dict:
    return train_curve(**kw)


def run_many(jobs: list[dict], workers: int = 1) -> list[dict]:
    """:func:`train_curve` for each kwargs dict, in a process pool if ``workers`` > 1."""
    if workers <= 1 or len(jobs) <= 1:
        return [train_curve(**j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_job, jobs))


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
