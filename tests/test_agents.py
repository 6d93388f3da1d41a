"""Reward-only agents: SB3's interface, reproducibility, no access to targets, plug-ins, learning.

Fast by default (small tasks); the MNIST and SARCOS learning checks are marked slow.
"""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import needs_mnist, needs_sarcos_test_file
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    ProgressBarCallback,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.evaluation import evaluate_policy

import np_envs
from agents import (
    NodePerturbation,
    RewardAgent,
    available_agents,
    make_agent,
    register_agent,
    resolve_agent,
)
from agents.registry import _REGISTRY

SMALL = {"Lx": 10, "Ly": 3}
RULES = ["np", "wn-np", "reinforce"]


def small_vec(num_envs: int = 4, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec("NPLinearTeacher-v0", num_envs=num_envs, **SMALL, **kwargs)


def small_agent(name: str = "np", env=None, **kwargs) -> RewardAgent:
    kwargs.setdefault("hidden_sizes", (16,))
    kwargs.setdefault("learning_rate", 1e-3)
    if name != "sgd":
        kwargs.setdefault("sigma", 1e-3)
    kwargs.setdefault("seed", 0)
    return make_agent(name, small_vec() if env is None else env, **kwargs)


def weights(agent: RewardAgent) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in agent.network.parameters()]


def teacher_error(agent: RewardAgent, teacher: np.ndarray) -> float:
    w1, w2 = (layer.weight.detach().numpy() for layer in agent.network.layers)
    return float(((w2 @ w1 - teacher) ** 2).sum() / teacher.size)


# ---------------------------------------------------------------- network and interface


def test_network_init_and_options() -> None:
    agent = small_agent(hidden_sizes=(30, 20), activation="tanh", dtype="float64",
                        init_scales=(10.0, 1.0, 1.0))
    net = agent.network
    assert [type(m).__name__ for m in net.layers] == ["Linear"] * 3
    assert net.layers[0].weight.dtype == torch.float64
    assert net.init_stds[0] == pytest.approx(10 * np.sqrt(2 / (10 + 30)))
    no_bias = small_agent(bias=False, activation="linear")
    assert all(layer.bias is None for layer in no_bias.network.layers)
    with pytest.raises(ValueError, match="activation"):
        small_agent(activation="gelu")


def test_predict_single_and_batch() -> None:
    agent = small_agent()
    obs = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    batch, state = agent.predict(obs)
    single, _ = agent.predict(obs[2])
    assert state is None and batch.shape == (5, 3) and single.shape == (3,)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(single, batch[2], rtol=1e-6)
    noisy, _ = agent.predict(obs, deterministic=False)
    assert not np.array_equal(noisy, batch)


@pytest.mark.parametrize("name", [*RULES, "sgd"])
def test_save_load_identical_predictions(name: str, tmp_path: Path) -> None:
    env = small_vec(reveal_target=True, evals_per_input=1 if name == "sgd" else 2)
    agent = small_agent(name, env)
    agent.learn(400)
    obs = np.random.default_rng(1).standard_normal((7, 10)).astype(np.float32)
    before, _ = agent.predict(obs)
    agent.save(tmp_path / "agent")  # SB3 appends .zip
    loaded = type(agent).load(tmp_path / "agent.zip", env=env)
    after, _ = loaded.predict(obs)
    np.testing.assert_array_equal(before, after)
    assert loaded.num_timesteps == agent.num_timesteps
    assert loaded.reduction == agent.reduction == "sum"
    without_env = RewardAgent.load(tmp_path / "agent", env=None)
    assert type(without_env) is type(agent)
    np.testing.assert_array_equal(without_env.predict(obs)[0], before)


def test_save_load_keeps_noise_stream(tmp_path: Path) -> None:
    """A loaded agent continues the saved noise stream (and counters), not a fresh one."""
    agent = small_agent()
    agent.learn(200)
    agent.save(tmp_path / "a.zip")
    loaded = NodePerturbation.load(tmp_path / "a.zip", env=small_vec())
    for a, b in zip(loaded.noise_generators, agent.noise_generators, strict=True):
        assert torch.equal(a.get_state(), b.get_state())
    assert loaded.num_timesteps == 200 and loaded.sigma == agent.sigma


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", RULES)
def test_same_seed_same_weights_different_seed_different(name: str) -> None:
    runs = [small_agent(name, seed=s).learn(600) for s in (5, 5, 6)]
    for a, b in zip(weights(runs[0]), weights(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b)
               for a, b in zip(weights(runs[0]), weights(runs[2]), strict=True))


