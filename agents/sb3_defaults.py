"""Defaults for Stable-Baselines3 algorithms on one-step bandit tasks; the reasons are in
:mod:`agents.sb3_bridge`'s docstring. Everything here can be overridden by keyword.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from agents.sb3_vec_adapter import ActionMap

# Task units of the algorithms' a = +-1: action = offset + scale * a.
LINEAR_SCALE = 5.0  # targets A x have std sqrt(2 Lx / (Lx + Ly)) <= 1.41 (1.35 at 100 -> 10)
MNIST_LOGIT_SCALE = 10.0  # softmax(+-10) is already one-hot to 1e-8
# SARCOS torques, per joint: the range of sarcos_inv_test.mat (all 4,449 rows), widened by 25 %.
SARCOS_OFFSET = (18.1, -29.8, 16.9, 32.6, 0.6, 0.0, 4.0)
SARCOS_SCALE = (128.5, 82.6, 48.4, 53.9, 5.1, 7.7, 9.1)

TASK_ACTION_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "NPLinearTeacher-v0": (0.0, LINEAR_SCALE),
    "NPSarcos-v0": (SARCOS_OFFSET, SARCOS_SCALE),
    "NPMNIST-v0": (0.0, MNIST_LOGIT_SCALE),
}

PPO_ROLLOUT = 512  # samples per PPO update, summed over sub-envs
PPO_MINIBATCHES = 4
A2C_ROLLOUT = 64  # samples per A2C update (one gradient step each)
ARS_EPISODES = 32  # trials (inputs) per ARS candidate evaluation
INITIAL_ACTION_STD = 0.2  # Gaussian policies: exploration std in [-1, 1] units
TD3_ACTION_NOISE = 0.1  # TD3/DDPG exploration noise std in [-1, 1] units
REPLAY_BYTES = 2**28  # off-policy replay of obs and next_obs: at most 256 MiB
REPLAY_MAX = 100_000


def single_action_space(env: Any) -> spaces.Space:
    if isinstance(env, VectorEnv):
        return env.single_action_space
    return env.action_space


def task_id(env: Any) -> str | None:
    """The registered id of ``env``'s task (``None`` if it was not made by id)."""
    spec = getattr(env, "spec", None) or getattr(getattr(env, "unwrapped", None), "spec", None)
    if spec is None and isinstance(env, VecEnv):
        try:
            spec = env.get_attr("spec", 0)[0]
        except (AttributeError, ValueError):
            spec = None
    return getattr(spec, "id", None)


def env_action_units(env: Any) -> tuple[Any, Any] | None:
    """``(offset, scale)`` the env itself states (``NPDataset-v0`` derives them from its
    training targets), or None."""
    base = getattr(env, "unwrapped", env)
    offset = getattr(base, "action_offset", None)
    scale = getattr(base, "action_scale", None)
    if (offset is None or scale is None) and isinstance(env, VecEnv):
        try:
            offset, scale = env.get_attr("action_offset", 0)[0], env.get_attr("action_scale", 0)[0]
        except (AttributeError, ValueError):
            return None
    return None if offset is None or scale is None else (offset, scale)


def default_action_map(env: Any, action_scale: Any = None, action_offset: Any = None) -> ActionMap:
    """The task's default map (its own statement, or the table above), or a bounded env's own
    bounds; each part overridable."""
    space = single_action_space(env)
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"the SB3 bridge needs a flat Box action space, got {space}")
    n = space.shape[0]
    defaults = TASK_ACTION_DEFAULTS.get(task_id(env) or "") or env_action_units(env)
    if defaults is not None:
        base = ActionMap.make(defaults[0], defaults[1], n)
    elif np.isfinite(space.low).all() and np.isfinite(space.high).all():
        base = ActionMap.from_bounds(space.low, space.high)
    elif action_scale is None:
        raise ValueError(
            f"{task_id(env) or type(env).__name__} has an unbounded action space and no default "
            "action scale: pass action_scale= (and action_offset=) in the task's units"
        )
    else:
        base = ActionMap.make(0.0, 1.0, n)
    return ActionMap.make(
        base.offset if action_offset is None else action_offset,
        base.scale if action_scale is None else action_scale,
        n,
    )


def algorithm_defaults(name: str, venv: VecEnv) -> dict[str, Any]:
    """Keyword defaults for algorithm ``name`` on the adapted env ``venv``."""
    n_envs = venv.num_envs
    n_actions = int(np.prod(venv.action_space.shape))
    if name == "ppo":
        n_steps = max(2, math.ceil(PPO_ROLLOUT / n_envs))
        while (n_steps * n_envs) % PPO_MINIBATCHES:
            n_steps += 1
        return dict(
            n_steps=n_steps,
            batch_size=n_steps * n_envs // PPO_MINIBATCHES,
            policy_kwargs=dict(log_std_init=math.log(INITIAL_ACTION_STD)),
        )
    if name == "a2c":
        return dict(
            n_steps=max(1, math.ceil(A2C_ROLLOUT / n_envs)),
            policy_kwargs=dict(log_std_init=math.log(INITIAL_ACTION_STD)),
        )
    if name in ("sac", "td3", "ddpg"):
        obs_size = int(np.prod(venv.observation_space.shape))
        batch_size = 256
        kwargs: dict[str, Any] = dict(
            buffer_size=int(min(REPLAY_MAX, REPLAY_BYTES // (8 * obs_size))),
            learning_starts=100,
            batch_size=batch_size,
            train_freq=1,
            gradient_steps=max(1, round(n_envs / batch_size)),
        )
        if name != "sac":
            kwargs["action_noise"] = NormalActionNoise(
                np.zeros(n_actions), TD3_ACTION_NOISE * np.ones(n_actions)
            )
        return kwargs
    if name == "ars":
        return dict(n_eval_episodes=n_envs * max(1, math.ceil(ARS_EPISODES / n_envs)))
    raise ValueError(f"no defaults for {name!r}")
