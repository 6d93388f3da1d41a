"""Gymnasium's own vector wrappers on our natively batched envs (issue 9, item 9).

Our vector envs autoreset SAME_STEP. Gymnasium's reference for what the step that ends an episode
puts in ``info`` is ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)``: the finished observations
in ``final_obs`` and the finished step's info in ``final_info``, each with a ``_key`` mask. These
tests hold our envs to that reference and run the wrappers users reach for.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as vector_wrappers

import np_envs  # noqa: F401  (registers the envs)

LINEAR = {"Lx": 6, "Ly": 3}


def zeros_for(env: gym.vector.VectorEnv) -> np.ndarray:
    return np.zeros(env.action_space.shape, dtype=np.float32)


@pytest.mark.parametrize("evals_per_input", [1, 2, 3])
def test_end_of_trial_info_matches_sync_vector_env(evals_per_input: int) -> None:
    """One sub-env: our batched env against Gymnasium's SyncVectorEnv of the single env."""
    ours = gym.make_vec("NPLinearTeacher-v0", num_envs=1, evals_per_input=evals_per_input,
                        reveal_target=True, **LINEAR)
    reference = gym.vector.SyncVectorEnv(
        [lambda: gym.make("NPLinearTeacher-v0", evals_per_input=evals_per_input,
                          reveal_target=True, **LINEAR)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    assert ours.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs_a, _ = ours.reset(seed=3)
    obs_b, _ = reference.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(3 * evals_per_input):
        action = rng.normal(size=(1, 3)).astype(np.float32)
        obs_a, r_a, term_a, trunc_a, info_a = ours.step(action)
        obs_b, r_b, term_b, trunc_b, info_b = reference.step(action)
        np.testing.assert_array_equal(obs_a, obs_b)  # SAME_STEP: already the next input
        np.testing.assert_allclose(r_a, r_b, rtol=1e-12)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(trunc_a, trunc_b)
        for key in ("final_obs", "_final_obs", "final_info", "_final_info"):
            assert (key in info_a) == (key in info_b), key
        if not term_b.any():
            continue
        ends += 1
        np.testing.assert_array_equal(info_a["_final_obs"], info_b["_final_obs"])
        np.testing.assert_array_equal(info_a["_final_info"], info_b["_final_info"])
        np.testing.assert_array_equal(info_a["final_obs"][0], info_b["final_obs"][0])
        final_a, final_b = info_a["final_info"], info_b["final_info"]
        assert set(final_a) == set(final_b) == {
            "epoch", "_epoch", "mse", "_mse", "target", "_target"
        }
        for key in final_b:
            np.testing.assert_allclose(final_a[key], final_b[key], rtol=1e-12)
    assert ends == 3


def test_record_episode_statistics_counts_one_trial_per_episode() -> None:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=4, evals_per_input=2, **LINEAR)
    env = vector_wrappers.RecordEpisodeStatistics(env)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(3):
        rewards = []
        for step in range(2):
            _, reward, terminated, _, info = env.step(rng.normal(size=(4, 3)))
            rewards.append(reward)
            assert terminated.all() == (step == 1)
            assert ("episode" in info) == (step == 1)
        episode = info["episode"]
        np.testing.assert_allclose(episode["r"], rewards[0] + rewards[1])
        np.testing.assert_array_equal(episode["l"], [2, 2, 2, 2])
        np.testing.assert_array_equal(info["_episode"], [True] * 4)
    assert env.episode_count == 12
    np.testing.assert_array_equal(list(env.length_queue), [2] * 12)


def test_normalize_reward_and_clip_reward_run_and_rescale() -> None:
    raw = gym.make_vec("NPLinearTeacher-v0", num_envs=8, evals_per_input=2, **LINEAR)
    env = vector_wrappers.ClipReward(vector_wrappers.NormalizeReward(raw, gamma=0.0),
                                     min_reward=-100.0, max_reward=0.0)
    raw_copy = gym.make_vec("NPLinearTeacher-v0", num_envs=8, evals_per_input=2, **LINEAR)
    env.reset(seed=0)
    raw_copy.reset(seed=0)
    ratios = []
    for _ in range(20):
        action = zeros_for(raw)
        _, reward, *_ = env.step(action)
        _, raw_reward, *_ = raw_copy.step(action)
        assert reward.shape == (8,) and np.isfinite(reward).all() and (reward <= 0).all()
        ratios.append(reward / raw_reward)
    ratios = np.asarray(ratios)
    # with gamma=0 the return is the reward itself: every reward of a step is divided by the
    # same running std, so the ratio is one number per step, and not 1 (rewards here are ~ -4)
    np.testing.assert_allclose(ratios, ratios[:, :1] * np.ones((1, 8)), rtol=1e-5)
    assert not np.allclose(ratios[-1], 1.0)


def test_dict_info_to_list_carries_final_obs_and_final_info() -> None:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=3, evals_per_input=1, **LINEAR)
    env = vector_wrappers.DictInfoToList(vector_wrappers.RecordEpisodeStatistics(env))
    obs, infos = env.reset(seed=0)
    assert isinstance(infos, list) and len(infos) == 3
    _, reward, terminated, _, infos = env.step(zeros_for(env))
    assert terminated.all() and len(infos) == 3
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["final_obs"], obs[i])  # the input just answered
        assert set(info["final_info"]) == {"epoch", "mse"}
        assert info["final_info"]["mse"] == pytest.approx(info["mse"])
        assert info["episode"]["r"] == pytest.approx(reward[i])


def test_wrappers_on_a_data_env_for_a_whole_epoch() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    env = np_envs.make_dataset_env((x, y), (x[:3], y[:3]), num_envs=4, evals_per_input=2)
    env = vector_wrappers.NormalizeReward(vector_wrappers.RecordEpisodeStatistics(env))
    env.reset(seed=0)
    epochs = []
    for _ in range(6):
        _, _, terminated, _, info = env.step(np.zeros((4, 2)))
        if terminated.all():
            epochs.append(info["final_info"]["epoch"])
            np.testing.assert_array_equal(info["final_info"]["epoch"], info["epoch"])
    np.testing.assert_array_equal(np.concatenate(epochs), [0] * 10 + [1] * 2)
    assert env.env.episode_count == 12
