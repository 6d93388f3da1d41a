"""Populations: member p of a population is the single agent with p's settings.

Float64, 50 updates, every built-in rule, the three tasks: each member's weights equal those of
the single agent made with its learning rate, seed and sigma, to 1e-9 relative. A member that
diverges is frozen and recorded, and the others are untouched (1e-12 relative to a population
without it). Plus the user-facing calls: ``make_population``, ``member(p)``, per-member predict,
save/load, and a plug-in rule with no population implementation.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import needs_sarcos_test_file
from helpers import load_example

import np_envs  # noqa: F401  (registers the environments)
from agents import make_agent, make_population, register_agent
from agents.registry import _REGISTRY

UPDATES = 50
B = 8

#: rule name -> extra keywords (structural options shared by the population)
RULES = {
    "np": {},
    "wn-np-first": {"normalize": "first"},
    "wn-np-all": {"normalize": "all"},
    "reinforce": {},
    "reinforce-hidden": {"hidden_noise": True},
    "sgd": {},
    "wp": {},
}

TASKS = {
    "linear": ("NPLinearTeacher-v0", {"Lx": 10, "Ly": 3}, (1e-3, 3e-4), (1e-3, 2e-3)),
    "sarcos": ("NPSarcos-v0", {"split_scheme": "test-file"}, (1e-4, 3e-5), (1e-2, 3e-2)),
    "mnist": ("NPMNIST-v0", {}, (1e-2, 3e-3), (1e-2, 3e-2)),
}


def rule_name(key: str) -> str:
    return key.split("-first")[0].split("-all")[0].replace("-hidden", "")


def make_env(task: str, **kwargs) -> gym.vector.VectorEnv:
    env_id, env_kwargs, _, _ = TASKS[task]
    return gym.make_vec(env_id, num_envs=B, **env_kwargs, **kwargs)


def flat_weights(net: torch.nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().cpu().numpy().ravel() for p in net.parameters()])


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def settings(task: str, key: str) -> tuple[str, dict, list[dict]]:
    """Rule, shared keywords, and four members (mixed rates, seeds and sigmas)."""
    _, _, rates, sigmas = TASKS[task]
    name = rule_name(key)
    shared = {"hidden_sizes": (12,), "dtype": "float64", **RULES[key]}
    members = [
        {"seed": 3, "learning_rate": rates[0], "sigma": sigmas[0]},
        {"seed": 3, "learning_rate": rates[1], "sigma": sigmas[1]},
        {"seed": 4, "learning_rate": rates[0], "sigma": sigmas[1]},
        {"seed": 4, "learning_rate": rates[1], "sigma": sigmas[0]},
    ]
    if name == "sgd":
        for m in members:
            m.pop("sigma")
    return name, shared, members


def as_lists(members: list[dict]) -> dict[str, list]:
    return {k: [m[k] for m in members] for k in members[0]}


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("key", list(RULES))
def test_member_equals_single_agent(task: str, key: str) -> None:
    _skip_without_data(task)
    name, shared, members = settings(task, key)
    env_kw = {"reveal_target": True} if name == "sgd" else {}
    steps = UPDATES * B * (1 if name == "sgd" else 2)
    if name == "sgd":
        env_kw["evals_per_input"] = 1
    population = make_agent(name, make_env(task, **env_kw), **shared, **as_lists(members))
    assert population.num_members == 4 and population.layout.per_group == 2
    population.learn(steps)
    for p, member in enumerate(members):
        single = make_agent(name, make_env(task, **env_kw), **shared, **member).learn(steps)
        diff = relative_difference(flat_weights(population.networks[p]),
                                   flat_weights(single.network))
        assert diff < 1e-9, f"member {p}: relative difference {diff:.2e}"
        assert not np.array_equal(flat_weights(single.network),
                                  flat_weights(population.networks[1 - p % 2 + 2 * (p // 2)]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mnist_bytes_decoded_by_the_learners_give_the_same_weights(dtype: str) -> None:
    """An agent's own population env hands over MNIST's bytes and the agent decodes them: its
    members end bit for bit where they end when the env decodes (a user's PopulationEnv)."""
    _skip_without_data("mnist")
    from np_envs.envs.population import PopulationEnv

    kw = {"hidden_sizes": (12,), "dtype": dtype, "sigma": 1e-2,
          "learning_rate": [1e-2, 3e-3, 1e-2], "seed": [3, 3, 4]}
    own = make_agent("np", make_env("mnist"), **kw)
    assert own._pop_env.encoded_obs
    given = make_agent("np", PopulationEnv(make_env("mnist"), [0, 0, 1]), **kw)
    assert not given._pop_env.encoded_obs
    codes = np.arange(256, dtype=np.uint8).reshape(1, 1, 256)
    decoded = own._pop_env.decode(codes).astype(dtype)
    assert own.to_groups(codes).numpy().tobytes() == decoded.tobytes()  # every byte value
    for agent in (own, given):
        agent.learn(2 * B * 30)
    for mine, theirs in zip(own.weights + own.biases, given.weights + given.biases, strict=True):
        assert torch.equal(mine, theirs)
    pending = own._last_obs  # what the callbacks saw as new_obs: bytes
    assert pending.dtype == np.uint8
    np.testing.assert_array_equal(own.predict(pending)[0],
                                  own.predict(own._pop_env.decode(pending))[0])


def _skip_without_data(task: str) -> None:
    from conftest import _data_present

    files = {"sarcos": ["sarcos/sarcos_inv_test.mat"],
             "mnist": ["mnist/train-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz"]}
    if not _data_present(*files.get(task, [])):
        pytest.skip(f"{task} data not under NP_ENVS_DATA")


@pytest.mark.parametrize("seeds", [[5, 9, 5, 7], [5, 9, 7, 2]], ids=["irregular", "all-own"])
def test_member_order_and_streams_do_not_matter(seeds: list[int]) -> None:
    """Members in any order (the first layer then gathers inputs per member) are still the
    single runs."""
    rates = [1e-3, 2e-3, 3e-3, 4e-3]
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-3}
    population = make_agent("np", make_env("linear"), learning_rate=rates, seed=seeds,
                            **shared).learn(UPDATES * B * 2)
    for p in range(4):
        single = make_agent("np", make_env("linear"), learning_rate=rates[p], seed=seeds[p],
                            **shared).learn(UPDATES * B * 2)
        diff = relative_difference(flat_weights(population.networks[p]),
                                   flat_weights(single.network))
        assert diff < 1e-9


