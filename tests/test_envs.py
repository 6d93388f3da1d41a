"""The environments' contract: spaces, rewards, trials, splits, batching, seeding, errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_mnist, needs_sarcos_test_file
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import np_envs  # noqa: F401  (registers the ids)
from np_envs.data import load_mnist, load_sarcos
from np_envs.envs.sarcos import SarcosVectorEnv
from np_envs.losses import softmax_numpy

SARCOS = {"split_scheme": "test-file"}  # the training file is not on CI machines

SINGLE_ENVS = [
    pytest.param("NPLinearTeacher-v0", {}, id="linear"),
    pytest.param("NPSarcos-v0", SARCOS, id="sarcos", marks=needs_sarcos_test_file),
    pytest.param("NPMNIST-v0", {}, id="mnist", marks=needs_mnist),
]


@pytest.mark.parametrize(("env_id", "kwargs"), SINGLE_ENVS)
def test_gymnasium_and_sb3_env_checkers_pass(env_id: str, kwargs: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box warnings are expected, see README
        gym_check_env(gym.make(env_id, **kwargs).unwrapped, skip_render_check=True)
        # SB3's checker asserts finite action bounds when warn=True; the SB3 bridge gives its
        # algorithms a bounded, rescaled action space instead (tested with the bridge).
        sb3_check_env(gym.make(env_id, **kwargs), warn=False)


@pytest.mark.parametrize(("env_id", "kwargs"), SINGLE_ENVS)
def test_spaces_match_the_design(env_id: str, kwargs: dict) -> None:
    sizes = {"NPLinearTeacher-v0": (100, 10), "NPSarcos-v0": (21, 7), "NPMNIST-v0": (784, 10)}
    env = gym.make(env_id, **kwargs)
    vec = gym.make_vec(env_id, num_envs=3, **kwargs)
    obs_dim, act_dim = sizes[env_id]
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    assert vec.observation_space.shape == (3, obs_dim)
    assert vec.single_action_space.shape == (act_dim,)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert isinstance(vec, gym.vector.VectorEnv)
    assert type(vec).__name__.endswith("VectorEnv")  # the native one, not SyncVectorEnv


def test_make_with_module_prefix_needs_no_prior_import() -> None:
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('np_envs:NPLinearTeacher-v0')\n"
        "vec = gym.make_vec('np_envs:NPLinearTeacher-v0', num_envs=2)\n"
        "print(env.observation_space.shape, type(vec).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "(100,) LinearTeacherVectorEnv" in out.stdout


def test_trial_lasts_evals_per_input_steps_and_shows_one_input() -> None:
    env = gym.make("NPLinearTeacher-v0", evals_per_input=3)
    obs, _ = env.reset(seed=0)
    action = np.zeros(10, dtype=np.float32)
    for step in range(3):
        obs_step, _, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(obs_step, obs)
        assert terminated == (step == 2) and not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)
    next_obs, _ = env.reset()
    assert not np.array_equal(next_obs, obs)


def test_linear_reward_is_half_squared_error_against_the_teacher_in_float64() -> None:
    env = gym.make("NPLinearTeacher-v0", dtype="float64", reveal_target=True)
    teacher = env.unwrapped.teacher
    assert teacher.shape == (10, 100)
    obs, _ = env.reset(seed=3)
    action = np.linspace(-1, 1, 10)
    _, reward, _, _, info = env.step(action)
    target = teacher @ obs
    np.testing.assert_allclose(info["target"], target, rtol=1e-12)
    assert reward == pytest.approx(-0.5 * np.sum((action - target) ** 2), rel=1e-12)
    assert info["mse"] == pytest.approx(np.mean((action - target) ** 2), rel=1e-12)


def test_linear_teacher_noise_and_noise_free_test_split() -> None:
    noisy = gym.make("NPLinearTeacher-v0", sigma_t=0.5, reveal_target=True, dtype="float64")
    obs, _ = noisy.reset(seed=0)
    target = noisy.step(np.zeros(10))[4]["target"]
    residual = target - noisy.unwrapped.teacher @ obs
    assert 0.05 < np.std(residual) < 2.0
    test = gym.make_vec("NPLinearTeacher-v0", num_envs=1000, split="test", sigma_t=0.5,
                        reveal_target=True, dtype="float64")
    obs, _ = test.reset(seed=0)
    info = test.step(np.zeros((1000, 10)))[4]
    np.testing.assert_allclose(info["target"], obs @ test.teacher.T, rtol=1e-12)
    again, _ = test.reset(seed=99)
    np.testing.assert_array_equal(again, obs)  # a fixed held-out set, whatever the seed


@needs_mnist
def test_mnist_reward_applies_softmax_first_in_both_versions() -> None:
    images, labels = load_mnist("test")
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 3, size=(5, 10))
    expected = -0.5 * np.sum((softmax_numpy(actions) - np.eye(10)[labels[:5]]) ** 2, axis=1)
    vec = gym.make_vec("NPMNIST-v0", num_envs=5, split="test")
    obs, _ = vec.reset(seed=0)
    np.testing.assert_array_equal(obs, images[:5])
    rewards = vec.step(actions)[1]
    assert rewards.dtype == np.float64
    np.testing.assert_allclose(rewards, expected, rtol=1e-13)
    single = gym.make("NPMNIST-v0", split="test")
    single.reset(seed=0)
    for i in range(5):
        if i:
            single.reset()
        _, reward, _, _, info = single.step(actions[i])
        assert reward == pytest.approx(expected[i], rel=1e-13)
        assert info["correct"] == (actions[i].argmax() == labels[i])


@needs_sarcos_test_file
def test_batched_rewards_equal_single_rewards_for_the_same_samples() -> None:
    batch = 8
    vec = gym.make_vec("NPSarcos-v0", num_envs=batch, reveal_target=True, **SARCOS)
    single = gym.make("NPSarcos-v0", reveal_target=True, **SARCOS)
    rng = np.random.default_rng(1)
    vec_obs, _ = vec.reset(seed=5)
    single_obs, _ = single.reset(seed=5)
    for trial in range(3):
        actions = rng.normal(0, 10, size=(batch, 7)).astype(np.float32)
        _, vec_rewards, _, _, vec_info = vec.step(actions)
        for i in range(batch):
            if trial or i:
                single_obs, _ = single.reset()
            np.testing.assert_array_equal(single_obs, vec_obs[i])
            _, reward, _, _, info = single.step(actions[i])
            target = info["target"]
            np.testing.assert_array_equal(target, vec_info["target"][i])
            assert reward == vec_rewards[i]
            expected = -0.5 * np.sum((actions[i].astype(np.float64) - target) ** 2)
            assert reward == pytest.approx(expected, rel=1e-13)
        vec_obs, *_ = vec.step(actions)


@needs_mnist
def test_mnist_epoch_shows_every_training_image_once_in_a_seeded_order() -> None:
    def epoch_indices(seed: int) -> np.ndarray:
        vec = gym.make_vec("NPMNIST-v0", num_envs=1000, evals_per_input=1)
        vec.reset(seed=seed)
        stream = vec.unwrapped.stream
        stream.restart(vec.np_random)  # rewind to read the stream's index order directly
        rows = []
        for _ in range(60):
            rows.append(stream.next(1000).indices)
        return np.concatenate(rows)

    first = epoch_indices(0)
    assert len(first) == 60_000
    np.testing.assert_array_equal(np.sort(first), np.arange(60_000))
    np.testing.assert_array_equal(first, epoch_indices(0))
    assert not np.array_equal(first, epoch_indices(1))


@needs_mnist
def test_mnist_vector_env_observations_follow_the_epoch_permutation() -> None:
    images, _ = load_mnist("train")
    vec = gym.make_vec("NPMNIST-v0", num_envs=1000, evals_per_input=1)
    obs, info = vec.reset(seed=7)
    seen = [obs]
    epochs = [info["epoch"]]
    for _ in range(60):
        obs, _, terminated, _, info = vec.step(np.zeros((1000, 10), np.float32))
        assert terminated.all()
        seen.append(obs)
    # every training image, once, in the first 60 batches; the 61st starts epoch 1
    first_epoch = np.concatenate(seen[:60])
    sums = np.sort(first_epoch.sum(axis=1))
    np.testing.assert_allclose(sums, np.sort(images.sum(axis=1)), rtol=1e-6)
    assert (epochs[0] == 0).all()


def test_remainder_batch_straddles_the_epoch_boundary() -> None:
    rows = 10
    inputs = np.arange(rows * 21, dtype=np.float64).reshape(rows, 21)
    vec = SarcosVectorEnv(num_envs=4, arrays=(inputs, np.zeros((rows, 7))), evals_per_input=1)
    obs, info = vec.reset(seed=0)
    batches, epochs = [obs[:, 0] // 21], [info["epoch"]]
    for _ in range(4):
        obs, *_, info = vec.step(np.zeros((4, 7)))
        batches.append(obs[:, 0] // 21)
        epochs.append(vec.unwrapped._trial.epochs)
    flat, flat_epochs = np.concatenate(batches)[:20], np.concatenate(epochs)[:20]
    np.testing.assert_array_equal(flat_epochs, [0] * 10 + [1] * 10)
    for epoch in (0, 1):
        np.testing.assert_array_equal(np.sort(flat[flat_epochs == epoch]), np.arange(rows))
    assert not np.array_equal(flat[:10], flat[10:])  # a fresh permutation each epoch


def test_shuffle_once_repeats_the_same_order_every_epoch() -> None:
    rows = 6
    inputs = np.arange(rows * 21, dtype=np.float64).reshape(rows, 21)
    vec = SarcosVectorEnv(num_envs=rows, arrays=(inputs, np.zeros((rows, 7))),
                          evals_per_input=1, shuffle="once")
    first, _ = vec.reset(seed=0)
    second = vec.step(np.zeros((rows, 7)))[0]
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[:, 0], np.arange(rows) * 21)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    def trajectory(seed: int) -> np.ndarray:
        env = gym.make("NPLinearTeacher-v0")
        obs = [env.reset(seed=seed)[0]]
        for _ in range(5):
            env.step(np.zeros(10, np.float32))
            env.step(np.zeros(10, np.float32))
            obs.append(env.reset()[0])
        return np.stack(obs)

    np.testing.assert_array_equal(trajectory(0), trajectory(0))
    assert not np.array_equal(trajectory(0), trajectory(1))


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (np.zeros(9, np.float32), ValueError, "shape"),
        (np.zeros((1, 10), np.float32), ValueError, "shape"),
        (np.array([np.nan] + [0.0] * 9), ValueError, "NaN or inf"),
        (np.array([np.inf] + [0.0] * 9), ValueError, "NaN or inf"),
    ],
)
def test_bad_actions_raise_clear_errors_in_the_single_env(action, error, match) -> None:
    env = gym.make("NPLinearTeacher-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_bad_actions_raise_clear_errors_in_the_batched_env() -> None:
    vec = gym.make_vec("NPLinearTeacher-v0", num_envs=4)
    with pytest.raises(RuntimeError, match="before reset"):
        vec.step(np.zeros((4, 10)))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 10\), expected \(4, 10\)"):
        vec.step(np.zeros((3, 10)))
    for dtype in (bool, complex, object):
        with pytest.raises(TypeError, match="real numbers"):
            vec.step(np.zeros((4, 10), dtype=dtype))
    bad = np.zeros((4, 10))
    bad[2, 5] = -np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first at index \[2, 5\]\)"):
        vec.step(bad)


def test_step_before_reset_and_unknown_names_are_refused() -> None:
    env = gym.make("NPLinearTeacher-v0").unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        gym.make("NPLinearTeacher-v0", split="validation")
    with pytest.raises(ValueError, match="unknown split"):
        gym.make_vec("NPMNIST-v0", num_envs=2, split="val")
    with pytest.raises(ValueError, match="shuffle"):
        SarcosVectorEnv(arrays=(np.zeros((3, 21)), np.zeros((3, 7))), shuffle="sometimes")
    with pytest.raises(ValueError, match="evals_per_input"):
        gym.make("NPLinearTeacher-v0", evals_per_input=0)


@needs_sarcos_test_file
def test_unknown_sarcos_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="leak-free"):  # the message lists the valid schemes
        gym.make("NPSarcos-v0", split_scheme="random")


@needs_sarcos_test_file
def test_sarcos_test_file_scheme_serves_real_rows() -> None:
    train_x, train_y = load_sarcos("train", "test-file")
    test_x, test_y = load_sarcos("test", "test-file")
    vec = gym.make_vec("NPSarcos-v0", num_envs=len(test_x), split="test", **SARCOS)
    obs, _ = vec.reset(seed=0)
    np.testing.assert_array_equal(obs, test_x.astype(np.float32))
    rewards = vec.step(test_y)[1]  # float64 actions equal to the targets score exactly 0
    np.testing.assert_array_equal(rewards, np.zeros(len(test_x)))
    assert len(train_x) + len(test_x) <= 4449
    assert vec.unwrapped.batch_reduction == "mean"


@needs_mnist
def test_a_corrupt_or_missing_data_file_stops_the_env_with_a_clear_error(tmp_path, monkeypatch):
    import shutil

    from np_envs.data import DataError, clear_cache
    from np_envs.data import data_dir as shared_dir

    source = shared_dir() / "mnist"
    (tmp_path / "mnist").mkdir()
    for path in source.glob("*.gz"):
        shutil.copy(path, tmp_path / "mnist" / path.name)
    damaged = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv("NP_ENVS_DATA", str(tmp_path))
    clear_cache()
    try:
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
            gym.make_vec("NPMNIST-v0", num_envs=10, split="test")
        damaged.unlink()
        with pytest.raises(DataError, match="np-envs data fetch"):
            gym.make("NPMNIST-v0", split="test")
    finally:
        clear_cache()


def test_linear_teacher_is_independent_of_a_data_stream_with_the_same_seed() -> None:
    """A run seeded like the teacher must not see the teacher's rows as its inputs (they once
    shared one random stream: the first Ly inputs were the teacher's rows, rescaled)."""
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=10, Lx=100, Ly=10, teacher_seed=0)
    obs, _ = env.reset(seed=0)
    teacher = env.unwrapped.teacher
    unit = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    cosines = np.abs((obs / np.linalg.norm(obs, axis=1, keepdims=True)) @ unit.T)
    assert cosines.max() < 0.6, cosines.max()  # independent 100-d vectors: |cos| ~ 0.1
    test_obs = gym.make_vec("NPLinearTeacher-v0", num_envs=10, Lx=100, Ly=10,
                            split="test").reset(seed=0)[0]
    assert not np.allclose(test_obs, obs)
