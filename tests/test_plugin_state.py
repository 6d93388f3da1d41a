"""A rule's own state (a momentum buffer, a reward baseline) survives save/load and the runner.

The runner reloads every agent from its checkpoint after each chunk; a rule's state beyond its
weights goes through ``extra_state`` / ``load_extra_state``. Each check compares the runner's
rows with one agent trained straight through in this process (no reloads), so a lost state
shows as a different test error; and an interrupted-and-resumed run with the uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import ReadoutPerturbation, load_example

import np_envs
from agents import RewardAgent, make_agent, register_agent
from agents.registry import _REGISTRY
from np_envs.experiments.population_job import PopulationRunner
from np_envs.experiments.runner import Runner
from np_envs.experiments.spec import RunSpec

LINEAR = "NPLinearTeacher-v0"
ENV_KW = {"Lx": 10, "Ly": 3, "evals_per_input": 2}
CHUNKS, EVERY, B = 3, 20, 8


class ReadoutBaseline(ReadoutPerturbation, RewardAgent):
    """A classic-hooks plug-in: perturbs the read-out, scales its step by a running loss."""

    def __init__(self, env: Any = None, *, sigma: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.sigma = float(sigma)
        self._record(sigma=self.sigma)
        self.running_loss = 1.0

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        self.running_loss = 0.9 * self.running_loss + 0.1 * float(-clean_rewards.mean())
        c = torch.from_numpy((clean_rewards - perturbed_rewards[0]) / self.sigma)
        e = self._xi * c.to(self._xi.dtype).unsqueeze(1)
        step = -self.learning_rate / (1.0 + self.running_loss)
        self.network.layers[1].weight.add_(e.T @ self._h, alpha=step)

    def extra_state(self) -> dict[str, Any]:
        return {"running_loss": self.running_loss}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.running_loss = float(state.get("running_loss", 1.0))


@pytest.fixture
def rules():
    register_agent("baseline-test", ReadoutBaseline, overwrite=True)
    register_agent("momentum-test", load_example("momentum_np.py").MomentumNP, overwrite=True)
    yield
    _REGISTRY.pop("baseline-test", None)
    _REGISTRY.pop("momentum-test", None)


def _spec(agent: str, lr: float, seed: int = 1) -> RunSpec:
    kwargs = {"hidden_sizes": [12], "dtype": "float64", "sigma": 1e-3, "learning_rate": lr}
    if agent == "momentum-test":
        kwargs["momentum"] = 0.8
    return RunSpec(env_id=LINEAR, agent=agent, seed=seed, budget=CHUNKS * EVERY,
                   eval_every=EVERY, unit="trials", num_envs=B, env_kwargs=ENV_KW,
                   agent_kwargs=kwargs)


def _straight_through(spec: RunSpec) -> list[float]:
    """The same agent trained chunk after chunk in one process, never reloaded."""
    env = gym.make_vec(LINEAR, num_envs=B, **ENV_KW)
    agent = make_agent(spec.agent, env, seed=spec.seed, **spec.agent_kwargs)
    scores = [np_envs.evaluate(agent, env)["mse"]]
    for _ in range(CHUNKS):
        agent.learn(EVERY * B * 2, reset_num_timesteps=False)
        scores.append(np_envs.evaluate(agent, env)["mse"])
    return scores


class _Stop(BaseException):
    pass


def _stop_at_2(chunk: int, total: int) -> None:
    if chunk == 2:
        raise _Stop


def test_classic_plugin_state_survives_the_runner(tmp_path: Path, rules) -> None:
    spec = _spec("baseline-test", lr=1e-2)
    whole = Runner(spec, tmp_path / "a").run()
    assert whole["status"] == "done"
    mses = [r["test_mse"] for r in whole["rows"]]
    np.testing.assert_allclose(mses, _straight_through(spec), rtol=1e-12)
    with pytest.raises(_Stop):
        Runner(spec, tmp_path / "b", progress=_stop_at_2).run()
    resumed = Runner(spec, tmp_path / "b").run()
    assert [r["test_mse"] for r in resumed["rows"]] == mses


def test_population_plugin_state_survives_the_runner(tmp_path: Path, rules) -> None:
    specs = [_spec("momentum-test", lr=lr, seed=s) for s in (1, 2) for lr in (3e-4, 1e-3)]
    whole = PopulationRunner(specs, tmp_path / "a").run()
    assert all(r["status"] == "done" for r in whole) and whole[0]["job"].startswith("momentum")
    by_run = {r["run_id"]: [row["test_mse"] for row in r["rows"]] for r in whole}
    for spec in specs:
        np.testing.assert_allclose(by_run[spec.run_id], _straight_through(spec), rtol=1e-10)
    with pytest.raises(_Stop):
        PopulationRunner(specs, tmp_path / "b", progress=_stop_at_2).run()
    resumed = PopulationRunner(specs, tmp_path / "b").run()
    assert {r["run_id"]: [row["test_mse"] for row in r["rows"]] for r in resumed} == by_run


def test_state_is_saved_with_the_agent(tmp_path: Path, rules) -> None:
    env = gym.make_vec(LINEAR, num_envs=B, **ENV_KW)
    agent = make_agent("momentum-test", env, hidden_sizes=(12,), sigma=1e-3,
                       learning_rate=[1e-3, 2e-3], seed=[0, 1], momentum=0.5).learn(320)
    agent.save(tmp_path / "m.zip")
    loaded = type(agent).load(tmp_path / "m.zip", env=env)
    assert loaded.momentum == 0.5
    for a, b in zip(loaded.velocity, agent.velocity, strict=True):
        assert torch.equal(a, b) and a.abs().sum() > 0