def train_with_divergence_check(agent, env, chunks: int, steps: int, factor: float = 1e3):
    """What the runner does: learn in chunks, score every member on the test split, freeze a
    member whose test error passes ``factor`` x its initial error."""
    from np_envs.evaluation import evaluate_members

    initial = [r["mse"] for r in evaluate_members(agent, env)]
    for _ in range(chunks):
        agent.learn(steps, reset_num_timesteps=False)
        for p, result in enumerate(evaluate_members(agent, env)):
            if result.get("diverged") or result["mse"] > factor * initial[p]:
                agent.freeze(p)
    return agent


@needs_sarcos_test_file
def test_diverging_member_is_frozen_and_leaves_the_others_alone() -> None:
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-2}
    steps = UPDATES * B * 2 // 5
    env = make_env("sarcos")
    with_bad = train_with_divergence_check(
        make_agent("np", env, learning_rate=[1e-5, 1e-3, 1e-5], seed=[3, 3, 4], **shared),
        env, chunks=5, steps=steps)
    env = make_env("sarcos")
    without = train_with_divergence_check(
        make_agent("np", env, learning_rate=[1e-5, 1e-5], seed=[3, 4], **shared),
        env, chunks=5, steps=steps)
    assert with_bad.diverged == [False, True, False]
    assert without.diverged == [False, False]
    frozen_at = with_bad.diverged_at[1]
    assert frozen_at is not None and frozen_at < 5 * steps
    for p, q in ((0, 0), (2, 1)):
        diff = relative_difference(flat_weights(with_bad.networks[p]),
                                   flat_weights(without.networks[q]))
        assert diff < 1e-12, f"member {p}: {diff:.2e}"
    frozen = flat_weights(with_bad.networks[1]).copy()
    with_bad.learn(steps, reset_num_timesteps=False)
    np.testing.assert_array_equal(flat_weights(with_bad.networks[1]), frozen)


