"""``np_envs.evaluate``: score any agent on a whole split, through the environment itself.

The agent only answers observations; the environment scores its answers exactly as during
training, so an agent is judged by the same reward it learns from, on every sample once.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from np_envs.envs.core import RewardOverflowError

DEFAULT_EVAL_BATCH = 1000


def _spec_of(env: Any) -> gym.envs.registration.EnvSpec:
    spec = getattr(env, "spec", None) or getattr(getattr(env, "unwrapped", None), "spec", None)
    if spec is None:
        raise ValueError(
            "evaluate() needs an environment made with gym.make or gym.make_vec (it rebuilds "
            "the same task on another split from env.spec); got one without a spec"
        )
    return spec


def make_split_env(env: Any, split: str, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The same task and settings as ``env``, on ``split``, batched, one step per input.

    A batch larger than the split is fine: the split is read in fixed order and wraps around,
    and :func:`evaluate` counts only the first pass.
    """
    spec = _spec_of(env)
    kwargs = {
        key: value
        for key, value in spec.kwargs.items()
        if key not in ("num_envs", "vectorization_mode", "vector_kwargs")
    }
    kwargs.update(split=split, evals_per_input=1, reveal_target=False)
    eval_env = gym.make_vec(spec.id, num_envs=num_envs or DEFAULT_EVAL_BATCH, **kwargs)
    if eval_env.unwrapped.stream.size is None:
        eval_env.close()
        raise ValueError(f"split {split!r} of {spec.id} is an endless stream; evaluate 'test'")
    return eval_env

def evaluate(
    agent: Any, env: Any, split: str = "test", num_envs: int | None = None
) -> dict[str, Any]:
    """Score ``agent`` on every sample of ``split`` of ``env``'s task.

    Returns ``mse`` (mean over samples and outputs of the squared error of the read-out),
    ``accuracy`` (fraction correct, classification tasks only), ``mean_reward``, ``n``; and
    ``diverged=True`` with infinite error if the agent answered NaN or inf, or answers so
    large that the loss overflows.
    """
    eval_env = make_split_env(env, split, num_envs)
    size = eval_env.unwrapped.stream.size
    batch = eval_env.num_envs
    rewards, mses, corrects = [], [], []
    obs, _ = eval_env.reset(seed=0)
    seen = 0
    try:
        while seen < size:
            actions, _ = agent.predict(obs, deterministic=True)
            actions = np.asarray(actions, dtype=np.float64).reshape(batch, -1)
            if not np.isfinite(actions).all():
                return _diverged(size, eval_env.readout == "softmax")
            try:
                obs, reward, _, _, info = eval_env.step(actions)
            except RewardOverflowError:  # finite answers so large the loss is inf: diverged
                return _diverged(size, eval_env.readout == "softmax")
            take = min(batch, size - seen)
            rewards.append(reward[:take])
            mses.append(info["mse"][:take])
            if "correct" in info:
                corrects.append(info["correct"][:take])
            seen += take
    finally:
        eval_env.close()
    result: dict[str, Any] = {
        "mse": float(np.concatenate(mses).mean()),
        "mean_reward": float(np.concatenate(rewards).mean()),
        "n": int(size),
    }
    if corrects:
        result["accuracy"] = float(np.concatenate(corrects).mean())
    return result


def evaluate_members(
    agent: Any, env: Any, split: str = "test", num_envs: int | None = None
) -> list[dict[str, Any]]:
    """Score every member of a population on every sample of ``split``, in one pass.

    Every member answers the same inputs (``agent.predict`` of a population returns
    ``(P, N, act)``) and the environment scores all answers at once (a ``PopulationEnv`` of one
    group), so the cost per member is the arithmetic alone. Returns one dict per member, as
    :func:`evaluate` does for one agent; a member that answered NaN or inf gets
    ``diverged=True`` and infinite error.
    """
    from np_envs.envs.population import PopulationEnv

    members = int(getattr(agent, "num_members", 1))
    eval_env = make_split_env(env, split, num_envs)
    size = eval_env.unwrapped.stream.size
    batch = eval_env.num_envs
    pop_env = PopulationEnv(eval_env, [0] * members)
    classification = pop_env.readout == "softmax"
    rewards, mses, corrects = [], [], []
    finite = np.ones(members, dtype=bool)
    obs, _ = pop_env.reset(seed=0)
    seen = 0
    try:
        while seen < size:
            actions, _ = agent.predict(obs[0], deterministic=True)
            actions = np.asarray(actions, dtype=np.float64).reshape(members, batch, -1)
            obs, reward, _, _, info = pop_env.step(actions)
            finite &= info["finite"]
            take = min(batch, size - seen)
            rewards.append(reward[:, :take])
            mses.append(info["mse"][:, :take])
            if "correct" in info:
                corrects.append(info["correct"][:, :take])
            seen += take
    finally:
        pop_env.close()
        eval_env.close()
    mse = np.concatenate(mses, axis=1).mean(axis=1)
    mean_reward = np.concatenate(rewards, axis=1).mean(axis=1)
    accuracy = np.concatenate(corrects, axis=1).mean(axis=1) if corrects else None
    results = []
    for p in range(members):
        if not finite[p]:
            results.append(_diverged(size, classification))
            continue
        result: dict[str, Any] = {"mse": float(mse[p]), "mean_reward": float(mean_reward[p]),
                                  "n": int(size)}
        if accuracy is not None:
            result["accuracy"] = float(accuracy[p])
        results.append(result)
    return results


def _diverged(size: int, classification: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "mse": float("inf"),
        "mean_reward": float("-inf"),
        "n": int(size),
        "diverged": True,
    }
    if classification:
        result["accuracy"] = 0.0
    return result
