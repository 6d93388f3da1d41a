"""``make_agent`` and ``load`` refuse bad input in one clear message, SB3's agents included:
learning rates and sigmas, hidden sizes, activation, device, overflowing rewards, files that
are not a checkpoint of the kind asked for."""

from __future__ import annotations

import math
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
import torch

import np_envs  # noqa: F401  (registers the ids)
from agents import make_agent
from agents.checkpoint import CheckpointError
from agents.node_perturbation import NodePerturbation
from agents.sb3_bridge import SB3Agent

LINEAR = "NPLinearTeacher-v0"
BAD_NUMBERS = [-1.0, float("nan"), float("inf")]
NOT_THIS_KIND = "not an np-envs checkpoint of this kind"


@pytest.fixture(scope="module")
def env():
    return gym.make_vec(LINEAR, num_envs=4, Lx=6, Ly=2)


@pytest.fixture(scope="module")
def other_env():
    return gym.make_vec(LINEAR, num_envs=4, Lx=5, Ly=3)


@pytest.mark.parametrize("name", ["np", "wn-np", "reinforce", "sgd", "ppo", "a2c", "sac", "ars"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_every_rule_refuses_a_bad_learning_rate(env, name, value):
    with pytest.raises(ValueError, match="learning_rate"):
        make_agent(name, env, hidden_sizes=(4,), learning_rate=value)


def test_an_sb3_learning_rate_schedule_is_checked_and_kept(env):
    with pytest.raises(ValueError, match="learning_rate"):
        make_agent("ppo", env, hidden_sizes=(4,), learning_rate=lambda p: -1e-3 * p)
    agent = make_agent("ppo", env, hidden_sizes=(4,), learning_rate=lambda p: 1e-3 * p)
    assert agent.model.lr_schedule(1.0) == pytest.approx(1e-3)
    assert agent.model.lr_schedule(0.5) == pytest.approx(5e-4)


@pytest.mark.parametrize("name", ["np", "wn-np", "reinforce"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_perturbation_rules_refuse_a_bad_sigma(env, name, value):
    with pytest.raises(ValueError, match="sigma"):
        make_agent(name, env, hidden_sizes=(4,), sigma=value)


def test_sb3_refuses_sigma_it_has_no_use_for(env):
    with pytest.raises(TypeError, match="sigma"):
        make_agent("ppo", env, hidden_sizes=(4,), sigma=1e-3)


@pytest.mark.parametrize("sizes", [(0,), (4, -1), (2.5,), "64", 64])
@pytest.mark.parametrize("name", ["ppo", "sac"])
def test_sb3_refuses_hidden_sizes_that_are_not_positive_ints(env, name, sizes):
    with pytest.raises(ValueError, match="hidden_sizes"):
        make_agent(name, env, hidden_sizes=sizes)


def _layers(agent) -> Counter:
    return Counter(type(m) for m in agent.network.modules())


@pytest.mark.parametrize("name", ["ppo", "sac", "td3", "ars"])
def test_sb3_honours_the_activation(env, name):
    """Hidden layers use the activation asked for (a Tanh that squashes the output into the
    bounded action space is there whatever the activation: the linear count is the baseline)."""
    linear = _layers(make_agent(name, env, hidden_sizes=(4,), activation="linear"))
    relu = _layers(make_agent(name, env, hidden_sizes=(4,), activation="relu"))
    tanh = _layers(make_agent(name, env, hidden_sizes=(4,), activation="tanh"))
    assert linear[torch.nn.Identity] > 0 and linear[torch.nn.ReLU] == 0
    assert relu[torch.nn.ReLU] > 0 and relu[torch.nn.Tanh] == linear[torch.nn.Tanh]
    assert tanh[torch.nn.Tanh] > linear[torch.nn.Tanh] and tanh[torch.nn.ReLU] == 0


def test_sb3_refuses_an_unknown_activation(env):
    with pytest.raises(ValueError, match="activation"):
        make_agent("ppo", env, hidden_sizes=(4,), activation="swish")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
@pytest.mark.parametrize("name", ["np", "sgd", "ppo", "sac"])
def test_cuda_on_a_cpu_only_torch_is_one_clear_line(env, name):
    with pytest.raises(ValueError) as info:
        make_agent(name, env, hidden_sizes=(4,), device="cuda")
    text = str(info.value)
    assert "\n" not in text and "CUDA" in text and "device='cpu'" in text


def test_an_overflowing_reward_is_an_error_naming_the_action():
    single = gym.make(LINEAR, Lx=6, Ly=2)
    single.reset(seed=0)
    with pytest.raises(ValueError, match=r"sub-environment 0 .*1e\+200.*overflow"):
        single.step(np.array([1e200, 0.0]))
    vec = gym.make_vec(LINEAR, num_envs=3, Lx=6, Ly=2)
    vec.reset(seed=0)
    actions = np.zeros((3, 2))
    actions[2, 1] = -1e200
    with pytest.raises(ValueError, match=r"sub-environment 2 .*a\[1\] = -1e\+200"):
        vec.step(actions)
    actions[2, 1] = 1e100  # large but finite loss: scored as usual
    _, rewards, *_ = vec.step(actions)
    assert np.isfinite(rewards).all()


def test_evaluate_reports_an_overflowing_agent_as_diverged(env):
    agent = make_agent("np", env, hidden_sizes=(4,), dtype="float64", seed=0)
    with torch.no_grad():
        agent.network.layers[-1].bias.fill_(1e200)
    result = np_envs.evaluate(agent, env, split="test")
    assert result["diverged"] and math.isinf(result["mse"])


# ---------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def files(tmp_path_factory, env):
    folder = tmp_path_factory.mktemp("files")
    np_file, sb3_file = folder / "np.zip", folder / "ppo.zip"
    make_agent("np", env, hidden_sizes=(4,), seed=0).save(np_file)
    make_agent("ppo", env, hidden_sizes=(4,), seed=0).save(sb3_file)
    (folder / "empty.zip").write_bytes(b"")
    for source in (np_file, sb3_file):
        data = source.read_bytes()
        (folder / f"cut-{source.name}").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("loader", [NodePerturbation.load, SB3Agent.load],
                         ids=["np", "sb3"])
@pytest.mark.parametrize("name", ["empty.zip", "cut-np.zip", "cut-ppo.zip"])
def test_an_empty_or_truncated_file_is_not_a_checkpoint(files, env, loader, name):
    with pytest.raises(CheckpointError, match=NOT_THIS_KIND):
        loader(files / name, env=env)


def test_an_sb3_zip_is_not_an_np_agent(files, env):
    with pytest.raises(CheckpointError, match=f"{NOT_THIS_KIND}.*SB3Agent.load"):
        NodePerturbation.load(files / "ppo.zip", env=env)


def test_an_np_zip_is_not_an_sb3_agent(files, env):
    with pytest.raises(CheckpointError, match=f"{NOT_THIS_KIND}.*NodePerturbation.load"):
        SB3Agent.load(files / "np.zip", env=env)


@pytest.mark.parametrize(("loader", "name"), [(NodePerturbation.load, "np.zip"),
                                              (SB3Agent.load, "ppo.zip")], ids=["np", "sb3"])
def test_a_file_saved_for_another_envs_shapes_says_so(files, other_env, loader, name):
    with pytest.raises(CheckpointError, match=f"{NOT_THIS_KIND}.*shapes"):
        loader(files / name, env=other_env)


def test_a_good_file_still_loads(files, env):
    assert NodePerturbation.load(files / "np.zip", env=env).obs_dim == 6
    assert SB3Agent.load(files / "ppo.zip", env=env).name == "ppo"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
@pytest.mark.parametrize(("loader", "name"), [(NodePerturbation.load, "np.zip"),
                                              (SB3Agent.load, "ppo.zip")], ids=["np", "sb3"])
def test_loading_onto_cuda_without_cuda_is_one_clear_line(files, env, loader, name):
    with pytest.raises(ValueError, match="sees no CUDA device"):
        loader(files / name, env=env, device="cuda")