@needs_sarcos_test_file
def test_member_with_nan_answers_is_frozen_at_once() -> None:
    """Answers that overflow to inf/NaN freeze the member during learning, before any check."""
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-2}
    agent = make_agent("np", make_env("sarcos"), learning_rate=[1e-5, 1e-5], seed=[3, 4],
                       **shared)
    with torch.no_grad():
        agent.weights[-1][1].fill_(1e300)  # member 1's answers overflow on the next trial
    agent.learn(B * 2 * 3)
    assert agent.diverged == [False, True] and agent.diverged_at[1] == 0
    assert np.all(agent.weights[-1][1].numpy() == 1e300)


def test_make_population_grid_member_and_predict(tmp_path: Path) -> None:
    env = make_env("linear")
    population = make_population("np", env, learning_rates=[1e-3, 3e-3], seeds=[0, 1],
                                 hidden_sizes=(12,), sigma=1e-3)
    assert population.seeds == [0, 0, 1, 1]
    assert population.learning_rates == [1e-3, 3e-3, 1e-3, 3e-3]
    population.learn(400)
    obs = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    all_actions, _ = population.predict(obs)
    assert all_actions.shape == (4, 5, 3)
    for p in range(4):
        one, _ = population.predict(obs, member=p)
        np.testing.assert_array_equal(one, all_actions[p])
        agent = population.member(p)
        assert agent.num_members == 1 and agent.learning_rate == population.learning_rates[p]
        np.testing.assert_allclose(agent.predict(obs)[0], all_actions[p], rtol=1e-6, atol=1e-7)
    population.save(tmp_path / "pop.zip")
    loaded = type(population).load(tmp_path / "pop.zip", env=make_env("linear"))
    np.testing.assert_array_equal(loaded.predict(obs)[0], all_actions)
    assert loaded.seeds == population.seeds
    with pytest.raises(AttributeError, match="networks"):
        _ = population.network


@pytest.mark.parametrize("seeds", [[0, 1], [1, 1], [0, 1, 1, 0]],
                         ids=["own-noise", "shared-noise-grid", "shared-noise-gathered"])
def test_member_continues_like_the_single_run(seeds: list[int]) -> None:
    """An extracted member keeps learning exactly as the uninterrupted single agent (its seed's
    data stream comes with it), also when it drew its noise together with group-mates (members
    sharing a seed share one stream)."""
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-3}
    rates = [1e-3, 2e-3, 3e-3, 4e-3][:len(seeds)]
    population = make_agent("np", make_env("linear"), learning_rate=rates, seed=seeds,
                            **shared).learn(160)
    states = population.noise_generator_states()
    for p, q in [(p, q) for p in range(len(seeds)) for q in range(len(seeds))
                 if seeds[p] == seeds[q]]:
        assert torch.equal(states[2 * p], states[2 * q])  # two streams per member
    member = population.member(1).learn(80, reset_num_timesteps=False)
    single = make_agent("np", make_env("linear"), learning_rate=2e-3, seed=1, **shared)
    single.learn(160).learn(80, reset_num_timesteps=False)
    assert member.num_timesteps == single.num_timesteps == 240
    diff = relative_difference(flat_weights(member.network), flat_weights(single.network))
    assert diff < 1e-9


def test_member_of_a_population_that_has_not_learned_starts_as_the_single_run() -> None:
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-3}
    population = make_agent("np", make_env("linear"), learning_rate=[1e-3, 2e-3],
                            seed=[0, 1], **shared)
    member = population.member(1).learn(160)
    single = make_agent("np", make_env("linear"), learning_rate=2e-3, seed=1, **shared)
    single.learn(160)
    assert relative_difference(flat_weights(member.network), flat_weights(single.network)) == 0


