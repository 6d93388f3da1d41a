"""Cost of one NP update against one SGD update, and of one NP epoch, through the real agents.

One process, CPU, float32. "One NP update" is everything ``learn()`` does per trial: the clean
pass, the env step, the perturbed pass, the second env step and the weight update. "One SGD
update" is the SGD oracle's trial: forward, one env step (``evals_per_input=1``,
``reveal_target=True``), autograd backward of ``np_envs.losses.loss_torch``, the step. Both are
timed through ``agent.learn`` so the numbers include every overhead a user pays.

SARCOS uses a synthetic set of the full training file's shape (44,484 x 21 -> 7, passed with the
env's ``arrays=`` hook) so it runs without the training file; MNIST uses the real data
(``NP_ENVS_DATA``). Targets: NP/SGD <= 1.25 at every width; one NP epoch at width 800 under
0.33 s (SARCOS, B=100) and 4.7 s (MNIST, B=1000) on a 2-core machine.

Run: ``python benchmarks/bench_agents.py`` (``--quick`` for fewer repeats).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import np_envs  # noqa: F401  (registers the environments)
from agents import make_agent

SARCOS_ROWS, SARCOS_IN, SARCOS_OUT = 44_484, 21, 7
WIDTHS = (100, 800, 3200)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_sarcos() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((SARCOS_ROWS, SARCOS_IN)).astype(np.float32)
    torques = inputs @ rng.standard_normal((SARCOS_IN, SARCOS_OUT)) * 0.3
    return inputs, torques


def make_env(task: str, batch: int, evals: int, reveal: bool, arrays) -> gym.vector.VectorEnv:
    if task == "sarcos":
        return gym.make_vec("NPSarcos-v0", num_envs=batch, evals_per_input=evals,
                            reveal_target=reveal, arrays=arrays)
    return gym.make_vec("NPMNIST-v0", num_envs=batch, evals_per_input=evals,
                        reveal_target=reveal)


def best_times(runs: list[Callable[[], None]], repeats: int) -> list[float]:
    """Best wall time of each run, the runs interleaved so that load drifts hit them alike."""
    for run in runs:
        run()  # warm-up: buffers, threads, caches
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def np_and_sgd_per_update(task: str, batch: int, width: int, updates: int, repeats: int,
                          arrays) -> tuple[float, float]:
    """Seconds per update of NP and of the SGD oracle, same width, batch and data."""
    runs, envs = [], []
    for name in ("np", "sgd"):
        evals = 1 if name == "sgd" else 2
        env = make_env(task, batch, evals, name == "sgd", arrays)
        extra = {} if name == "sgd" else {"sigma": 1e-4}
        agent = make_agent(name, env, hidden_sizes=(width,), learning_rate=1e-6, seed=0,
                           **extra)
        steps = updates * evals * batch
        runs.append(lambda a=agent, s=steps: a.learn(s, reset_num_timesteps=False))
        envs.append(env)
    t_np, t_sgd = best_times(runs, repeats)
    for env in envs:
        env.close()
    return t_np / updates, t_sgd / updates


def epoch_time(task: str, batch: int, width: int, repeats: int, arrays) -> float:
    env = make_env(task, batch, 2, False, arrays)
    agent = make_agent("np", env, hidden_sizes=(width,), learning_rate=1e-6, sigma=1e-4, seed=0)
    rows = SARCOS_ROWS if task == "sarcos" else 60_000
    (seconds,) = best_times([lambda: agent.learn(2 * rows, reset_num_timesteps=False)], repeats)
    env.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer updates and repeats")
    parser.add_argument("--tasks", default="sarcos,mnist")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (best)")
    args = parser.parse_args()
    os.environ.setdefault("NP_ENVS_DATA", str(SHARED_DATA))
    repeats = args.repeats or (3 if args.quick else 15)
    arrays = synthetic_sarcos()
    tasks = args.tasks.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}, float32, CPU; best of {repeats}")
    print(f"{'task':<7} {'B':>5} {'width':>6} {'NP ms/update':>13} {'SGD ms/update':>14} "
          f"{'NP/SGD':>7}")
    for task in tasks:
        batch = 100 if task == "sarcos" else 1000
        for width in WIDTHS:
            # short runs, many repeats, best kept: on a shared machine the best run is the one
            # least disturbed by other processes; about the same work per run at every width,
            # so a small network's few milliseconds are not lost in timer and scheduler noise
            updates = {"sarcos": 100, "mnist": 6}[task]
            updates = max(2, updates * 800 // width)
            t_np, t_sgd = np_and_sgd_per_update(task, batch, width, updates, repeats, arrays)
            print(f"{task:<7} {batch:>5} {width:>6} {t_np * 1e3:>13.3f} {t_sgd * 1e3:>14.3f} "
                  f"{t_np / t_sgd:>7.2f}", flush=True)
    targets = {"sarcos": 0.33, "mnist": 4.7}
    for task in tasks:
        batch = 100 if task == "sarcos" else 1000
        seconds = epoch_time(task, batch, 800, max(2, repeats // 3), arrays)
        note = " (synthetic 44,484 x 21 -> 7)" if task == "sarcos" else ""
        print(f"NP epoch {task}{note}, width 800, B={batch}: {seconds:.3f} s "
              f"(target < {targets[task]} s)", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