def test_noise_threading_does_not_change_results() -> None:
    """Noise streams filled in order, in parallel or ahead: the same numbers, across learn() calls
    too (the fill drawn ahead is rewound)."""
    serial = small_agent(noise_mode="serial").learn(400)
    for mode in ("parallel", "prefetch"):
        other = small_agent(noise_mode=mode)
        other.learn(200).learn(200, reset_num_timesteps=False)
        for a, b in zip(weights(serial), weights(other), strict=True):
            np.testing.assert_array_equal(a, b)


def test_checkpoint_mid_learning_records_the_consumed_noise(tmp_path: Path) -> None:
    """A checkpoint taken while noise is drawn ahead saves the state a sync run would have."""
    ahead = small_agent(noise_mode="prefetch")
    ahead.learn(400, callback=CheckpointCallback(save_freq=50, save_path=str(tmp_path)))
    saved = NodePerturbation.load(tmp_path / "rl_model_200_steps.zip")
    sync = small_agent(noise_mode="serial").learn(200)
    for a, b in zip(saved.noise_generators, sync.noise_generators, strict=True):
        assert torch.equal(a.get_state(), b.get_state())
    for a, b in zip(weights(saved), weights(sync), strict=True):
        np.testing.assert_array_equal(a, b)


def test_learn_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    agent = small_agent(num_threads=1)
    agent.learn(40)
    assert torch.get_num_threads() == before
    assert agent.learn_threads(4) == 1


