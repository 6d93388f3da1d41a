"""Users' own data as environments (``NPDataset-v0``, ``np_envs.make_dataset_env``).

The reward is checked against the formula by hand, the test split against the test arrays (not
the training ones), epochs against the seed, and the whole path, from ``.npz`` files on the
command line to NP trained on the authors' small SARCOS split, end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_sarcos_test_file
from gymnasium.utils.env_checker import check_env

import np_envs
from np_envs.losses import softmax_numpy


def regression_data(rows: int = 30, width: int = 5, outputs: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, width))
    y = x @ rng.normal(size=(width, outputs)) + 10.0 * np.arange(outputs)
    return x, y


class ConstantAgent:
    """Answers the same vector to every input (enough to check what evaluate scores)."""

    def __init__(self, answer: np.ndarray) -> None:
        self.answer = np.asarray(answer, dtype=np.float64)

    def predict(self, obs: np.ndarray, deterministic: bool = True):
        return np.tile(self.answer, (len(obs), 1)), None


def rows_of(obs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` (as float32) the observations are."""
    x32 = x.astype(np.float32)
    return np.array([int(np.flatnonzero((x32 == o).all(axis=1))[0]) for o in obs])


# --- the task --------------------------------------------------------------------------------


def test_regression_reward_is_half_squared_error_single_and_batched() -> None:
    x, y = regression_data()
    single = np_envs.make_dataset_env((x, y), (x[:5], y[:5]))
    batched = np_envs.make_dataset_env((x, y), (x[:5], y[:5]), num_envs=1)
    assert single.observation_space.shape == (5,) and single.action_space.shape == (3,)
    assert batched.unwrapped.readout == "linear" and batched.unwrapped.batch_reduction == "mean"
    obs_s, _ = single.reset(seed=4)
    obs_b, _ = batched.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(8):
        np.testing.assert_array_equal(obs_s, obs_b[0])
        row = rows_of(obs_b, x)[0]
        action = rng.normal(size=3).astype(np.float32)
        obs_s, r_s, terminated, _, _ = single.step(action)
        obs_b, r_b, _, _, info = batched.step(action[None])
        expected = -0.5 * np.sum((action.astype(np.float64) - y[row]) ** 2)
        assert r_s == pytest.approx(expected, rel=1e-12) and r_b[0] == pytest.approx(expected)
        assert info["mse"][0] == pytest.approx(-2.0 * expected / 3)
        if terminated:  # the single env waits for reset(); the batched one autoresets
            obs_s, _ = single.reset()


def test_classification_labels_and_one_hot_give_the_same_softmax_task() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    labels = rng.integers(0, 3, size=12)
    labels[:3] = [0, 1, 2]
    onehot = np.eye(3)[labels]
    by_label = np_envs.make_dataset_env((x, labels), (x, labels), task="classification",
                                        num_envs=12, evals_per_input=1, shuffle="none")
    by_onehot = np_envs.make_dataset_env({"x": x, "y": onehot}, {"x": x, "y": onehot},
                                         task="classification", num_envs=12, evals_per_input=1,
                                         shuffle="none")
    assert by_label.unwrapped.readout == "softmax" and by_label.unwrapped.num_classes == 3
    assert by_label.single_action_space.shape == (3,)
    by_label.reset(seed=0)
    by_onehot.reset(seed=0)
    logits = rng.normal(size=(12, 3)).astype(np.float32)
    _, r_label, _, _, info = by_label.step(logits)
    _, r_onehot, *_ = by_onehot.step(logits)
    np.testing.assert_array_equal(r_label, r_onehot)
    expected = -0.5 * ((softmax_numpy(logits.astype(np.float64)) - onehot) ** 2).sum(axis=1)
    np.testing.assert_allclose(r_label, expected, rtol=1e-12)
    np.testing.assert_array_equal(info["correct"], logits.argmax(axis=1) == labels)
    result = np_envs.evaluate(ConstantAgent([5.0, 0.0, 0.0]), by_label)
    assert result["accuracy"] == pytest.approx(np.mean(labels == 0)) and result["n"] == 12


