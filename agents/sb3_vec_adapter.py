"""Our environments in Stable-Baselines3's own terms: its ``VecEnv`` API and bounded actions.

SB3 rejects a ``gymnasium.vector.VectorEnv`` and needs finite action bounds; our tasks are natively
batched vector envs (autoreset SAME_STEP) with unbounded float actions. This module bridges both:

- :class:`VectorEnvAdapter` presents a SAME_STEP gymnasium ``VectorEnv`` as an SB3 ``VecEnv``
  (the step that ends a trial already returns the next input, exactly SB3's convention, so the
  adapter only reshapes the info dict of arrays into SB3's list of per-env dicts);
- :class:`ActionMap` is the affine map ``action = offset + scale * a`` from the algorithms'
  ``[-1, 1]^n`` to the task's units, applied by :class:`ScaleAction` (one gymnasium env, what
  ``check_env`` sees) or :class:`VecScaleAction` (any SB3 ``VecEnv``);
- :func:`to_sb3_vec_env` picks the right stack for a single env, a vector env or an SB3 VecEnv.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

_SKIPPED_INFO_KEYS = ("final_obs", "final_info")


@dataclass(frozen=True)
class ActionMap:
    """``action = offset + scale * a``: the algorithm answers ``a`` in ``[-1, 1]^n``."""

    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def make(cls, offset: float | Sequence[float], scale: float | Sequence[float], n: int):
        """Broadcast scalars or per-dimension values to ``n`` dimensions (float32)."""
        offset_arr = np.broadcast_to(np.asarray(offset, dtype=np.float32), (n,)).copy()
        scale_arr = np.broadcast_to(np.asarray(scale, dtype=np.float32), (n,)).copy()
        if not (np.isfinite(offset_arr).all() and np.isfinite(scale_arr).all()):
            raise ValueError("action_offset and action_scale must be finite")
        if (scale_arr <= 0).any():
            raise ValueError(f"action_scale must be > 0 in every dimension, got {scale_arr}")
        offset_arr.flags.writeable = False
        scale_arr.flags.writeable = False
        return cls(offset_arr, scale_arr)

    @classmethod
    def from_bounds(cls, low: np.ndarray, high: np.ndarray) -> ActionMap:
        """The map whose image of ``[-1, 1]^n`` is exactly ``[low, high]``."""
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        return cls.make((low + high) / 2, (high - low) / 2, low.size)

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> ActionMap:
        return cls.make(data["offset"], data["scale"], len(data["scale"]))

    def to_dict(self) -> dict[str, list[float]]:
        return {"offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @property
    def size(self) -> int:
        return int(self.scale.size)

    @property
    def bounded_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.size,), np.float32)

    @property
    def task_low(self) -> np.ndarray:
        return self.offset - self.scale

    @property
    def task_high(self) -> np.ndarray:
        return self.offset + self.scale

    def to_task(self, bounded: np.ndarray) -> np.ndarray:
        """The task's action for the algorithm's ``a`` (clipped to ``[-1, 1]`` first)."""
        a = np.clip(np.asarray(bounded, dtype=np.float32), -1.0, 1.0)
        return self.offset + self.scale * a

    def to_bounded(self, action: np.ndarray) -> np.ndarray:
        return (np.asarray(action, dtype=np.float32) - self.offset) / self.scale


class ScaleAction(gym.ActionWrapper):
    """One gymnasium env with action space ``[-1, 1]^n``, rescaled to the task's units."""

    def __init__(self, env: gym.Env, action_map: ActionMap) -> None:
        super().__init__(env)
        _check_map_fits(action_map, env.action_space)
        self.action_map = action_map
        self.action_space = action_map.bounded_space

    def action(self, action: np.ndarray) -> np.ndarray:
        return self.action_map.to_task(action)

    def reverse_action(self, action: np.ndarray) -> np.ndarray:
        return self.action_map.to_bounded(action)


class VecScaleAction(VecEnvWrapper):
    """Any SB3 ``VecEnv`` with action space ``[-1, 1]^n``, rescaled to the task's units."""

    def __init__(self, venv: VecEnv, action_map: ActionMap) -> None:
        _check_map_fits(action_map, venv.action_space)
        self.action_map = action_map
        super().__init__(venv, action_space=action_map.bounded_space)

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(self.action_map.to_task(actions))

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()


