"""The population environment: P members in G data groups must score exactly as P ordinary envs.

The reference is always the ordinary ``gym.make_vec`` env: a population member must get the
rewards, ``mse``, ``correct`` and inputs that an ordinary env reset with its group's seed gives
the same actions, while each group's data is handed over once.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_mnist, needs_sarcos_test_file

import np_envs  # noqa: F401  (registers the ids)
from np_envs.envs.population import PopulationEnv, make_population_env
from np_envs.envs.stream import DatasetStream, TeacherStream

SARCOS = {"split_scheme": "test-file"}

# (env id, kwargs, batch size): SARCOS's test-file training split has 3,549 rows, so three
# trials of 1,200 cross an epoch boundary
TASKS = [
    pytest.param("NPLinearTeacher-v0", {}, 8, id="linear"),
    pytest.param("NPSarcos-v0", SARCOS, 1200, id="sarcos", marks=needs_sarcos_test_file),
    pytest.param("NPMNIST-v0", {}, 16, id="mnist", marks=needs_mnist),
]


def _actions(rng: np.random.Generator, shape: tuple[int, ...], env_id: str) -> np.ndarray:
    scale = 20.0 if env_id == "NPSarcos-v0" else 1.0  # torques are tens of units
    return (scale * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize(("env_id", "kwargs", "num_envs"), TASKS)
def test_population_equals_ordinary_envs(env_id: str, kwargs: dict, num_envs: int) -> None:
    member_groups, group_seeds, member_seeds = [0, 0, 1], [0, 7], [0, 0, 7]
    pop = make_population_env(env_id, num_envs, member_groups, evals_per_input=2, **kwargs)
    singles = [
        gym.make_vec(env_id, num_envs=num_envs, evals_per_input=2, **kwargs) for _ in member_seeds
    ]
    act_dim = pop.single_action_space.shape[0]
    rng = np.random.default_rng(123)
    steps = 6  # three trials: two trial boundaries
    actions = [_actions(rng, (3, num_envs, act_dim), env_id) for _ in range(steps)]

    obs, info = pop.reset(seed=group_seeds)
    assert obs.shape == (2, num_envs, pop.obs_dim) and obs.flags.c_contiguous
    assert info["epoch"].shape == (2, num_envs) and info["epoch"].dtype == np.int64
    for p, (env, seed) in enumerate(zip(singles, member_seeds, strict=True)):
        single_obs, single_info = env.reset(seed=seed)
        g = member_groups[p]
        np.testing.assert_array_equal(obs[g], single_obs)
        np.testing.assert_array_equal(info["epoch"][g], single_info["epoch"])
    assert not np.array_equal(obs[0], obs[1])  # the seeds do give different orders

    epochs_seen = []
    for t, action in enumerate(actions):
        obs, rewards, terminated, truncated, info = pop.step(action)
        assert rewards.shape == (3, num_envs) and rewards.dtype == np.float64
        assert terminated.shape == truncated.shape == (2, num_envs)
        assert terminated.dtype == truncated.dtype == np.bool_
        assert terminated.all() == (t % 2 == 1) and not truncated.any()
        assert info["finite"].tolist() == [True, True, True]
        epochs_seen.append(info["epoch"])
        for p, env in enumerate(singles):
            g = member_groups[p]
            s_obs, s_rew, s_term, s_trunc, s_info = env.step(action[p])
            np.testing.assert_array_equal(rewards[p], s_rew)
            np.testing.assert_array_equal(info["mse"][p], s_info["mse"])
            np.testing.assert_array_equal(info["epoch"][g], s_info["epoch"])
            np.testing.assert_array_equal(obs[g], s_obs)
            np.testing.assert_array_equal(terminated[g], s_term)
            if "correct" in s_info:
                np.testing.assert_array_equal(info["correct"][p], s_info["correct"])
            if s_term.all():
                np.testing.assert_array_equal(info["final_obs"][g], s_info["final_obs"])
        assert ("correct" in info) == (env_id == "NPMNIST-v0")
        assert "target" not in info
        assert ("final_obs" in info) == bool(terminated.all())
    # members 0 and 1 share the data but not the actions, so their rewards differ
    assert not np.array_equal(rewards[0], rewards[1])
    if env_id == "NPSarcos-v0":
        assert np.stack(epochs_seen).max() == 1  # an epoch boundary was crossed


def test_obs_handed_over_once_per_group_and_clones_share_data() -> None:
    pop = make_population_env("NPLinearTeacher-v0", 4, [0, 1, 2, 0, 1, 2], split="test")
    template_stream = pop.template.unwrapped.stream
    assert isinstance(template_stream, DatasetStream)
    obs, _ = pop.reset(seed=[1, 2, 3])
    assert obs.shape == (pop.num_groups, pop.num_envs, pop.obs_dim) == (3, 4, 100)
    for stream in pop.streams:
        assert stream is not template_stream
        assert np.shares_memory(stream.inputs, template_stream.inputs)
        assert np.shares_memory(stream.targets, template_stream.targets)

    train = make_population_env("NPLinearTeacher-v0", 4, [0, 1])
    teacher_stream = train.template.unwrapped.stream
    assert isinstance(teacher_stream, TeacherStream)
    for stream in train.streams:
        assert stream.teacher is teacher_stream.teacher
    assert train.teacher is train.template.unwrapped.teacher


@needs_sarcos_test_file
def test_clone_shares_arrays_but_not_position() -> None:
    template = gym.make_vec("NPSarcos-v0", num_envs=3, **SARCOS).unwrapped
    stream = template.stream
    clone = stream.clone()
    assert type(clone) is type(stream) and clone.shuffle == stream.shuffle
    assert clone.inputs is stream.inputs and clone.targets is stream.targets
    stream.restart(np.random.default_rng(5))
    first = stream.next(10).indices
    clone.restart(np.random.default_rng(5))
    np.testing.assert_array_equal(clone.next(10).indices, first)  # same data, same order
    clone.next(100)
    np.testing.assert_array_equal(  # the original did not move when the clone did
        stream.next(10).indices, _fresh_indices(stream, seed=5, skip=10, count=10)
    )


def _fresh_indices(stream: DatasetStream, *, seed: int, skip: int, count: int) -> np.ndarray:
    other = stream.clone()
    other.restart(np.random.default_rng(seed))
    other.next(skip)
    return other.next(count).indices


@needs_sarcos_test_file
def test_population_clones_share_sarcos_arrays() -> None:
    pop = make_population_env("NPSarcos-v0", 5, [0, 1], **SARCOS)
    template_stream = pop.template.unwrapped.stream
    for stream in pop.streams:
        assert np.shares_memory(stream.inputs, template_stream.inputs)
    assert pop.epoch_size == template_stream.size == 3549


@pytest.mark.parametrize(
    ("env_id", "kwargs", "bad"),
    [
        pytest.param("NPLinearTeacher-v0", {}, np.nan, id="linear-nan"),
        pytest.param("NPMNIST-v0", {}, np.inf, id="mnist-inf", marks=needs_mnist),
    ],
)
def test_non_finite_member_is_flagged_and_others_scored(
    env_id: str, kwargs: dict, bad: float
) -> None:
    pop = make_population_env(env_id, 6, [0, 0, 1], **kwargs)
    act_dim = pop.single_action_space.shape[0]
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3, 6, act_dim))
    dirty = clean.copy()
    dirty[1, 2, 3] = bad
    pop.reset(seed=[0, 1])
    _, ref_rewards, _, _, ref_info = pop.step(clean)
    pop.reset(seed=[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        _, rewards, _, _, info = pop.step(dirty)
    assert info["finite"].tolist() == [True, False, True]
    assert info["finite"].shape == (3,) and info["finite"].dtype == np.bool_
    assert np.isnan(rewards[1]).all() and np.isnan(info["mse"][1]).all()
    for p in (0, 2):
        np.testing.assert_array_equal(rewards[p], ref_rewards[p])
        np.testing.assert_array_equal(info["mse"][p], ref_info["mse"][p])
    if "correct" in info:
        assert not info["correct"][1].any()
        np.testing.assert_array_equal(info["correct"][[0, 2]], ref_info["correct"][[0, 2]])
    # the ordinary env refuses such an action outright; the population goes on stepping
    _, rewards, *_ = pop.step(clean)
    assert np.isfinite(rewards).all()


def test_bad_actions_are_refused() -> None:
    pop = make_population_env("NPLinearTeacher-v0", 4, [0, 1, 1])
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        pop.step(np.zeros((3, 4, 10)))
    pop.reset(seed=0)
    for shape in [(4, 10), (2, 4, 10), (3, 5, 10), (3, 4, 11), (3, 4, 10, 1)]:
        with pytest.raises(ValueError, match=r"expected \(3, 4, 10\)"):
            pop.step(np.zeros(shape))
    for dtype in (bool, np.complex128, object):
        with pytest.raises(TypeError, match="real numbers"):
            pop.step(np.zeros((3, 4, 10), dtype=dtype))
    _, rewards, *_ = pop.step(np.zeros((3, 4, 10), dtype=np.float64))  # still usable
    assert rewards.shape == (3, 4)
    with pytest.raises(ValueError, match="one seed per group"):
        pop.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="seed must be an int"):
        pop.reset(seed=[1, -2])
    with pytest.raises(ValueError, match="seed must be an int"):
        pop.reset(seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("member_groups", "message"),
    [
        ([], "non-empty 1-D"),
        ([[0, 1]], "non-empty 1-D"),
        ([0, 2], r"group\(s\) \[1\] have no member"),
        ([1, 1], r"group\(s\) \[0\] have no member"),
        ([-1, 0], ">= 0"),
        ([0.0, 1.0], "integers"),
        ([True, False], "integers"),
    ],
)
def test_bad_member_groups_are_refused(member_groups: list, message: str) -> None:
    template = gym.make_vec("NPLinearTeacher-v0", num_envs=2)
    with pytest.raises(ValueError, match=message):
        PopulationEnv(template, member_groups)


def test_template_must_be_an_np_envs_vector_env() -> None:
    with pytest.raises(TypeError, match="RewardOnlyVectorEnv"):
        PopulationEnv(gym.make("NPLinearTeacher-v0"), [0])


def test_attributes_follow_the_template() -> None:
    pop = make_population_env(
        "NPLinearTeacher-v0", 3, (0, 1, 0, 1), evals_per_input=3, reveal_target=True, Ly=4
    )
    assert (pop.num_envs, pop.num_groups, pop.num_members) == (3, 2, 4)
    assert pop.member_groups.dtype == np.int64 and pop.member_groups.tolist() == [0, 1, 0, 1]
    assert pop.evals_per_input == 3 and pop.reveal_target and pop.split == "train"
    assert pop.readout == "linear" and pop.batch_reduction == "sum"
    assert pop.epoch_size is None and pop.teacher.shape == (4, 100)
    assert pop.spec.id == "NPLinearTeacher-v0" and pop.spec.kwargs["Ly"] == 4
    assert pop.unwrapped is pop and len(pop.streams) == 2
    assert pop.single_action_space.shape == (4,) and pop.single_observation_space.shape == (100,)
    obs, _ = pop.reset(seed=[3, 4])
    _, _, _, _, info = pop.step(np.zeros((4, 3, 4)))
    assert info["target"].shape == (2, 3, 4)
    single = gym.make_vec("NPLinearTeacher-v0", num_envs=3, reveal_target=True, Ly=4)
    single.reset(seed=4)
    _, _, _, _, s_info = single.step(np.zeros((3, 4)))
    np.testing.assert_array_equal(info["target"][1], s_info["target"])
    pop.close()


def test_seed_forms_and_unseeded_resets() -> None:
    pop = make_population_env("NPLinearTeacher-v0", 2, [0, 1, 2])
    obs, _ = pop.reset(seed=5)  # one int: every group alike
    assert np.array_equal(obs[0], obs[1]) and np.array_equal(obs[1], obs[2])
    after, _ = pop.reset()  # no seed: the next batch of each stream, no rewind
    assert not np.array_equal(after[0], obs[0])
    again, _ = pop.reset(seed=[None, 5, None])  # rewind group 1 only
    np.testing.assert_array_equal(again[1], obs[1])
    assert not np.array_equal(again[0], obs[0])
    fresh = make_population_env("NPLinearTeacher-v0", 2, [0, 1])
    unseeded, _ = fresh.reset()  # an unseeded generator per group, as the ordinary env
    assert not np.array_equal(unseeded[0], unseeded[1])


def _walk_data_only(value: Any, path: str = "state") -> None:
    """The state must be nested dicts (str keys), lists, JSON scalars and numpy arrays."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has a non-string key {key!r}"
            _walk_data_only(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_data_only(item, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (bool, int, float, str, np.ndarray), (
            f"{path} is a {type(value).__name__}"
        )


@pytest.mark.parametrize(
    ("env_id", "kwargs", "num_envs"),
    [
        pytest.param("NPLinearTeacher-v0", {"sigma_t": 0.5}, 8, id="linear"),
        pytest.param("NPSarcos-v0", SARCOS, 1000, id="sarcos", marks=needs_sarcos_test_file),
    ],
)
def test_state_dict_round_trip(env_id: str, kwargs: dict, num_envs: int) -> None:
    groups = [0, 1, 1]
    pop = make_population_env(env_id, num_envs, groups, evals_per_input=2, **kwargs)
    act_dim = pop.single_action_space.shape[0]
    rng = np.random.default_rng(9)
    actions = [_actions(rng, (3, num_envs, act_dim), env_id) for _ in range(12)]
    pop.reset(seed=[11, 12])
    for action in actions[:5]:  # mid-run and mid-trial (the 5th step starts trial 3)
        pop.step(action)
    state = pop.state_dict()
    _walk_data_only(state)
    expected = [pop.step(action) for action in actions[5:]]  # crosses SARCOS's epoch boundary

    restored = make_population_env(env_id, num_envs, groups, evals_per_input=2, **kwargs)
    restored.load_state_dict(state)
    for action, (obs, rewards, terminated, _, info) in zip(actions[5:], expected, strict=True):
        r_obs, r_rewards, r_terminated, _, r_info = restored.step(action)
        np.testing.assert_array_equal(r_obs, obs)
        np.testing.assert_array_equal(r_rewards, rewards)
        np.testing.assert_array_equal(r_terminated, terminated)
        np.testing.assert_array_equal(r_info["epoch"], info["epoch"])
    if env_id == "NPSarcos-v0":
        assert max(info["epoch"].max() for *_, info in expected) == 1

    other = make_population_env(env_id, num_envs + 1, groups, **kwargs)
    with pytest.raises(ValueError, match="num_envs"):
        other.load_state_dict(state)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "num_envs"),
    [
        pytest.param("NPLinearTeacher-v0", {"evals_per_input": 3}, 5, id="linear"),
        pytest.param("NPSarcos-v0", SARCOS, 7, id="sarcos", marks=needs_sarcos_test_file),
    ],
)
def test_single_member_population_equals_ordinary_env(
    env_id: str, kwargs: dict, num_envs: int
) -> None:
    pop = make_population_env(env_id, num_envs, [0], **kwargs)
    env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    obs, _ = pop.reset(seed=3)
    s_obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs[0], s_obs)
    assert obs.shape == (1, num_envs, pop.obs_dim)
    rng = np.random.default_rng(1)
    act_dim = pop.single_action_space.shape[0]
    for _ in range(7):
        action = _actions(rng, (1, num_envs, act_dim), env_id)
        obs, rewards, terminated, _, info = pop.step(action)
        s_obs, s_rewards, s_terminated, _, s_info = env.step(action[0])
        np.testing.assert_array_equal(rewards[0], s_rewards)
        np.testing.assert_array_equal(info["mse"][0], s_info["mse"])
        np.testing.assert_array_equal(obs[0], s_obs)
        np.testing.assert_array_equal(terminated[0], s_terminated)


