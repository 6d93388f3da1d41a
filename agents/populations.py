"""``make_population``: a grid of learners of one rule, as one program when the rule allows it.

A rule written over the member axis (every built-in) trains the whole grid as one batched
program (agents/population.py). A plug-in written against the single-agent hooks still works:
its members are ordinary agents trained one after another (correct, not faster), behind the
same calls (``learn``, ``predict``, ``member``, ``select``, ``freeze``, ``get_parameters`` /
``set_parameters``, ``save`` / ``load``).
"""

from __future__ import annotations

import itertools
import json
import pathlib
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.checkpoint import policy_state, zip_path_for_save
from agents.population import checked_members
from agents.registry import resolve_agent

#: the kind written in a saved SequentialPopulation's ``population.json``
SEQUENTIAL_KIND = "sequential-population"
SEQUENTIAL_FORMAT = 1


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
    stream), so member p is exactly the single run with p's settings. ``members[p]`` (also
    ``member(p)``) is that ordinary agent itself, not a copy.

    The population API of the built-in rules, member by member: ``get_parameters`` /
    ``set_parameters`` (tensors stacked with the member axis first, as a ``PopulationAgent``'s),
    ``save`` / ``load`` (a zip of every member's own saved agent plus the grid), ``select``
    (some members as a population of their own) and ``freeze`` (stop a member learning).
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
        """The steps every member still learning has taken (frozen members stay behind)."""
        going = [m for m, d in zip(self.members, self.diverged_at, strict=True) if d is None]
        return min(m.num_timesteps for m in going or self.members)

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 100,
              tb_log_name: str = "run", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> SequentialPopulation:
        """Every member learns ``total_timesteps`` env steps; one that diverges is left there,
        and a frozen one (``freeze``) is skipped."""
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

    @property
    def networks(self) -> list[Any]:
        """Every member's network (``networks[p]`` is ``members[p].network``)."""
        return [m.network for m in self.members]

    # ------------------------------------------------------------------ divergence, selection
    def freeze(self, member: int, at: int | None = None) -> None:
        """Stop member p learning (as ``PopulationAgent.freeze``): ``learn`` skips it from now
        on, its weights stay as they are, and ``diverged[p]`` reports it."""
        if not 0 <= member < self.num_members:
            raise IndexError(f"member {member} of a population of {self.num_members}")
        if self.diverged_at[member] is None:
            self.diverged_at[member] = int(self.members[member].num_timesteps if at is None
                                           else at)

    def select(self, members: Sequence[int]) -> SequentialPopulation:
        """These members, in this order, as a population of their own. The selection holds the
        same member agents (and their envs, so each goes on with its own data stream): training
        it trains them, as ``member(p)`` does."""
        members = checked_members(members, self.num_members)
        return SequentialPopulation._of(
            self.name, [self.members[p] for p in members], [self.envs[p] for p in members],
            seeds=[self.seeds[p] for p in members],
            learning_rates=[self.learning_rates[p] for p in members],
            diverged_at=[self.diverged_at[p] for p in members])

    @classmethod
    def _of(cls, name: str, agents: list[Any], envs: list[Any], *, seeds: list[int],
            learning_rates: list[Any], diverged_at: list[int | None]) -> SequentialPopulation:
        """A population around existing member agents (``select``, ``load``)."""
        population = cls.__new__(cls)
        population.name = name
        population.num_members = len(agents)
        population.envs = envs
        population.members = agents
        population.seeds = list(seeds)
        population.learning_rates = list(learning_rates)
        population.diverged_at = list(diverged_at)
        return population

    # ------------------------------------------------------------------ parameters
    def get_parameters(self) -> dict[str, dict[str, torch.Tensor]]:
        """SB3's layout with the member axis first, as a ``PopulationAgent``'s:
        ``{"policy": {name: tensor (P, ...)}}`` (copies: the members' tensors are separate)."""
        states = [m.get_parameters()["policy"] for m in self.members]
        return {"policy": {k: torch.stack([s[k] for s in states]) for k in states[0]}}

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True,
                       device: str = "auto") -> None:
        """Load every member's weights from ``get_parameters()`` output of a population of the
        same size (this kind or a ``PopulationAgent``), or from a saved ``SequentialPopulation``
        file; ``exact_match`` and ``device`` as in each member's ``set_parameters``."""
        if isinstance(load_path_or_dict, dict):
            state = policy_state(load_path_or_dict)
            if not exact_match:  # names the members lack are skipped, not counted
                known = self.members[0].get_parameters()["policy"]
                state = {k: v for k, v in state.items() if k in known} or state
            sizes = {int(v.shape[0]) for v in state.values()}
            if sizes != {self.num_members}:
                raise ValueError(f"parameters for {sorted(sizes)} members; this population has "
                                 f"{self.num_members}")
            for p, agent in enumerate(self.members):
                agent.set_parameters({"policy": {k: v[p] for k, v in state.items()}},
                                     exact_match=exact_match, device=device)
            return
        other = SequentialPopulation.load(load_path_or_dict, rule=type(self.members[0]))
        self.set_parameters(other.get_parameters(), exact_match=exact_match, device=device)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | pathlib.Path) -> None:
        """A zip (``.zip`` added when ``path`` has no suffix) of ``population.json`` (the rule's
        name, the members' seeds and learning rates, ``diverged_at``) and ``member-000.zip``,
        ``member-001.zip``, ...: each member's own saved agent, exactly as ``members[p].save``
        writes it (JSON and plain tensors, no pickle)."""
        path = zip_path_for_save(path)
        meta = {
            "format": SEQUENTIAL_FORMAT,
            "kind": SEQUENTIAL_KIND,
            "name": self.name,
            "members": self.num_members,
            "seeds": [int(s) for s in self.seeds],
            "learning_rates": list(self.learning_rates),
            "diverged_at": self.diverged_at,
        }
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for p, agent in enumerate(self.members):
                files.append(pathlib.Path(tmp) / _member_file(p))
                agent.save(files[-1])
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("population.json", json.dumps(meta, indent=2))
                for p, file in enumerate(files):
                    zf.write(file, arcname=_member_file(p))

    @classmethod
    def load(cls, path: str | pathlib.Path, env: Any = None, rule: Any = None,
             **kwargs: Any) -> SequentialPopulation:
        """Rebuild a saved population: member p from its own file with ``rule``'s ``load``
        (``kwargs`` override saved settings, e.g. device), on ``env`` for member 0 and a copy of
        it for each other member (none without ``env``).

        ``rule`` is the class (or a name for ``make_agent``) of the members; by default the rule
        registered under the saved name. A name read from the file is never imported: a rule
        given as ``module:Class`` must be registered or passed as ``rule``.
        """
        from agents.checkpoint import CheckpointError, not_this_kind
        from agents.registry import _REGISTRY

        path = pathlib.Path(path)
        if not path.exists() and path.suffix == "":
            path = path.with_suffix(".zip")
        try:
            with zipfile.ZipFile(path) as zf:
                if "population.json" not in zf.namelist():
                    raise not_this_kind(path, "it has no population.json (an agent's file: load "
                                              "it with the rule's own load)")
                meta = json.loads(zf.read("population.json"))
                size = meta.get("members") if isinstance(meta, dict) else None
                if meta.get("kind") != SEQUENTIAL_KIND or not isinstance(size, int) \
                        or isinstance(size, bool) or size < 1:
                    raise not_this_kind(path, "population.json is not a SequentialPopulation's")
                member_bytes = [zf.read(_member_file(p)) for p in range(size)]
        except FileNotFoundError:
            raise
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, AttributeError) as err:
            raise not_this_kind(path, f"{type(err).__name__}: {err}"[:300]) from None
        name = str(meta.get("name", ""))
        if rule is None:
            rule = _REGISTRY.get(name)
            if rule is None:
                raise CheckpointError(
                    f"{path} holds a population of the rule {name!r}, which is not registered: "
                    "register it (agents.register_agent) or pass rule=TheClass")
        elif isinstance(rule, str):
            rule = resolve_agent(rule)
        if not callable(getattr(rule, "load", None)):
            raise TypeError(f"rule={rule!r} has no load(): pass the members' class")
        envs = [None if env is None else env if p == 0 else _copy_env(env)
                for p in range(size)]
        agents = []
        with tempfile.TemporaryDirectory() as tmp:
            for p in range(size):
                file = pathlib.Path(tmp) / _member_file(p)
                file.write_bytes(member_bytes[p])
                agents.append(rule.load(file, env=envs[p], **kwargs))
        seeds = meta.get("seeds") or [a.seed for a in agents]
        rates = meta.get("learning_rates") or [a.learning_rate for a in agents]
        diverged = meta.get("diverged_at") or [None] * size
        if not len(seeds) == len(rates) == len(diverged) == size:
            raise not_this_kind(path, "population.json's member lists have the wrong lengths")
        return cls._of(name, agents, envs, seeds=[int(s) for s in seeds],
                       learning_rates=list(rates),
                       diverged_at=[None if d is None else int(d) for d in diverged])


def _member_file(p: int) -> str:
    return f"member-{p:03d}.zip"


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