@pytest.mark.parametrize(("key", "members"),
                         [(key, [1, 2]) for key in RULES] + [("np", [3])])
def test_selected_members_go_on_as_in_the_population(key: str, members: list[int]) -> None:
    """select() carries weights, noise, status and the groups' data streams: the selection
    keeps learning as its members do in the whole population (how the runner drops diverged
    members from a job), for every built-in rule."""
    name, shared, settings_of = settings("linear", key)
    sgd = name == "sgd"
    env = make_env("linear", evals_per_input=1 if sgd else 2, reveal_target=sgd)
    population = make_agent(name, env, **shared, **as_lists(settings_of)).learn(160)
    population.freeze(0)
    subset = population.select(members, carry_streams=True)
    assert subset.num_members == len(members) and subset.active.all()
    population.learn(160, reset_num_timesteps=False)
    subset.learn(160, reset_num_timesteps=False)
    for q, p in enumerate(members):
        diff = relative_difference(flat_weights(subset.networks[q]),
                                   flat_weights(population.networks[p]))
        assert diff < 1e-9, f"member {p}: {diff:.2e}"
    assert not population.select([0, 1]).active[0]  # a frozen member stays frozen


@pytest.mark.parametrize("key", ["np", "sgd"])
def test_a_grid_with_narrow_inputs_copied_per_member_is_the_single_runs(key: str) -> None:
    """SARCOS's 21 inputs into a 48-wide layer: on a seeds x rates grid the inputs are copied
    out per member (cheaper than moving the side-by-side product's answers between layouts).
    Members are still the single runs, and the side-by-side path gives the same weights."""
    name, shared, members = settings("sarcos", key)
    shared["hidden_sizes"] = (48,)
    sgd = name == "sgd"

    def env():
        return make_env("sarcos", evals_per_input=1 if sgd else 2, reveal_target=sgd)

    steps = UPDATES * B * (1 if sgd else 2)
    copied = make_agent(name, env(), **shared, **as_lists(members))
    assert copied._gathers(2, (2, B, 21), 21, 48)  # the path under test
    copied.learn(steps)
    side_by_side = make_agent(name, env(), **shared, **as_lists(members))
    side_by_side._gathers = lambda *args: False  # the other path, for comparison
    side_by_side.learn(steps)
    for p, member in enumerate(members):
        single = make_agent(name, env(), **shared, **member).learn(steps)
        mine = flat_weights(copied.networks[p])
        assert relative_difference(mine, flat_weights(single.network)) < 1e-9
        assert relative_difference(mine, flat_weights(side_by_side.networks[p])) < 1e-12


def test_plugin_without_population_runs_members_in_turn() -> None:
    """A rule written against the single-agent hooks: correct members, one after another."""
    plugin = load_example("weight_perturbation.py").WeightPerturbationPlugin
    register_agent("wp-plugin-test", plugin, overwrite=True)
    try:
        shared = {"hidden_sizes": (8,), "dtype": "float64", "sigma": 1e-3,
                  "activation": "linear", "bias": False}
        population = make_population("wp-plugin-test", make_env("linear"),
                                     learning_rates=[1e-3, 2e-3], seeds=[0, 1], **shared)
        assert not population.population_native and population.num_members == 4
        population.learn(160)
        builtin = make_population("wp", make_env("linear"), learning_rates=[1e-3, 2e-3],
                                  seeds=[0, 1], **shared).learn(160)
        for p in range(4):
            diff = relative_difference(flat_weights(population.member(p).network),
                                       flat_weights(builtin.networks[p]))
            assert diff < 1e-9, f"member {p}: plug-in and built-in wp differ by {diff:.2e}"
    finally:
        _REGISTRY.pop("wp-plugin-test", None)


