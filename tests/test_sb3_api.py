"""Our agents speak Stable-Baselines3's API where SB3 has one (README: "Agents").

get_parameters / set_parameters, device="auto", learning-rate schedules (callables and RL Zoo's
"lin_<x>"), callbacks whose locals hold the actions, one on_step per env step, tensorboard_log.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import np_envs  # noqa: F401  (registers the environments)
from agents import make_agent

SMALL = {"Lx": 10, "Ly": 3}


def vec(num_envs: int = 4, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec("NPLinearTeacher-v0", num_envs=num_envs, **SMALL, **kwargs)


def agent(**kwargs):
    kwargs.setdefault("hidden_sizes", (8,))
    kwargs.setdefault("learning_rate", 1e-3)
    kwargs.setdefault("sigma", 1e-3)
    kwargs.setdefault("seed", 0)
    return make_agent("np", vec(), **kwargs)


def test_get_and_set_parameters_round_trip() -> None:
    trained = agent().learn(200)
    params = trained.get_parameters()
    assert set(params) == {"policy"} and params["policy"]["layers.0.weight"].shape == (8, 10)
    fresh = agent(seed=1)
    fresh.set_parameters(params)
    obs = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    np.testing.assert_array_equal(fresh.predict(obs)[0], trained.predict(obs)[0])
    with pytest.raises(ValueError, match="shape"):
        agent(hidden_sizes=(4,)).set_parameters(params)
    # SB3's exact_match: an extra name is refused, or skipped with exact_match=False
    extra = {"policy": {**params["policy"], "log_std": torch.zeros(2)}}
    with pytest.raises(ValueError, match="do not match"):
        fresh.set_parameters(extra)
    other = agent(seed=2)
    other.set_parameters(extra, exact_match=False)
    np.testing.assert_array_equal(other.predict(obs)[0], trained.predict(obs)[0])
    # a bad shape anywhere changes nothing (all shapes checked before the first copy)
    untouched = agent(seed=3)  # its layer 0 differs from params': a half-load would show
    before = [w.clone() for w in untouched.weights]
    bad = {"policy": {**params["policy"], "layers.1.weight": torch.zeros(3, 3)}}
    with pytest.raises(ValueError, match="shape"):
        untouched.set_parameters(bad)
    assert not torch.equal(before[0], params["policy"]["layers.0.weight"].unsqueeze(0))
    assert all(torch.equal(a, b) for a, b in zip(before, untouched.weights, strict=True))


def test_population_parameters_are_stacked(tmp_path: Path) -> None:
    population = agent(learning_rate=[1e-3, 2e-3], seed=[0, 1]).learn(200)
    params = population.get_parameters()["policy"]
    assert params["layers.0.weight"].shape == (2, 8, 10)
    population.save(tmp_path / "pop.zip")
    other = agent(learning_rate=[1e-3, 2e-3], seed=[5, 6])
    other.set_parameters(tmp_path / "pop.zip")
    for a, b in zip(other.weights, population.weights, strict=True):
        assert torch.equal(a, b)


def test_load_takes_sb3s_own_keywords(tmp_path: Path) -> None:
    """SB3 code calls load(path, env, custom_objects=..., force_reset=...): no effect here
    (nothing pickled; a loaded agent continues its env), but not an error."""
    trained = agent().learn(200)
    trained.save(tmp_path / "a.zip")
    loaded = type(trained).load(tmp_path / "a.zip", env=vec(), custom_objects={},
                                print_system_info=False, force_reset=True)
    obs = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], trained.predict(obs)[0])
    with pytest.raises(TypeError, match="no_such_setting"):
        type(trained).load(tmp_path / "a.zip", env=vec(), no_such_setting=1)


def test_device_auto_resolves_and_cuda_without_cuda_says_so() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert agent(device="auto").device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            agent(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["np", "wn-np", "reinforce", "sgd", "wp"])
def test_every_rule_trains_a_population_on_cuda(name: str) -> None:
    kwargs = {} if name == "sgd" else {"sigma": 1e-3}
    env = vec(reveal_target=True, evals_per_input=1 if name == "sgd" else 2)
    cuda = make_agent(name, env, hidden_sizes=(8,), learning_rate=[1e-3, 2e-3], seed=[0, 1],
                      dtype="float64", device="cuda", **kwargs).learn(400)
    assert all(w.device.type == "cuda" for w in cuda.weights)
    assert all(g.device.type == "cuda" for g in cuda.noise_generators)
    assert np.isfinite(cuda.predict(np.zeros((2, 10), np.float32))[0]).all()


def test_linear_schedule_string_and_callable() -> None:
    lin = agent(learning_rate="lin_1e-3")
    assert lin.learning_rate == pytest.approx(1e-3)
    lin.learn(400)
    assert 0 < lin.learning_rate < 1e-3 * 0.05  # decayed towards 0 by the end
    assert lin._hyperparameters["learning_rate"] == "lin_1e-3"  # saved as data

    seen = []

    def halve(progress_remaining: float) -> float:
        seen.append(progress_remaining)
        return 1e-3 * (0.5 if progress_remaining < 0.5 else 1.0)

    called = agent(learning_rate=halve).learn(400)
    assert seen[0] == 1.0 and min(seen) < 0.5 and called.learning_rate == 5e-4
    with pytest.raises(ValueError, match="learning_rate"):
        agent(learning_rate="lin_-1")
    with pytest.raises(ValueError, match="learning_rate"):
        agent(learning_rate=-1e-3)


class Recorder(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.action_shapes: set[tuple[int, ...]] = set()

    def _on_step(self) -> bool:
        self.steps += 1
        self.action_shapes.add(tuple(self.locals["actions"].shape))
        assert "rewards" in self.locals and "new_obs" in self.locals and "dones" in self.locals
        return True


def test_callback_locals_hold_the_actions_and_step_once_per_env_step() -> None:
    recorder = Recorder()
    agent().learn(80, callback=recorder)  # 80 steps / 4 sub-envs = 20 env steps
    assert recorder.steps == 20
    assert recorder.action_shapes == {(4, 3)}  # a single agent's actions, as SB3's
    population = Recorder()
    agent(learning_rate=[1e-3, 2e-3], seed=[0, 1]).learn(80, callback=population)
    assert population.action_shapes == {(2, 4, 3)}  # one answer per member


def test_tensorboard_log_writes_events(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logged = agent(tensorboard_log=str(tmp_path))
    logged.learn(800, log_interval=10)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