def test_seeded_epochs_visit_every_training_row_once() -> None:
    x, y = regression_data(rows=10)
    env = np_envs.make_dataset_env((x, y), num_envs=4, evals_per_input=1)

    def order(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        seen = [rows_of(obs, x)]
        for _ in range(4):
            obs, *_ = env.step(np.zeros((4, 3)))
            seen.append(rows_of(obs, x))
        return np.concatenate(seen)[:20]

    first = order(7)
    for epoch in (first[:10], first[10:]):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(10))
    assert not np.array_equal(first[:10], first[10:])
    np.testing.assert_array_equal(order(7), first)
    assert not np.array_equal(order(8), first)


def test_evaluate_scores_the_test_arrays_not_the_training_ones() -> None:
    x, y = regression_data(rows=40)
    x_test, y_test = regression_data(rows=7, seed=1)
    y_test = y_test + 100.0  # far from the training targets: scoring the wrong rows shows
    for num_envs in (None, 16):
        env = np_envs.make_dataset_env((x, y), (x_test, y_test), num_envs=num_envs)
        answer = np.array([1.0, 2.0, 3.0])
        result = np_envs.evaluate(ConstantAgent(answer), env, split="test")
        assert result["n"] == 7
        assert result["mse"] == pytest.approx(np.mean((answer - y_test) ** 2), rel=1e-12)
        train = np_envs.evaluate(ConstantAgent(answer), env, split="train")
        assert train["n"] == 40
        assert train["mse"] == pytest.approx(np.mean((answer - y) ** 2), rel=1e-12)


def test_sarcos_arrays_no_longer_score_training_rows_as_test() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 21)), rng.normal(size=(20, 7))
    env = gym.make_vec("NPSarcos-v0", num_envs=4, arrays=(x, y))
    with pytest.raises(ValueError, match="test_arrays"):
        np_envs.evaluate(ConstantAgent(np.zeros(7)), env)
    x_test, y_test = rng.normal(size=(6, 21)), rng.normal(size=(6, 7)) + 50.0
    env = gym.make_vec("NPSarcos-v0", num_envs=4, arrays=(x, y), test_arrays=(x_test, y_test))
    result = np_envs.evaluate(ConstantAgent(np.zeros(7)), env)
    assert result["n"] == 6 and result["mse"] == pytest.approx(np.mean(y_test**2))


@pytest.mark.filterwarnings("ignore:.*(infinity|symmetric and normalized)")
def test_gymnasium_check_env_passes() -> None:
    x, y = regression_data()
    check_env(np_envs.make_dataset_env((x, y), (x, y)).unwrapped, skip_render_check=True)
    labels = np.arange(30) % 4
    check_env(np_envs.make_dataset_env((x, labels), task="classification").unwrapped,
              skip_render_check=True)


# --- input checks ----------------------------------------------------------------------------


def test_bad_data_gets_a_clear_error(tmp_path: Path) -> None:
    x, y = regression_data()
    cases = [
        (dict(train=None), ValueError, "needs your data"),
        (dict(train=(x, y[:-1])), ValueError, "x has 30 rows but y has 29"),
        (dict(train=(x, y), test=(x[:, :4], y)), ValueError, "5 columns but test inputs 4"),
        (dict(train=(x, y), test=(x, y[:, :2])), ValueError, "3 columns but test targets 2"),
        (dict(train=(np.where(x > 1, np.nan, x), y)), ValueError, "NaN or inf"),
        (dict(train=(x, y), task="ranking"), ValueError, "unknown task 'ranking'"),
        (dict(train=(x, y[:, 0]), task="classification"), ValueError, "whole numbers"),
        (dict(train=(x, y), task="classification"), ValueError, "not one-hot.*regression"),
        (dict(train=(x, np.arange(30) % 3), task="classification", num_classes=2), ValueError,
         "does not fit num_classes=2"),
        (dict(train=(x, np.full((30, 3), 0.5)), task="classification"), ValueError,
         "not one-hot"),
        (dict(train=(x, y), batch_reduction="median"), ValueError, "unknown batch_reduction"),
        (dict(train=str(tmp_path / "nope.npz")), FileNotFoundError, "nope.npz' does not exist"),
        (dict(train=42), TypeError, "pair \\(x, y\\)"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            gym.make_vec("NPDataset-v0", num_envs=2, **kwargs)
    np.savez(tmp_path / "wrong.npz", inputs=x, targets=y)
    with pytest.raises(ValueError, match=r"arrays \['inputs', 'targets'\].*np.savez"):
        np_envs.make_dataset_env(str(tmp_path / "wrong.npz"))
    env = np_envs.make_dataset_env((x, y))  # no test data: training works, the test split refuses
    with pytest.raises(ValueError, match="split='test' needs test data"):
        np_envs.evaluate(ConstantAgent(np.zeros(3)), env)


def test_npz_files_and_the_sb3_action_scale(tmp_path: Path, monkeypatch) -> None:
    from agents.sb3_defaults import default_action_map

    x, y = regression_data()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:4], y=y[:4])
    monkeypatch.chdir(tmp_path)
    env = np_envs.make_dataset_env("train.npz", "test.npz", num_envs=8)
    obs, _ = env.reset(seed=0)
    assert rows_of(obs, x).shape == (8,)
    assert np_envs.evaluate(ConstantAgent(np.zeros(3)), env)["n"] == 4
    action_map = default_action_map(env)
    low, high = y.min(axis=0), y.max(axis=0)
    np.testing.assert_allclose(action_map.offset, (low + high) / 2, rtol=1e-6)
    np.testing.assert_allclose(action_map.scale, 1.25 * (high - low) / 2, rtol=1e-6)
    classes = np_envs.make_dataset_env((x, np.arange(30) % 3), task="classification")
    np.testing.assert_array_equal(default_action_map(classes).scale, [10.0] * 3)