def test_misspelt_keywords_are_refused_not_ignored() -> None:
    """``learning_rates=[...]`` for ``learning_rate`` used to build P members at the default
    rate, silently; every unknown keyword is a TypeError naming the nearest accepted one."""
    env = make_env("linear")
    for name in ("np", "wn-np", "reinforce", "sgd", "wp"):
        with pytest.raises(TypeError, match="'learning_rates' \\(did you mean 'learning_rate'"):
            make_agent(name, env, learning_rates=[1e-3, 2e-3])
    with pytest.raises(TypeError, match="'hidden_size' \\(did you mean 'hidden_sizes'"):
        make_agent("np", env, hidden_size=(8,))
    with pytest.raises(TypeError, match="'sigma'"):
        make_agent("sgd", env, sigma=1e-3)  # SGD has no sigma


def test_a_list_of_sigmas_alone_makes_a_population() -> None:
    agent = make_agent("np", make_env("linear"), sigma=[1e-3, 2e-3], hidden_sizes=(8,))
    assert agent.num_members == 2 and agent.sigmas == [1e-3, 2e-3]


def test_bad_member_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        make_agent("np", make_env("linear"), learning_rate=[1e-3, 2e-3], seed=[0, 1, 2])
    with pytest.raises(ValueError, match="sigma"):
        make_agent("np", make_env("linear"), learning_rate=[1e-3, 2e-3], sigma=[1e-3, -1.0])
    with pytest.raises(ValueError, match="learning_rate"):
        make_agent("np", make_env("linear"), learning_rate=[1e-3, float("nan")])


def test_reseeding_a_population_regroups_its_members() -> None:
    """``set_random_seed`` with new seeds changes which members share data and noise: from the
    same weights, the population then trains as one built with those seeds."""
    shared = {"hidden_sizes": (12,), "dtype": "float64", "sigma": 1e-3}
    rates = [1e-3, 2e-3, 1e-3, 2e-3]
    new_seeds = [2, 3, 3, 4]
    reseeded = make_agent("np", make_env("linear"), learning_rate=rates, seed=[0, 0, 1, 1],
                          **shared)
    reseeded.learn(80)
    reseeded.set_random_seed(new_seeds)
    fresh = make_agent("np", make_env("linear"), learning_rate=rates, seed=new_seeds, **shared)
    reseeded.set_parameters(fresh.get_parameters())
    reseeded.learn(160)
    fresh.learn(160)
    for p in range(4):
        diff = relative_difference(flat_weights(reseeded.networks[p]),
                                   flat_weights(fresh.networks[p]))
        assert diff < 1e-9, f"member {p}: {diff:.2e}"


def test_reseeding_cannot_regroup_a_population_env_the_user_gave() -> None:
    from np_envs.envs.population import make_population_env

    env = make_population_env("NPLinearTeacher-v0", B, [0, 0, 1, 1], Lx=10, Ly=3)
    agent = make_agent("np", env, learning_rate=[1e-3, 2e-3, 1e-3, 2e-3], seed=[0, 0, 1, 1],
                       hidden_sizes=(12,))
    agent.set_random_seed([5, 5, 6, 6])  # same groups: fine
    with pytest.raises(ValueError, match="PopulationEnv"):
        agent.set_random_seed([2, 3, 3, 4])
    assert agent.seeds == [5, 5, 6, 6]  # nothing changed
    agent.learn(4 * B)


def test_noise_threads_stay_off_cores_the_runner_gave_to_other_workers(monkeypatch) -> None:
    """A worker told it has one core draws its noise in the calling thread (a noise thread on
    a busy core only slows it down); without the hint the machine's cores count."""
    import os

    from np_envs.threads import CORES_PER_PROCESS_ENV, cores_per_process

    agent = make_agent("np", make_env("linear"), hidden_sizes=(12,))
    monkeypatch.setenv(CORES_PER_PROCESS_ENV, "1")
    assert cores_per_process() == 1
    assert agent._auto_noise_mode(B, 10**6) == "serial"
    monkeypatch.setenv(CORES_PER_PROCESS_ENV, "not a number")
    assert cores_per_process() == (os.cpu_count() or 1)
    monkeypatch.delenv(CORES_PER_PROCESS_ENV)
    expected = "serial" if (os.cpu_count() or 1) < 2 else ("prefetch", "parallel")
    assert agent._auto_noise_mode(B, 10**6) in expected
