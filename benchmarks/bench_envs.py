"""How much of a training step the environment costs: one batched env step vs one NP update.

The NP update is written in plain torch (clean forward, perturbed forward, outer-product update)
at width 800 on the same batch, so the ratio says whether the environment can ever be the
bottleneck. Target: env step / NP update <= 0.10. Run: ``python benchmarks/bench_envs.py``.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
import torch

from np_envs.envs.mnist import MNISTVectorEnv
from np_envs.envs.sarcos import SarcosVectorEnv

WIDTH = 800


def np_shaped_update(obs_dim: int, out_dim: int, batch: int, width: int = WIDTH):
    """A minimal NP step in plain torch; returns a closure taking a float32 obs batch."""
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(width, obs_dim, generator=gen) * (2 / (obs_dim + width)) ** 0.5
    b1 = torch.zeros(width)
    w2 = torch.randn(out_dim, width, generator=gen) * (2 / (out_dim + width)) ** 0.5
    b2 = torch.zeros(out_dim)
    target = torch.randn(batch, out_dim, generator=gen)
    sigma, lr = 1e-4, 1e-6

    def step(obs: np.ndarray) -> None:
        with torch.no_grad():
            x = torch.from_numpy(obs)
            u1 = torch.addmm(b1, x, w1.T)
            h1 = torch.relu(u1)
            y = torch.addmm(b2, h1, w2.T)
            xi1 = torch.randn(batch, width, generator=gen)
            xi2 = torch.randn(batch, out_dim, generator=gen)
            h1p = torch.relu(u1 + sigma * xi1)
            yp = torch.addmm(b2, h1p, w2.T) + sigma * xi2
            dl = (0.5 * ((yp - target) ** 2).sum(1) - 0.5 * ((y - target) ** 2).sum(1)) / sigma
            g1, g2 = xi1 * dl[:, None], xi2 * dl[:, None]
            w1.addmm_(g1.T, x, alpha=-lr)
            w2.addmm_(g2.T, h1, alpha=-lr)
            b1.add_(g1.sum(0), alpha=-lr)
            b2.add_(g2.sum(0), alpha=-lr)

    return step


def measure(name: str, env, obs_dim: int, out_dim: int, repeats: int) -> tuple[float, float]:
    obs, _ = env.reset(seed=0)
    actions = np.zeros((env.num_envs, out_dim), np.float32)
    update = np_shaped_update(obs_dim, out_dim, env.num_envs)
    env_time = min(timeit.repeat(lambda: env.step(actions), number=repeats, repeat=5)) / repeats
    upd_time = min(timeit.repeat(lambda: update(obs), number=repeats, repeat=5)) / repeats
    print(
        f"{name:<8} B={env.num_envs:<5} env step {env_time * 1e6:9.1f} us   "
        f"NP update (width {WIDTH}) {upd_time * 1e6:9.1f} us   ratio {env_time / upd_time:.3f}"
    )
    return env_time, upd_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    sarcos = SarcosVectorEnv(  # synthetic set of the GPML training file's shape
        num_envs=100, arrays=(rng.normal(size=(44_484, 21)), rng.normal(size=(44_484, 7)))
    )
    measure("SARCOS", sarcos, 21, 7, repeats=500)
    try:
        mnist = MNISTVectorEnv(num_envs=1000)
    except Exception as exc:  # no MNIST files: say so, the SARCOS row still stands
        print(f"MNIST    skipped: {exc}")
        return
    measure("MNIST", mnist, 784, 10, repeats=20)


if __name__ == "__main__":
    main()