def test_compare_from_the_command_line_with_npz_files(tmp_path: Path, monkeypatch) -> None:
    from np_envs.cli.main import main

    x, y = regression_data(rows=200, width=6, outputs=2)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:50] + 0.1, y=y[:50])
    monkeypatch.chdir(tmp_path)
    code = main([
        "compare", "--env", "NPDataset-v0", "--env-kwargs",
        '{"train": "train.npz", "test": "test.npz"}', "--agents", "np", "--epochs", "1",
        "--seeds", "1", "--hidden", "16", "--num-envs", "20", "--out", "out", "--no-progress",
        "--no-plots",
    ])
    assert code in (0, None)
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert rows and all(row["test_mse"] is not None for row in rows)
    assert rows[-1]["epoch"] == pytest.approx(1.0)


# --- the authors' small SARCOS split, trained through this path ------------------------------


def authors_small_sarcos_split(seed: int = 0) -> tuple[tuple[np.ndarray, ...], ...]:
    """The 4,449-row test file cut into contiguous 50-row blocks (89, the last of 49 rows); 8
    blocks, drawn by a seeded permutation, are held out as the test set."""
    from np_envs.data import load_sarcos

    x, y = load_sarcos("test")  # the whole published test file (gpml scheme)
    blocks = np.array_split(np.arange(len(x)), np.arange(50, len(x), 50))
    assert len(blocks) == 89 and len(blocks[-1]) == 49
    held_out = set(np.random.default_rng(seed).permutation(len(blocks))[:8].tolist())
    test = np.concatenate([b for i, b in enumerate(blocks) if i in held_out])
    train = np.concatenate([b for i, b in enumerate(blocks) if i not in held_out])
    return (x[train], y[train]), (x[test], y[test])


@needs_sarcos_test_file
def test_np_learns_the_authors_small_sarcos_split() -> None:
    from agents import make_agent

    train, test = authors_small_sarcos_split()
    assert len(train[0]) + len(test[0]) == 4_449 and len(test[0]) in (399, 400)
    assert not {r.tobytes() for r in train[0]} & {r.tobytes() for r in test[0]}
    env = np_envs.make_dataset_env(train, test, num_envs=100)
    agent = make_agent("np", env, hidden_sizes=(200,), learning_rate=1e-5, sigma=1e-4, seed=0)
    before = np_envs.evaluate(agent, env, split="test")
    agent.learn(total_timesteps=120_000)
    after = np_envs.evaluate(agent, env, split="test")
    assert after["n"] == len(test[0])
    # the score is on the held-out arrays: recompute it from the agent's answers to them
    answers, _ = agent.predict(test[0].astype(np.float32), deterministic=True)
    assert after["mse"] == pytest.approx(np.mean((answers - test[1]) ** 2), rel=1e-5)
    assert after["mse"] < 0.5 * before["mse"], (before, after)
