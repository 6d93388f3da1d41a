"""The SB3 bridge: the VecEnv adapter, action scaling, and SB3 algorithms as agents."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import needs_mnist, needs_sarcos_test_file
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import np_envs
from agents.sb3_bridge import ALGORITHM_NAMES, SB3Agent, make_sb3_agent
from agents.sb3_defaults import LINEAR_SCALE, MNIST_LOGIT_SCALE, default_action_map
from agents.sb3_vec_adapter import ScaleAction, VectorEnvAdapter, to_sb3_vec_env

LINEAR = "NPLinearTeacher-v0"
ON_POLICY = ("ppo", "a2c", "ars")
OFF_POLICY = ("sac", "td3", "ddpg")
ENVS = {
    "linear": (LINEAR, {}, []),
    "sarcos": ("NPSarcos-v0", {"split_scheme": "test-file"}, [needs_sarcos_test_file]),
    "mnist": ("NPMNIST-v0", {}, [needs_mnist]),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny MLPs: one thread is fastest, and immune to a busy machine's thread contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_env(key: str, num_envs: int | None = None, **kwargs) -> gym.Env | gym.vector.VectorEnv:
    env_id, env_kwargs, _ = ENVS[key]
    env_kwargs = {**env_kwargs, **kwargs}
    if num_envs is None:
        return gym.make(env_id, **env_kwargs)
    return gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)


# The adapter.


def test_adapter_follows_sb3_vecenv_semantics_on_the_native_vector_env():
    venv = VectorEnvAdapter(gym.make_vec(LINEAR, num_envs=4, evals_per_input=2))
    venv.seed(3)
    obs = venv.reset()
    assert obs.shape == (4, 100) and venv.reset_infos[0]["epoch"] == 0
    actions = np.zeros((4, 10), np.float32)

    obs1, rewards1, dones1, infos1 = venv.step(actions)
    assert rewards1.dtype == np.float32 and rewards1.shape == (4,)
    assert not dones1.any() and np.array_equal(obs1, obs)  # same input, second evaluation
    assert all(
        i["TimeLimit.truncated"] is False and "terminal_observation" not in i for i in infos1
    )
    assert isinstance(infos1[0]["mse"], float)

    obs2, rewards2, dones2, infos2 = venv.step(actions)
    assert dones2.all()
    assert not np.allclose(obs2, obs)  # the step that ends a trial returns the next input
    for i, info in enumerate(infos2):
        np.testing.assert_array_equal(info["terminal_observation"], obs[i])
        assert info["TimeLimit.truncated"] is False
        assert info["episode"]["l"] == 2
        assert info["episode"]["r"] == pytest.approx(float(rewards1[i]) + float(rewards2[i]))

    again = VectorEnvAdapter(gym.make_vec(LINEAR, num_envs=4))
    again.seed(3)
    np.testing.assert_array_equal(again.reset(), obs)  # SB3's seed() reaches the stream


def test_adapter_attributes_and_refusals():
    venv = VectorEnvAdapter(gym.make_vec(LINEAR, num_envs=3))
    assert venv.get_attr("evals_per_input") == [2, 2, 2]
    assert venv.get_attr("readout", indices=1) == ["linear"]
    venv.set_attr("some_flag", 7)
    assert venv.get_attr("some_flag") == [7, 7, 7]
    with pytest.raises(ValueError, match="subset"):
        venv.set_attr("some_flag", 1, indices=[0])
    assert venv.env_is_wrapped(Monitor) == [True] * 3  # it reports Monitor's episode stats
    assert venv.env_is_wrapped(gym.vector.VectorWrapper) == [False] * 3
    with pytest.raises(NotImplementedError):
        venv.render()
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(LINEAR)] * 2)  # NEXT_STEP autoreset
    with pytest.raises(ValueError, match="SAME_STEP"):
        VectorEnvAdapter(sync)


@pytest.mark.parametrize("key", [pytest.param(key, marks=ENVS[key][2]) for key in ENVS])
def test_bounded_single_env_passes_sb3_check_env(key):
    env = make_env(key)
    bounded = ScaleAction(env, default_action_map(env))
    assert bounded.action_space == gym.spaces.Box(-1, 1, env.action_space.shape, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(bounded, warn=True)


# Action scaling.


def test_default_action_maps_and_overrides():
    linear = gym.make(LINEAR)
    assert np.all(default_action_map(linear).scale == LINEAR_SCALE)
    assert np.all(default_action_map(linear).offset == 0)
    custom = default_action_map(linear, action_scale=2.0, action_offset=np.arange(10))
    np.testing.assert_array_equal(custom.to_task(np.ones(10)), 2.0 + np.arange(10))
    np.testing.assert_array_equal(custom.to_task(3 * np.ones(10)), 2.0 + np.arange(10))  # clipped

    class Unbounded(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Box(-np.inf, np.inf, (3,))

    with pytest.raises(ValueError, match="action_scale"):
        default_action_map(Unbounded())
    assert default_action_map(Unbounded(), action_scale=4.0).scale.tolist() == [4.0] * 3


@needs_mnist
def test_mnist_logit_scale():
    assert np.all(default_action_map(make_env("mnist")).scale == MNIST_LOGIT_SCALE)


@needs_sarcos_test_file
def test_sarcos_action_map_covers_every_torque():
    from np_envs.data import load_sarcos

    action_map = default_action_map(make_env("sarcos"))
    for split in ("train", "test"):
        _, torques = load_sarcos(split, "test-file")
        assert (torques >= action_map.task_low).all() and (torques <= action_map.task_high).all()


# Agents.


def test_unknown_name_and_bad_kwargs():
    env = gym.make(LINEAR)
    with pytest.raises(ValueError, match="ppo.*ars"):
        make_sb3_agent("dqn", env)
    with pytest.raises(TypeError, match=r"^sac \(SAC\): .*no_such_option"):
        make_sb3_agent("sac", env, no_such_option=1)
    with pytest.raises(ValueError, match="discount"):
        make_sb3_agent("ars", env, gamma=0.9)


def _params(names, keys, modes=("single", "batched")):
    for key in keys:
        for name in names:
            for mode in modes:
                marks = ENVS[key][2]  # all 36 take ~35 s on 2 busy cores: none needs "slow"
                yield pytest.param(name, key, mode, marks=marks, id=f"{name}-{key}-{mode}")


@pytest.mark.parametrize("name,key,mode", list(_params(ALGORITHM_NAMES, ENVS)))
def test_every_algorithm_trains_on_every_env(name, key, mode):
    env = make_env(key, num_envs=8 if mode == "batched" else None)
    extra = {"batch_size": 32, "train_freq": 2} if name in OFF_POLICY else {}
    agent = make_sb3_agent(name, env, hidden_sizes=(32,), seed=0, **extra)
    steps = 2000 if name in ON_POLICY else 1000
    assert agent.learn(steps) is agent
    assert agent.num_timesteps >= steps
    obs, _ = env.reset()
    actions, state = agent.predict(obs, deterministic=True)
    assert actions.shape == np.shape(env.action_space.sample()) and state is None
    assert np.isfinite(actions).all()
    if mode == "batched":
        assert np.isfinite(np_envs.evaluate(agent, env)["mse"])


def test_ppo_learns_the_linear_task():
    env = gym.make_vec(LINEAR, num_envs=8)
    agent = make_sb3_agent("ppo", env, hidden_sizes=(32,), learning_rate=1e-3, seed=0)
    before = np_envs.evaluate(agent, env)["mse"]
    agent.learn(8192)
    after = np_envs.evaluate(agent, env)["mse"]
    assert after < 0.7 * before, (before, after)  # seed 0: 1.77 -> 0.97


def test_learning_leaves_no_sb3_folders_in_the_temp_dir(tmp_path, monkeypatch, capsys):
    """SB3 alone makes an empty /tmp/SB3-<date> folder per learn() without tensorboard_log;
    ours logs the same (stdout with verbose=1) and leaves no folder behind."""
    import tempfile

    from stable_baselines3.common.logger import Logger

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = gym.make_vec(LINEAR, num_envs=8)
    quiet = make_sb3_agent("ppo", env, hidden_sizes=(8,), seed=0)
    quiet.learn(1024)
    quiet.learn(1024)  # the runner calls learn once per chunk
    loud = make_sb3_agent("a2c", env, hidden_sizes=(8,), seed=0, verbose=1)
    loud.learn(1024, log_interval=1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3-")] == []
    assert "time/" in capsys.readouterr().out  # SB3's table, on stdout as before
    quiet.model.verbose = 1  # as with SB3's own logger, a later learn() follows the change
    quiet.learn(1024, log_interval=1)
    assert "time/" in capsys.readouterr().out
    mine = Logger(folder=None, output_formats=[])
    loud.set_logger(mine)
    loud.learn(512)
    assert loud.logger is mine  # a logger the user set is kept


@pytest.mark.parametrize("name", ["ppo", "td3", "ars"])
def test_save_load_gives_identical_predictions(name, tmp_path):
    env = gym.make_vec(LINEAR, num_envs=4)
    extra = {"learning_starts": 50} if name == "td3" else {}
    agent = make_sb3_agent(name, env, hidden_sizes=(16,), seed=0, **extra)
    agent.learn(400)
    obs = np.random.default_rng(0).standard_normal((32, 100)).astype(np.float32)
    expected, _ = agent.predict(obs)
    agent.save(tmp_path / "agent.zip")

    wider = gym.make_vec(LINEAR, num_envs=8)
    loaded = type(agent).load(tmp_path / "agent.zip", env=wider)
    np.testing.assert_array_equal(loaded.predict(obs)[0], expected)
    assert loaded.name == name and loaded.get_env() is wider
    loaded.learn(200)  # trains on the new width (TD3's per-env noise refitted)

    single = SB3Agent.load(tmp_path / "agent", env=gym.make(LINEAR))  # ".zip" implied, as SB3
    np.testing.assert_array_equal(single.predict(obs)[0], expected)
    np.testing.assert_array_equal(SB3Agent.load(tmp_path / "agent.zip").predict(obs)[0], expected)


def test_evaluate_and_evaluate_policy_agree():
    train = gym.make_vec(LINEAR, num_envs=4)
    agent = make_sb3_agent("ppo", train, hidden_sizes=(16,), seed=0).learn(1024)
    n = 40
    ours = np_envs.evaluate(agent, gym.make(LINEAR, test_size=n))
    assert ours["n"] == n

    single = gym.make(LINEAR, split="test", test_size=n)  # raw: task units
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Monitor.*")
        rewards, lengths = evaluate_policy(
            agent, single, n_eval_episodes=n, return_episode_rewards=True
        )
    assert set(lengths) == {2}  # a trial: the same input answered twice, deterministically
    assert np.mean(rewards) / 2 == pytest.approx(ours["mean_reward"], rel=1e-5)

    batched = to_sb3_vec_env(gym.make_vec(LINEAR, num_envs=n, split="test", test_size=n))
    mean, _ = evaluate_policy(agent, batched, n_eval_episodes=n)
    assert mean / 2 == pytest.approx(ours["mean_reward"], rel=1e-5)


class _Recorder(BaseCallback):
    """Checks the callback sees the SB3 model, and scores the agent beside the EvalCallback."""

    def __init__(self, agent_box: list, n: int) -> None:
        super().__init__()
        self.agent_box, self.n, self.scores = agent_box, n, []

    def _on_step(self) -> bool:
        if self.parent is not None and not self.scores:
            fresh = gym.make(LINEAR, split="test", test_size=self.n)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Monitor.*")
                mean, _ = evaluate_policy(self.agent_box[0], fresh, n_eval_episodes=self.n)
            self.scores.append((self.parent.last_mean_reward, mean))
        return True


def test_sb3_callbacks_attach_and_eval_env_is_rescaled():
    n = 6
    env = gym.make(LINEAR)
    agent = make_sb3_agent("a2c", env, hidden_sizes=(16,), seed=0)
    box = [agent]
    after_eval = _Recorder(box, n)
    eval_cb = EvalCallback(
        gym.make(LINEAR, split="test", test_size=n),
        n_eval_episodes=n,
        eval_freq=100,
        callback_after_eval=after_eval,
        verbose=0,
    )
    counter = _Recorder(box, n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Monitor.*")
        agent.learn(300, callback=[eval_cb, counter])
    assert counter.model is agent.model and counter.n_calls == agent.num_timesteps >= 300
    assert isinstance(eval_cb.eval_env, DummyVecEnv)
    assert eval_cb.eval_env.action_space == agent.action_space_sb3
    (cb_mean, direct_mean), *_ = after_eval.scores
    assert cb_mean == pytest.approx(direct_mean, rel=1e-5)  # scored in the task's units


def test_agent_interface_basics():
    env = gym.make_vec(LINEAR, num_envs=2)
    agent = make_sb3_agent("sac", env, hidden_sizes=(8,), seed=1)
    assert isinstance(agent.network, torch.nn.Module)
    assert agent.get_env() is env and agent.model.get_env().num_envs == 2
    assert agent.num_timesteps == 0 and agent.logger is not None
    assert agent.model.gamma == 0.0 and agent.policy is agent.network  # SB3 attributes pass through
    assert np.all(agent.action_space.high == LINEAR_SCALE)
    assert "SAC" in repr(agent)


def test_ars_counts_real_environment_steps():
    class Counting(gym.vector.VectorWrapper):
        steps = 0

        def step(self, actions):
            Counting.steps += self.num_envs
            return self.env.step(actions)

    env = Counting(gym.make_vec(LINEAR, num_envs=8))
    agent = make_sb3_agent("ars", env, hidden_sizes=(8,), n_delta=2).learn(1000)
    assert agent.num_timesteps == Counting.steps  # sb3-contrib alone counts 8x too many
