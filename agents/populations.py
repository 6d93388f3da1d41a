"""``make_population``: a grid of learners of one rule, as one program when the rule allows it.

A rule written over the member axis (every built-in) trains the whole grid as one batched
program (agents/population.py). A plug-in written against the single-agent hooks still works:
its members are ordinary agents trained one after another (correct, not faster), behind the
same calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents.registry import resolve_agent


def population_grid(
    seeds: Sequence[int], learning_rates: Sequence[float],
    sigmas: Sequence[float] | None = None,
) -> dict[str, list[Any]]:
    """Per-member lists for seeds x learning rates (x sigmas), seed-major.

    Seed-major order puts the members that share a data stream side by side, which is the
    layout whose first layer needs no copy of the inputs.
    """
    if not seeds or not learning_rates or (sigmas is not None and not sigmas):
        raise ValueError("seeds, learning_rates (and sigmas, if given) must be non-empty")
    axes = [list(seeds), list(learning_rates)] + ([list(sigmas)] if sigmas is not None else [])
    grid = list(itertools.product(*axes))
    members: dict[str, list[Any]] = {
        "seed": [int(g[0]) for g in grid],
        "learning_rate": [float(g[1]) for g in grid],
    }
    if sigmas is not None:
        members["sigma"] = [float(g[2]) for g in grid]
    return members


def make_population(
    name: str, env: Any, *, learning_rates: Sequence[float], seeds: Sequence[int] = (0,),
    sigmas: Sequence[float] | None = None, **kwargs: Any,
) -> Any:
    """Learners of rule ``name`` for every seed x learning rate (x sigma) on ``env``.

    Member p of the result is the single agent ``make_agent(name, env, seed=s_p,
    learning_rate=lr_p, sigma=sigma_p, **kwargs)``; ``.member(p)`` returns it as one.
    Members are ordered seed-major: ``p = (seed index * len(lrs) + lr index) * len(sigmas) +
    sigma index``.
    """
    members = population_grid(seeds, learning_rates, sigmas)
    cls = resolve_agent(name)
    if getattr(cls, "population_native", False):
        return cls(env, **members, **kwargs)
    return SequentialPopulation(name, env, members, **kwargs)


class SequentialPopulation:
    """Members of a rule with no population implementation, trained one after another.

    Each member gets its own copy of the environment (same task and settings, its own data
    stream), so member p is exactly the single run with p's settings.
    """

    population_native = False

    def __init__(self, name: str, env: Any, members: dict[str, list[Any]],
                 **kwargs: Any) -> None:
        from agents.registry import make_agent

        size = len(next(iter(members.values())))
        self.name = name
        self.num_members = size
        self.envs = [env if p == 0 else _copy_env(env) for p in range(size)]
        self.members = [
            make_agent(name, self.envs[p], **{k: v[p] for k, v in members.items()}, **kwargs)
            for p in range(size)
        ]
        self.seeds = list(members["seed"])
        self.learning_rates = list(members["learning_rate"])
        self.diverged_at: list[int | None] = [None] * size

    @property
    def diverged(self) -> list[bool]:
        return [d is not None for d in self.diverged_at]

    @property
    def num_timesteps(self) -> int:
        return min(m.num_timesteps for m in self.members)

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 100,
              tb_log_name: str = "run", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> SequentialPopulation:
        """Every member learns ``total_timesteps`` env steps; one that diverges is left there."""
        for p, agent in enumerate(self.members):
            if self.diverged_at[p] is not None:
                continue
            try:
                agent.learn(total_timesteps, callback=callback, log_interval=log_interval,
                            tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                            progress_bar=progress_bar)
            except (ValueError, FloatingPointError, OverflowError) as err:
                if "nan" not in str(err).lower() and "inf" not in str(err).lower():
                    raise
                self.diverged_at[p] = int(agent.num_timesteps)
        return self

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None, deterministic: bool = True,
                member: int | None = None) -> tuple[np.ndarray, None]:
        if member is not None:
            return self.members[member].predict(observation, deterministic=deterministic)
        answers = [m.predict(observation, deterministic=deterministic)[0] for m in self.members]
        return np.stack(answers), None

    def member(self, p: int) -> Any:
        return self.members[p]


def _copy_env(env: Any) -> Any:
    """The same task and settings as ``env``, a new instance (its own data stream)."""
    spec = getattr(env, "spec", None) or getattr(getattr(env, "unwrapped", None), "spec", None)
    if spec is None:
        raise ValueError("a population of a plug-in rule needs an env made with gym.make or "
                         "gym.make_vec (each member gets its own copy, rebuilt from env.spec)")
    kwargs = {k: v for k, v in spec.kwargs.items()
              if k not in ("num_envs", "vectorization_mode", "vector_kwargs")}
    if isinstance(env, gym.vector.VectorEnv):
        return gym.make_vec(spec.id, num_envs=env.num_envs, **kwargs)
    return gym.make(spec.id, **kwargs)