def test_single_env_equals_vector_env_of_one() -> None:
    single = small_agent(env=gym.make("NPLinearTeacher-v0", **SMALL)).learn(300)
    vector = small_agent(env=small_vec(num_envs=1)).learn(300)
    assert single.n_envs == 1 and single.num_timesteps == 300
    for a, b in zip(weights(single), weights(vector), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- rules see rewards only


class Spy(NodePerturbation):
    """NP that records the type and shape of everything handed to its (population) hooks."""

    calls: list[tuple[str, tuple]] = []

    def pop_clean(self, x):
        Spy.calls.append(("clean", (type(x), tuple(x.shape))))
        return super().pop_clean(x)

    def pop_perturbed(self, x, index):
        Spy.calls.append(("perturbed", (type(x), tuple(x.shape), index)))
        return super().pop_perturbed(x, index)

    def pop_update(self, clean_rewards, perturbed_rewards):
        Spy.calls.append(("update", (type(clean_rewards), clean_rewards.shape,
                                     type(perturbed_rewards), perturbed_rewards.shape)))
        return super().pop_update(clean_rewards, perturbed_rewards)

    def pop_observe_targets(self, targets):  # never called for a reward-only rule
        Spy.calls.append(("observe_targets", ()))


@pytest.mark.parametrize("name", RULES)
def test_rules_never_see_info_or_targets(name: str) -> None:
    """Same seed, targets revealed or not: identical weights, so nothing of info can matter."""
    hidden = small_agent(name, small_vec(reveal_target=False)).learn(400)
    revealed = small_agent(name, small_vec(reveal_target=True)).learn(400)
    for a, b in zip(weights(hidden), weights(revealed), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seeds", [0, [0, 0, 1]])
def test_hooks_receive_observations_and_rewards_only(seeds) -> None:
    """Single agent (P=1) and population (P=3, two data streams): inputs per stream, rewards
    per member, never info or targets."""
    Spy.calls = []
    members = 1 if isinstance(seeds, int) else len(seeds)
    groups = 1 if isinstance(seeds, int) else len(set(seeds))
    Spy(small_vec(num_envs=4, reveal_target=True), hidden_sizes=(8,), seed=seeds,
        learning_rate=[1e-3] * members if members > 1 else 1e-3).learn(16)
    kinds = {name for name, _ in Spy.calls}
    assert kinds == {"clean", "perturbed", "update"}
    for name, args in Spy.calls:
        if name == "update":
            assert args == (np.ndarray, (members, 4), np.ndarray, (1, members, 4))
        else:
            assert args[:2] == (torch.Tensor, (groups, 4, 10))


# ---------------------------------------------------------------- SB3 callbacks and evaluation


class CountSteps(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.started = self.ended = False

    def _on_training_start(self) -> None:
        self.started = True

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.ended = True


@pytest.mark.filterwarnings("ignore:Training and eval env are not of the same type")
def test_sb3_callbacks_and_evaluate_policy(tmp_path: Path) -> None:
    agent = small_agent(env=small_vec(num_envs=2))
    eval_env = gym.make("NPLinearTeacher-v0", **SMALL)
    stop = StopTrainingOnNoModelImprovement(max_no_improvement_evals=0, min_evals=2)
    evaluation = EvalCallback(eval_env, callback_after_eval=stop, eval_freq=50,
                              n_eval_episodes=3, best_model_save_path=str(tmp_path / "best"),
                              log_path=str(tmp_path / "eval"), verbose=0, warn=False)
    checkpoint = CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"),
                                    name_prefix="np")
    counter = CountSteps()
    agent.learn(100_000, callback=CallbackList([evaluation, checkpoint, counter]),
                progress_bar=True)
    assert counter.started and counter.ended
    assert counter.n_calls * 2 == agent.num_timesteps  # one on_step per env step (2 sub-envs)
    assert agent.num_timesteps < 100_000  # StopTrainingOnNoModelImprovement stopped it early
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert list((tmp_path / "ckpt").glob("np_*_steps.zip"))
    loaded = NodePerturbation.load(tmp_path / "best" / "best_model.zip")
    assert loaded.network.sizes == agent.network.sizes
    mean, std = evaluate_policy(agent, eval_env, n_eval_episodes=4, warn=False)
    assert np.isfinite(mean) and mean < 0 and std >= 0


def test_progress_bar_callback_alone() -> None:
    agent = small_agent()
    agent.learn(80, callback=ProgressBarCallback())
    assert agent.num_timesteps == 80


def test_function_callback_can_stop() -> None:
    agent = small_agent(env=small_vec(num_envs=4))
    calls = []

    def stop_after_three(locals_, globals_) -> bool:
        calls.append(locals_["rewards"].shape)
        return len(calls) < 3

    agent.learn(10_000, callback=stop_after_three)
    assert len(calls) == 3 and calls[0] == (4,)
    assert agent.num_timesteps == 12  # 3 env steps x 4 sub-envs, stopped mid-way through a trial


# ---------------------------------------------------------------- registry and plug-ins


class Frozen(RewardAgent):
    """A plug-in that answers with its clean network and never learns."""

    def clean_forward(self, obs):
        return self.network(obs)

    def perturbed_forward(self, obs, index):
        return self.network(obs)

    def update(self, clean_rewards, perturbed_rewards):
        self.seen = (clean_rewards.shape, perturbed_rewards.shape)


def test_register_agent_and_module_class_name() -> None:
    register_agent("frozen-test", Frozen, overwrite=True)
    try:
        assert "frozen-test" in available_agents()
        agent = make_agent("frozen-test", small_vec(), seed=0)
        before = weights(agent)
        agent.learn(40)
        assert agent.seen == ((4,), (1, 4))
        for a, b in zip(before, weights(agent), strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        _REGISTRY.pop("frozen-test", None)
    by_path = make_agent(f"{__name__}:Frozen", small_vec(), seed=0)
    assert isinstance(by_path, Frozen)
    assert isinstance(make_agent("agents.node_perturbation:NodePerturbation", small_vec()),
                      NodePerturbation)


def test_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import agents.registry as registry

    fake = EntryPoint(name="frozen-ep", value=f"{__name__}:Frozen", group="np_envs.agents")
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [fake] if group == registry.ENTRY_POINT_GROUP else [])
    assert "frozen-ep" in available_agents()
    assert isinstance(make_agent("frozen-ep", small_vec(), seed=0), Frozen)


def test_sb3_names_resolve_through_the_bridge() -> None:
    bridge = pytest.importorskip("agents.sb3_bridge")
    assert hasattr(bridge, "make_sb3_agent")
    for name in ("ppo", "a2c", "sac", "td3", "ddpg", "ars"):
        assert name in available_agents()
        assert callable(resolve_agent(name))
    with pytest.raises(ValueError, match="reserved"):
        register_agent("ppo", Frozen)


def test_unknown_agent_lists_known_names() -> None:
    with pytest.raises(ValueError, match="np, ppo") as err:
        make_agent("nope", small_vec())
    for name in ("np", "wn-np", "reinforce", "sgd", "ppo", "ars"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="cannot import"):
        make_agent("no_such_module:Thing", small_vec())


# ---------------------------------------------------------------- weight normalisation


class RowRMS(BaseCallback):
    """Worst relative deviation of normalised rows from their target RMS, after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.worst = 0.0

    def _on_step(self) -> bool:
        agent = self.model
        for k in agent.normalized_layers:
            w = agent.network.layers[k].weight.detach().double()
            rms = w.pow(2).mean(dim=1).sqrt()
            self.worst = max(self.worst, float((rms / agent.target_rms(k) - 1).abs().max()))
        return True


@pytest.mark.parametrize("normalize", ["first", "all"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_normalisation_holds_row_rms(normalize: str, dtype: str) -> None:
    agent = small_agent("wn-np", hidden_sizes=(16, 8), normalize=normalize, dtype=dtype,
                        init_scales=(10.0, 1.0, 1.0), learning_rate=2e-4, sigma=1e-3)
    assert agent.normalized_layers == ([0] if normalize == "first" else [0, 1, 2])
    check = RowRMS()
    before = weights(agent)
    agent.learn(2000, callback=check)
    assert check.n_calls == 2000 // 4
    assert check.worst <= 1e-6
    assert agent.target_rms(0) == pytest.approx(10 * np.sqrt(2 / (10 + 16)))
    assert not np.allclose(before[0], weights(agent)[0])  # it did learn
    if normalize == "first":  # the later layers' norms are free
        rms = agent.network.layers[1].weight.detach().double().pow(2).mean(1).sqrt()
        assert float((rms / agent.target_rms(1) - 1).abs().max()) > 1e-3


def test_plain_np_first_layer_norm_grows_normalised_does_not() -> None:
    env_kw = {"Lx": 100, "Ly": 10}
    norms = {}
    for name in ("np", "wn-np"):
        env = gym.make_vec("NPLinearTeacher-v0", num_envs=1, dtype="float64", **env_kw)
        agent = make_agent(name, env, hidden_sizes=(200,), activation="linear", bias=False,
                           dtype="float64", learning_rate=4e-4, sigma=1e-6, seed=0)
        start = float(agent.network.layers[0].weight.norm())
        agent.learn(6000)
        norms[name] = float(agent.network.layers[0].weight.norm()) / start
    assert norms["np"] > 1.05
    assert norms["wn-np"] == pytest.approx(1.0, rel=1e-6)


# ---------------------------------------------------------------- learning


def critical_learning_rate(Lx: int, Lh: int, Ly: int) -> float:
    from np_envs.theory import critical_learning_rate as eta_star

    return eta_star(Lx, Lh, Ly)


def test_np_learns_linear_teacher() -> None:
    """Linear NP student, Lh=1000, lr = 0.5 eta*: teacher error down >= 10x in 20,000 trials."""
    Lx, Lh, Ly = 100, 1000, 10
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=1, Lx=Lx, Ly=Ly, dtype="float64")
    agent = make_agent("np", env, hidden_sizes=(Lh,), activation="linear", bias=False,
                       dtype="float64", sigma=1e-6, learning_rate=0.5 * critical_learning_rate(
                           Lx, Lh, Ly), seed=0)
    teacher = env.unwrapped.teacher
    start = teacher_error(agent, teacher)
    agent.learn(20_000 * env.unwrapped.evals_per_input)
    assert agent._n_updates == 20_000
    assert teacher_error(agent, teacher) <= start / 10


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize(
    ("name", "lr", "epochs", "target"), [("np", 3e-4, 5, 0.85), ("sgd", 3e-3, 2, 0.90)]
)
def test_mnist_width_100(name: str, lr: float, epochs: int, target: float) -> None:
    batch, k = 1000, 1 if name == "sgd" else 2
    env = gym.make_vec("NPMNIST-v0", num_envs=batch, evals_per_input=k,
                       reveal_target=name == "sgd")
    agent = make_agent(name, env, hidden_sizes=(100,), learning_rate=lr, seed=0,
                       **({"sigma": 1e-4} if name == "np" else {}))
    best = 0.0
    for _ in range(epochs):
        agent.learn(60_000 * k, reset_num_timesteps=False)
        best = max(best, np_envs.evaluate(agent, env)["accuracy"])
    assert best >= target, f"{name}: best test accuracy {best:.3f}"


@pytest.mark.slow
@needs_sarcos_test_file
def test_sarcos_np_within_two_minutes() -> None:
    """Test-file scheme, width 800, B=100, lr 1e-5 (divided by B: SARCOS's "mean")."""
    env = gym.make_vec("NPSarcos-v0", num_envs=100, split_scheme="test-file")
    agent = make_agent("np", env, hidden_sizes=(800,), learning_rate=1e-5, sigma=1e-4, seed=0)
    assert agent.reduction == "mean"
    start = np_envs.evaluate(agent, env)["mse"]
    ten_epochs = 10 * 2 * env.unwrapped.stream.size
    best, t0 = start, time.perf_counter()
    while time.perf_counter() - t0 < 120 and best > start / 5:
        agent.learn(ten_epochs, reset_num_timesteps=False)
        best = min(best, np_envs.evaluate(agent, env)["mse"])
    assert best <= start / 5, f"test MSE {start:.2f} -> {best:.2f}"
