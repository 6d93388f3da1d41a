"""``np_envs.evaluate`` scores any object with ``predict`` on a whole split, through the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_mnist, needs_sarcos_test_file

import np_envs
from np_envs.data import load_mnist, load_sarcos


class LinearPredictor:
    """An agent-shaped closed-form model: action = obs @ weights.T + bias."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray | None = None) -> None:
        self.weights = weights
        self.bias = np.zeros(weights.shape[0]) if bias is None else bias

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.asarray(obs, np.float64) @ self.weights.T + self.bias, None


def test_the_teacher_itself_scores_zero_and_the_zero_predictor_its_output_power() -> None:
    env = gym.make("NPLinearTeacher-v0", dtype="float64")
    teacher = env.unwrapped.teacher
    perfect = np_envs.evaluate(LinearPredictor(teacher), env)
    assert perfect["n"] == 1000 and perfect["mse"] == pytest.approx(0.0, abs=1e-20)
    zero = np_envs.evaluate(LinearPredictor(np.zeros_like(teacher)), env, num_envs=300)
    test = gym.make_vec("NPLinearTeacher-v0", num_envs=1000, split="test", dtype="float64")
    inputs, _ = test.reset()
    assert zero["mse"] == pytest.approx(np.mean((inputs @ teacher.T) ** 2), rel=1e-12)
    assert zero["mean_reward"] == pytest.approx(-0.5 * 10 * zero["mse"], rel=1e-12)
    assert "accuracy" not in zero


def test_an_agent_answering_nan_is_reported_as_diverged() -> None:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=4)
    result = np_envs.evaluate(LinearPredictor(np.full((10, 100), np.nan)), env)
    assert result["diverged"] is True and result["mse"] == float("inf")


def test_endless_training_stream_cannot_be_evaluated_whole() -> None:
    env = gym.make("NPLinearTeacher-v0")
    with pytest.raises(ValueError, match="endless"):
        np_envs.evaluate(LinearPredictor(np.zeros((10, 100))), env, split="train")


@needs_sarcos_test_file
def test_least_squares_on_sarcos_scored_like_numpy_does() -> None:
    train_x, train_y = load_sarcos("train", "test-file")
    test_x, test_y = load_sarcos("test", "test-file")
    design = np.hstack([train_x, np.ones((len(train_x), 1))])
    solution = np.linalg.lstsq(design, train_y, rcond=None)[0]
    model = LinearPredictor(solution[:-1].T, solution[-1])
    env = gym.make_vec("NPSarcos-v0", num_envs=100, split_scheme="test-file")
    result = np_envs.evaluate(model, env)  # batch of 1000 > test rows: wraps, counts one pass
    inputs32 = test_x.astype(np.float32).astype(np.float64)
    expected = np.mean((inputs32 @ solution[:-1] + solution[-1] - test_y) ** 2)
    assert result["n"] == len(test_x)
    assert result["mse"] == pytest.approx(expected, rel=1e-9)
    zero = np_envs.evaluate(LinearPredictor(np.zeros((7, 21))), env)
    assert result["mse"] < zero["mse"] / 10  # a linear model explains most of the torque


@needs_mnist
def test_accuracy_on_mnist_counts_each_test_image_once() -> None:
    images, labels = load_mnist("train")
    onehot = np.eye(10)[labels[:20000]]
    weights = np.linalg.lstsq(images[:20000].astype(np.float64), onehot, rcond=1e-6)[0].T
    result = np_envs.evaluate(LinearPredictor(10 * weights), gym.make("NPMNIST-v0"))
    test_images, test_labels = load_mnist("test")
    expected = np.mean((test_images @ weights.T).argmax(axis=1) == test_labels)
    assert result["n"] == 10_000
    assert result["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert 0.8 < result["accuracy"] < 0.9  # what a linear least-squares readout gets on MNIST