@needs_mnist
def test_encoded_obs_are_the_stored_codes_of_the_same_batches() -> None:
    """``encoded_obs=True`` hands over MNIST's bytes; decoded, they are the ordinary env's
    observations bit for bit, and every reward is the same."""
    groups = [0, 0, 1]
    plain = make_population_env("NPMNIST-v0", 16, groups, evals_per_input=2)
    template = gym.make_vec("NPMNIST-v0", num_envs=16, evals_per_input=2)
    encoded = PopulationEnv(template, groups, encoded_obs=True)
    assert encoded.encoded_obs and encoded.obs_divisor == np.float32(255)
    assert not plain.encoded_obs and plain.obs_divisor is None
    obs, _ = plain.reset(seed=[3, 4])
    codes, _ = encoded.reset(seed=[3, 4])
    assert codes.dtype == np.uint8 and codes.shape == obs.shape
    np.testing.assert_array_equal(encoded.decode(codes).view(np.uint32), obs.view(np.uint32))
    rng = np.random.default_rng(0)
    for _ in range(4):  # two trials: the codes of the next batch come with the second step
        action = rng.standard_normal((3, 16, 10)).astype(np.float32)
        obs, rewards, _, _, info = plain.step(action)
        codes, enc_rewards, _, _, enc_info = encoded.step(action)
        np.testing.assert_array_equal(enc_rewards, rewards)
        np.testing.assert_array_equal(encoded.decode(codes), obs)
        if "final_obs" in info:
            np.testing.assert_array_equal(encoded.decode(enc_info["final_obs"]), info["final_obs"])
    # a trial saved with codes restarts in an env that decodes, and the other way round
    state = encoded.state_dict()
    assert state["trial"]["obs"].dtype == np.uint8
    decoding = make_population_env("NPMNIST-v0", 16, groups, evals_per_input=2)
    decoding.load_state_dict(state)
    np.testing.assert_array_equal(decoding.current_obs, obs)
    again = PopulationEnv(template, groups, encoded_obs=True)
    again.load_state_dict(plain.state_dict())
    np.testing.assert_array_equal(again.current_obs, obs)  # kept as observations
    action = rng.standard_normal((3, 16, 10)).astype(np.float32)
    for env in (decoding, again):
        np.testing.assert_array_equal(env.step(action)[1], plain.step(action)[1])
        plain.load_state_dict(state)


def test_encoded_obs_leaves_tasks_without_codes_alone() -> None:
    pop = PopulationEnv(gym.make_vec("NPLinearTeacher-v0", num_envs=4), [0, 1], encoded_obs=True)
    assert not pop.encoded_obs and pop.obs_divisor is None
    obs, _ = pop.reset(seed=[0, 1])
    assert obs.dtype == np.float32 and pop.decode(obs) is obs
