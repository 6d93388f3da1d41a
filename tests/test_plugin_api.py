"""A plug-in written against the single-agent hooks (a ``RewardAgent`` subclass) gets the same
SB3-shaped API as the built-in rules (README: "Stable-Baselines3's API", "Your own rule").

- ``get_parameters()`` is SB3's ``{"policy": state_dict}``; ``set_parameters`` takes that, the
  old ``{"network": ...}`` layout, or a saved file (``exact_match`` as in SB3);
- ``learning_rate`` takes a schedule (``"lin_<x>"`` or a callable), and the rate a rule reads in
  ``update`` (``self.learning_rate``) follows it;
- per-member lists for such a rule are refused with a pointer to ``make_population``;
- ``make_population`` of such a rule (a ``SequentialPopulation``) has ``get_parameters``,
  ``set_parameters``, ``save``/``load``, ``select`` and ``freeze``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import ReadoutPerturbation

import np_envs  # noqa: F401  (registers the environments)
from agents import RewardAgent, SequentialPopulation, make_agent, make_population, register_agent
from agents.checkpoint import CheckpointError
from agents.registry import _REGISTRY

SMALL = {"Lx": 10, "Ly": 3, "evals_per_input": 2}
B = 4
NAME = "readout-np-test"
SHARED = {"hidden_sizes": (6,), "dtype": "float64", "sigma": 1e-3, "reduction": "sum"}


def vec() -> gym.vector.VectorEnv:
    return gym.make_vec("NPLinearTeacher-v0", num_envs=B, **SMALL)


class ReadoutNP(ReadoutPerturbation, RewardAgent):
    """An output-layer NP rule: perturb the read-out, step it along the reward difference.

    It reads ``self.learning_rate`` in ``update`` (and records what it read), and keeps a count
    of its updates as state of its own (``extra_state``).
    """

    name = NAME

    def __init__(self, env: Any = None, *, sigma: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.sigma = float(sigma)
        self._record(sigma=self.sigma)
        self.rates_seen: list[float] = []
        self.updates = 0

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        self.rates_seen.append(self.learning_rate)
        self.updates += 1
        c = torch.from_numpy((clean_rewards - perturbed_rewards[0]) / self.sigma)
        e = self._xi * c.to(self._xi.dtype).unsqueeze(1)
        self.network.layers[1].weight.add_(e.T @ self._h, alpha=-self.learning_rate)

    def extra_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))


@pytest.fixture
def rule():
    register_agent(NAME, ReadoutNP, overwrite=True)
    yield NAME
    _REGISTRY.pop(NAME, None)


def plugin(**kwargs: Any) -> ReadoutNP:
    settings = {**SHARED, "learning_rate": 1e-3, "seed": 0, **kwargs}
    return make_agent(NAME, vec(), **settings)


def weights(agent: Any) -> list[torch.Tensor]:
    return [t.clone() for t in agent.network.state_dict().values()]


# ------------------------------------------------------------------ 1. get_parameters
def test_get_parameters_has_sb3s_layout(rule, tmp_path: Path) -> None:
    agent = plugin().learn(80)
    params = agent.get_parameters()
    assert set(params) == {"policy"}
    assert params["policy"]["layers.0.weight"].shape == (6, 10)
    for a, b in zip(params["policy"].values(), weights(agent), strict=True):
        assert torch.equal(a, b)
    # the file format is unchanged ("network" in tensors.pt), so files saved before still load
    agent.save(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert json.loads(zf.read("agent.json"))["class"].endswith(":ReadoutNP")
    loaded = ReadoutNP.load(tmp_path / "a.zip", env=vec())
    for a, b in zip(weights(loaded), weights(agent), strict=True):
        assert torch.equal(a, b)
    assert loaded.updates == agent.updates == 10


# ------------------------------------------------------------------ 2. set_parameters
def test_set_parameters_from_a_dict_an_old_dict_or_a_file(rule, tmp_path: Path) -> None:
    trained = plugin().learn(80)
    obs = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    expected = trained.predict(obs)[0]

    fresh = plugin(seed=1)
    fresh.set_parameters(trained.get_parameters())
    np.testing.assert_array_equal(fresh.predict(obs)[0], expected)

    old_layout = plugin(seed=2)  # what get_parameters returned before: {"network": ...}
    old_layout.set_parameters({"network": trained.network.state_dict()})
    np.testing.assert_array_equal(old_layout.predict(obs)[0], expected)

    trained.save(tmp_path / "t.zip")
    from_file = plugin(seed=3)
    from_file.set_parameters(tmp_path / "t.zip", device="cpu")
    np.testing.assert_array_equal(from_file.predict(obs)[0], expected)

    # a built-in agent's file of the same architecture (a population of one) loads too
    builtin = make_agent("np", vec(), **SHARED, learning_rate=1e-3, seed=4).learn(80)
    builtin.save(tmp_path / "np.zip")
    from_np = plugin(seed=5)
    from_np.set_parameters(tmp_path / "np.zip")
    np.testing.assert_array_equal(from_np.predict(obs)[0], builtin.predict(obs)[0])


def test_set_parameters_checks_names_and_shapes(rule) -> None:
    trained = plugin().learn(80)
    state = trained.get_parameters()["policy"]
    partial = {"policy": {"layers.1.weight": state["layers.1.weight"]}}
    agent = plugin(seed=1)
    before = weights(agent)
    with pytest.raises(ValueError, match="layers.0.weight"):
        agent.set_parameters(partial)  # exact_match=True: every parameter must be there
    for a, b in zip(weights(agent), before, strict=True):
        assert torch.equal(a, b)  # nothing half-loaded
    with pytest.raises(ValueError, match="unknown"):
        agent.set_parameters({"policy": {**state, "extra.weight": state["layers.0.bias"]}})
    partial["policy"]["extra.weight"] = state["layers.0.bias"]  # ignored, as torch's strict=False
    agent.set_parameters(partial, exact_match=False)
    assert torch.equal(agent.network.layers[1].weight, state["layers.1.weight"])
    assert torch.equal(agent.network.layers[0].weight, before[0])
    with pytest.raises(ValueError, match="shape"):
        plugin(hidden_sizes=(4,)).set_parameters(trained.get_parameters())
    with pytest.raises(ValueError, match="policy"):
        agent.set_parameters({"weights": state})


# ------------------------------------------------------------------ 3. schedules
def test_learning_rate_schedules_reach_the_rule(rule, tmp_path: Path) -> None:
    total = 400  # 50 trials of B=4 inputs x 2 evaluations
    lin = plugin(learning_rate="lin_1e-3")
    assert lin.learning_rate == pytest.approx(1e-3)
    lin.learn(total)
    expected = [1e-3 * (1 - 2 * B * k / total) for k in range(total // (2 * B))]
    np.testing.assert_allclose(lin.rates_seen, expected, rtol=1e-12)
    assert lin._hyperparameters["learning_rate"] == "lin_1e-3"  # saved as data
    lin.save(tmp_path / "lin.zip")
    again = ReadoutNP.load(tmp_path / "lin.zip", env=vec())
    again.learn(total)
    np.testing.assert_allclose(again.rates_seen, expected, rtol=1e-12)  # the schedule survived

    def halve(progress_remaining: float) -> float:
        return 1e-3 * (0.5 if progress_remaining < 0.5 else 1.0)

    called = plugin(learning_rate=halve).learn(total)
    assert called.rates_seen[0] == 1e-3 and called.rates_seen[-1] == 5e-4
    assert called.learning_rate == 5e-4
    assert plugin(learning_rate=2e-3).learn(80).rates_seen == [2e-3] * 10  # a constant
    with pytest.raises(ValueError, match="learning_rate"):
        plugin(learning_rate="lin_-1")


# ------------------------------------------------------------------ 4. lists
def test_lists_for_a_single_agent_rule_point_to_make_population(rule) -> None:
    for name in (NAME, f"{ReadoutNP.__module__}:ReadoutNP"):
        with pytest.raises(ValueError, match="make_population"):
            make_agent(name, vec(), **SHARED, learning_rate=[1e-3, 2e-3], seed=[0, 1])
        with pytest.raises(ValueError, match="make_population"):
            make_agent(name, vec(), **SHARED, seed=[0, 1])


# ------------------------------------------------------------------ 5. SequentialPopulation
def population(**kwargs: Any) -> SequentialPopulation:
    return make_population(NAME, vec(), learning_rates=[1e-3, 2e-3], seeds=[0, 1],
                           **SHARED, **kwargs)


def test_sequential_population_parameters(rule) -> None:
    pop = population().learn(80)
    assert isinstance(pop, SequentialPopulation) and pop.num_members == 4
    params = pop.get_parameters()
    assert set(params) == {"policy"} and params["policy"]["layers.0.weight"].shape == (4, 6, 10)
    for p in range(4):
        for name, value in pop.member(p).network.state_dict().items():
            assert torch.equal(params["policy"][name][p], value)
    other = population()
    other.set_parameters(params)
    for p in range(4):
        for a, b in zip(weights(other.member(p)), weights(pop.member(p)), strict=True):
            assert torch.equal(a, b)


def test_sequential_population_save_and_load(rule, tmp_path: Path) -> None:
    pop = population().learn(80)
    pop.freeze(3)
    pop.save(tmp_path / "pop")  # ".zip" added, as for an agent
    with zipfile.ZipFile(tmp_path / "pop.zip") as zf:
        names = set(zf.namelist())
    assert "population.json" in names and "member-000.zip" in names  # each member's own file
    loaded = SequentialPopulation.load(tmp_path / "pop.zip", env=vec())
    assert loaded.num_members == 4 and loaded.name == NAME
    assert loaded.seeds == pop.seeds and loaded.learning_rates == pop.learning_rates
    assert loaded.diverged == [False, False, False, True]
    obs = np.random.default_rng(0).standard_normal((5, 10))
    np.testing.assert_array_equal(loaded.predict(obs)[0], pop.predict(obs)[0])
    for p in range(4):
        assert loaded.member(p).updates == 10 and loaded.member(p).sigma == 1e-3
        assert loaded.member(p).num_timesteps == 80
    assert len({id(m.env) for m in loaded.members}) == 4  # each member its own env
    # a rule only named in the file is never imported from it: it must be registered or given
    _REGISTRY.pop(NAME)
    with pytest.raises(CheckpointError, match="register"):
        SequentialPopulation.load(tmp_path / "pop.zip")
    again = SequentialPopulation.load(tmp_path / "pop.zip", rule=ReadoutNP)
    np.testing.assert_array_equal(again.predict(obs)[0], pop.predict(obs)[0])
    pop.member(0).save(tmp_path / "one.zip")  # one agent's file is not a population's
    with pytest.raises(CheckpointError):
        SequentialPopulation.load(tmp_path / "one.zip", rule=ReadoutNP)


def test_sequential_population_select_and_freeze(rule) -> None:
    pop = population()
    pop.freeze(1)
    frozen = weights(pop.member(1))
    pop.learn(80)
    assert pop.diverged == [False, True, False, False] and pop.diverged_at[1] == 0
    assert pop.member(1).num_timesteps == 0 and pop.num_timesteps == 80
    for a, b in zip(weights(pop.member(1)), frozen, strict=True):
        assert torch.equal(a, b)
    chosen = pop.select([2, 0])
    assert isinstance(chosen, SequentialPopulation) and chosen.num_members == 2
    assert chosen.members == [pop.member(2), pop.member(0)]
    assert chosen.seeds == [1, 0] and chosen.learning_rates == [1e-3, 1e-3]
    assert chosen.diverged == [False, False]
    with pytest.raises(IndexError):
        pop.select([4])
    with pytest.raises(ValueError):
        pop.select([])