class VectorEnvAdapter(VecEnv):
    """A gymnasium ``VectorEnv`` with SAME_STEP autoreset as an SB3 ``VecEnv``.

    Observations and rewards pass through as arrays; ``dones = terminated | truncated``; the info
    dict of arrays becomes SB3's list of per-env dicts, with ``terminal_observation`` (the
    finished input, from ``info["final_obs"]``), ``TimeLimit.truncated`` and, when a trial ends,
    Monitor-style ``episode`` statistics so SB3 logs ``ep_rew_mean`` without a ``VecMonitor`` (and
    ``env_is_wrapped(Monitor)`` says so, so that ``evaluate_policy`` reads them without warning).
    Sub-environments of a natively batched env share one state: attributes are read from (and
    written to, or methods called on) the whole batch at once.
    """

    def __init__(self, venv: VectorEnv, episode_info: bool = True) -> None:
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if AutoresetMode(mode) != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"VectorEnvAdapter needs autoreset_mode SAME_STEP (SB3's convention), got {mode}; "
                "make the vector env with vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}"
            )
        self.venv = venv
        self.episode_info = episode_info
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(venv.num_envs, dtype=np.float64)
        self._lengths = np.zeros(venv.num_envs, dtype=np.int64)
        self._t_start = time.time()
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]  # a native batch has one sample stream: the first seed drives it
        options = self._options[0] or None
        obs, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = self._unbatch(info)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos = self._unbatch(info)
        timeouts = np.logical_and(truncated, ~terminated).tolist()
        for env_info, timeout in zip(infos, timeouts, strict=True):
            env_info["TimeLimit.truncated"] = timeout
        self._returns += rewards
        self._lengths += 1
        if dones.any():
            self._finish(infos, info, dones)
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def _finish(self, infos: list[dict[str, Any]], info: dict[str, Any], dones: np.ndarray) -> None:
        """Attach what SB3 reads at the end of a trial to the finished sub-envs' infos."""
        done_idx = np.flatnonzero(dones)
        final_obs = info.get("final_obs")
        final_infos = self._unbatch(info["final_info"]) if "final_info" in info else None
        elapsed = round(time.time() - self._t_start, 6)
        returns = self._returns[done_idx].tolist()
        lengths = self._lengths[done_idx].tolist()
        for i, ret, length in zip(done_idx.tolist(), returns, lengths, strict=True):
            if final_infos is not None:
                infos[i].update(final_infos[i])
            if final_obs is not None:
                infos[i]["terminal_observation"] = final_obs[i]
            if self.episode_info:
                infos[i]["episode"] = {"r": ret, "l": length, "t": elapsed}
        self._returns[done_idx] = 0.0
        self._lengths[done_idx] = 0

    def _unbatch(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Gymnasium's dict of arrays (with optional ``_key`` masks) -> one dict per sub-env."""
        n = self.num_envs
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        for key, value in info.items():
            if key.startswith("_") or key in _SKIPPED_INFO_KEYS:
                continue
            if isinstance(value, dict):
                for env_info, sub in zip(infos, self._unbatch(value), strict=True):
                    env_info[key] = sub
                continue
            if not isinstance(value, np.ndarray) or value.shape[:1] != (n,):
                continue  # not per sub-env: nothing sensible to split
            column = value.tolist() if value.ndim == 1 and value.dtype != object else list(value)
            mask = info.get(f"_{key}")
            if mask is None:
                for env_info, item in zip(infos, column, strict=True):
                    env_info[key] = item
            else:
                for i in np.flatnonzero(mask).tolist():
                    infos[i][key] = column[i]
        return infos

    def close(self) -> None:
        self.venv.close()

    def render(self, mode: str | None = None) -> np.ndarray | None:
        raise NotImplementedError("np-envs tasks have nothing to render")

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("np-envs tasks have nothing to render")

    # Attributes: a native batch holds one state for all its sub-envs.

    def _all(self, indices: VecEnvIndices, what: str) -> list[int]:
        chosen = list(self._get_indices(indices))
        if sorted(chosen) != list(range(self.num_envs)):
            raise ValueError(
                f"{what} on a subset of sub-environments {chosen} is not possible: a natively "
                "batched env has one state for the whole batch; pass indices=None"
            )
        return chosen

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        chosen = list(self._get_indices(indices))
        try:
            value = _vector_attr(self.venv, attr_name)
        except AttributeError:
            per_env = getattr(self.venv, "get_attr", None)  # Sync/AsyncVectorEnv of single envs
            if per_env is None:
                raise
            values = per_env(attr_name)
            return [values[i] for i in chosen]
        return [value for _ in chosen]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._all(indices, "set_attr")
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        chosen = self._all(indices, "env_method")
        result = _vector_attr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in chosen]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        if self.episode_info and issubclass(wrapper_class, Monitor):
            return [True for _ in self._get_indices(indices)]  # same "episode" infos as Monitor
        wrapped = False
        env: Any = self.venv
        while isinstance(env, VectorWrapper):
            wrapped = wrapped or isinstance(env, wrapper_class)
            env = env.env
        return [wrapped for _ in self._get_indices(indices)]


def _vector_attr(venv: VectorEnv, name: str) -> Any:
    """``name`` from the vector env or, through its wrappers, the env underneath."""
    try:
        return getattr(venv, name)
    except AttributeError:
        return getattr(venv.unwrapped, name)


def _check_map_fits(action_map: ActionMap, space: spaces.Space) -> None:
    if not isinstance(space, spaces.Box) or space.shape != (action_map.size,):
        raise ValueError(
            f"action map of size {action_map.size} does not fit action space {space}; "
            "the bridge needs a flat Box action space"
        )


def to_sb3_vec_env(env: Any, action_map: ActionMap | None = None) -> VecEnv:
    """An SB3 ``VecEnv`` for a gymnasium env, a gymnasium ``VectorEnv`` or an SB3 ``VecEnv``.

    With ``action_map`` its actions are the algorithms' ``[-1, 1]^n``; without, the task's own.
    A single env gets SB3's ``Monitor`` (episode statistics) inside a ``DummyVecEnv``.
    """
    if isinstance(env, VecEnv):
        return env if action_map is None else VecScaleAction(env, action_map)
    if isinstance(env, VectorEnv):
        adapted = VectorEnvAdapter(env)
        return adapted if action_map is None else VecScaleAction(adapted, action_map)
    if isinstance(env, gym.Env):
        inner = env if action_map is None else ScaleAction(env, action_map)
        return DummyVecEnv([lambda: Monitor(inner)])
    raise TypeError(
        f"expected a gymnasium Env, a gymnasium VectorEnv or an SB3 VecEnv, got {type(env)!r}"
    )


def rescaled_like(eval_env: VecEnv, action_map: ActionMap) -> VecEnv:
    """``eval_env`` (task units) in the algorithms' units, built like the training env."""
    if isinstance(eval_env, DummyVecEnv):
        return DummyVecEnv([lambda e=e: ScaleAction(e, action_map) for e in eval_env.envs])
    return VecScaleAction(eval_env, action_map)
