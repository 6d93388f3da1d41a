"""Stable-Baselines3 and sb3-contrib algorithms (``ppo``, ``a2c``, ``sac``, ``td3``, ``ddpg``,
``ars``) as np-envs agents: same tasks, same interface, honest defaults for one-step bandits.

``make_sb3_agent(name, env, ...)`` returns an :class:`SB3Agent`: a thin wrapper holding the SB3
algorithm as ``agent.model``. The algorithm trains on an adapted env (:mod:`agents.sb3_vec_adapter`)
whose actions are ``[-1, 1]^n``; ``agent.predict`` answers in the task's units, so
``np_envs.evaluate`` and SB3's ``evaluate_policy`` on our raw env score it correctly. The SB3
class's own ``predict`` is left alone because off-policy algorithms call it while collecting
data; SB3 callbacks passed to ``learn`` attach to ``agent.model`` as usual (an ``EvalCallback``
on a raw task env is rescaled to the algorithm's units, so it scores what the agent would do).

Why these defaults (each one is a keyword you can override):

- ``gamma=0``. A step's reward depends only on that step's action and input; nothing later
  depends on it. The return is the immediate reward, so critics fit ``E[r | s, a]`` without
  bootstrapping and GAE reduces to ``r - V(s)``. ARS has no discount and refuses ``gamma``.
- Action scaling ``action = offset + scale * a`` with ``a`` in ``[-1, 1]``: SAC/TD3/DDPG need finite
  bounds (SB3 asserts them) and every algorithm explores in those units. Per task: linear teacher
  ``scale=5`` (targets have std <= 1.41, 1.35 at the default sizes); SARCOS per joint, the range
  of the torques in ``sarcos_inv_test.mat`` widened by 25 % (offset = its centre: an untrained
  policy answers mid-range torques); MNIST logits ``scale=10`` (softmax saturates well before).
  ``NPDataset-v0`` states its own (``env.unwrapped.action_offset``/``action_scale``): the
  training targets' range per output widened by 25 % (regression), logits ``0 +- 10``
  (classification). Another env with finite bounds keeps them; an unbounded one needs
  ``action_scale=``.
- PPO: a rollout of about 512 samples over all sub-envs (``n_steps = ceil(512 / num_envs)``,
  at least 2), 4 minibatches: with 1000 sub-envs a rollout is 2 vector steps, cheap; trials need
  not end inside a rollout since nothing is bootstrapped. A2C: about 64 samples per update.
  Gaussian policies start with exploration std 0.2 (``log_std_init``) instead of SB3's 1.0,
  which would put a third of the actions on the clipping bounds and blur the reward signal
  (PPO, linear task, 8 sub-envs, 8192 steps: test MSE 1.77 -> 0.97 at std 0.2, 1.13 at 1.0,
  1.34 at 0.1).
- SAC/TD3/DDPG: ``learning_starts=100`` (a bandit needs no long random warm-up; SB3's value),
  ``train_freq=1``, ``batch_size=256``, ``gradient_steps = max(1, round(num_envs / 256))``: a
  narrow batch gets SB3's usual one update per step, a wide one replays about as many samples
  per step as it collects (1000 sub-envs: 4 updates of 256, not 1). A replay buffer of at most
  100k samples and 256 MiB (MNIST's 784-dim inputs would otherwise take 6 GB); replaying old
  samples is exact here because ``E[r | s, a]`` does not move. TD3/DDPG explore with Gaussian
  action noise of std 0.1 (SB3 adds none by default, leaving a deterministic actor unexplored).
- ARS: each candidate is scored on at least 32 trials, a whole number of batches, since one
  trial's reward mostly measures how hard its input was, not the candidate. Its step count is
  fixed for vector envs (:mod:`agents.sb3_ars`).

``hidden_sizes`` becomes ``policy_kwargs["net_arch"]``; ``learning_rate=None`` keeps SB3's.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import VectorizedActionNoise

from agents.sb3_defaults import algorithm_defaults, default_action_map
from agents.sb3_vec_adapter import ActionMap, rescaled_like, to_sb3_vec_env

ALGORITHM_NAMES: tuple[str, ...] = ("ppo", "a2c", "sac", "td3", "ddpg", "ars")
_META_KEY = "np_envs_bridge"


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class behind ``name`` (imported on demand: sb3-contrib only for ``ars``)."""
    key = _check_name(name)
    if key == "ars":
        from agents.sb3_ars import CountingARS

        return CountingARS
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC, "td3": sb3.TD3, "ddpg": sb3.DDPG}[key]


def make_sb3_agent(
    name: str,
    env: Any,
    *,
    hidden_sizes: Sequence[int] = (64, 64),
    learning_rate: float | Any | None = None,
    seed: int | None = None,
    gamma: float | None = None,
    action_scale: float | Sequence[float] | None = None,
    action_offset: float | Sequence[float] | None = None,
    device: str = "cpu",
    verbose: int = 0,
    **algo_kwargs: Any,
) -> SB3Agent:
    """An SB3 algorithm by name on ``env`` (gymnasium Env or VectorEnv), with bandit defaults.

    ``gamma=None`` means 0 (see the module docstring); ``action_scale``/``action_offset`` (scalar
    or per dimension, task units) override the task's action map; other keywords go to the SB3
    class (``policy=`` picks another policy than ``"MlpPolicy"``).
    """
    key = _check_name(name)
    cls = algorithm_class(key)
    action_map = default_action_map(env, action_scale, action_offset)
    venv = to_sb3_vec_env(env, action_map)
    kwargs = algorithm_defaults(key, venv)
    policy_kwargs = {
        "net_arch": [int(h) for h in hidden_sizes],
        **kwargs.pop("policy_kwargs", {}),
        **(algo_kwargs.pop("policy_kwargs", None) or {}),
    }
    if key == "ars":
        if gamma is not None:
            raise ValueError("ars (ARS) has no discount factor: leave gamma=None")
    else:
        kwargs["gamma"] = 0.0 if gamma is None else gamma
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    kwargs.update(algo_kwargs)
    policy = kwargs.pop("policy", "MlpPolicy")
    try:
        model = cls(
            policy,
            venv,
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
            verbose=verbose,
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        raise _prefixed(err, f"{key} ({cls.__name__})") from err
    return SB3Agent(model, key, action_map, env)


class SB3Agent:
    """An SB3 algorithm (``.model``) that answers in the task's units, used like our agents."""

    algorithm_names = ALGORITHM_NAMES

    def __init__(
        self, model: BaseAlgorithm, name: str, action_map: ActionMap, env: Any = None
    ) -> None:
        self.model = model
        self.name = name
        self.action_map = action_map
        self._env = env

    def __repr__(self) -> str:
        return f"SB3Agent({self.name}, {type(self.model).__name__}, n_envs={self.model.n_envs})"

    def __getattr__(self, name: str) -> Any:
        """Everything else is the SB3 algorithm's (in its ``[-1, 1]`` action units)."""
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    # Training and acting.

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int | None = None,
        progress_bar: bool = False,
        **learn_kwargs: Any,
    ) -> SB3Agent:
        """SB3's ``learn``; ``log_interval=None`` keeps the algorithm's own default."""
        for cb in _walk_callbacks(callback):
            if isinstance(cb, EvalCallback) and cb.eval_env.action_space != self.action_space_sb3:
                cb.eval_env = rescaled_like(cb.eval_env, self.action_map)
        if log_interval is not None:
            learn_kwargs["log_interval"] = log_interval
        self.model.learn(
            total_timesteps, callback=callback, progress_bar=progress_bar, **learn_kwargs
        )
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Actions in the task's units for one observation or a batch of them."""
        actions, state = self.model.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        return self.action_map.to_task(actions), state

    # Persistence.

    def save(self, path: str | os.PathLike | io.BufferedIOBase, **kwargs: Any) -> None:
        """SB3's zip, plus which algorithm and action map (read back by :meth:`load`)."""
        meta = {"algorithm": self.name, "action_map": self.action_map.to_dict()}
        setattr(self.model, _META_KEY, meta)  # a plain dict: stored as JSON in the zip's data
        self.model.save(path, **kwargs)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | io.BufferedIOBase,
        env: Any = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> SB3Agent:
        """Load an agent saved by :meth:`save`, on ``env`` (ours: single or vector) or none."""
        meta = _read_meta(path)
        name = _check_name(meta["algorithm"])
        action_map = ActionMap.from_dict(meta["action_map"])
        venv = None if env is None else to_sb3_vec_env(env, action_map)
        model = algorithm_class(name).load(path, env=venv, device=device, **kwargs)
        _fit_action_noise(model)
        return cls(model, name, action_map, env)

    # The rest of the agent interface.

    def get_env(self) -> Any:
        """The env this agent was made or loaded with (task units); ``model.get_env()`` is SB3's."""
        return self._env

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        self.model.set_env(to_sb3_vec_env(env, self.action_map), force_reset=force_reset)
        _fit_action_noise(self.model)
        self._env = env

    @property
    def num_timesteps(self) -> int:
        return self.model.num_timesteps

    @property
    def network(self) -> Any:
        """The SB3 policy, a ``torch.nn.Module`` (its outputs are in ``[-1, 1]`` units)."""
        return self.model.policy

    @property
    def logger(self) -> Logger:
        """SB3's logger; before the first ``learn`` a silent one that ``learn`` replaces."""
        if getattr(self.model, "_logger", None) is None:
            self.model._logger = Logger(folder=None, output_formats=[])
        return self.model.logger

    def set_logger(self, logger: Logger) -> None:
        self.model.set_logger(logger)

    @property
    def action_space(self) -> spaces.Box:
        """What :meth:`predict` answers: the task's units, within the action map's range."""
        return spaces.Box(self.action_map.task_low, self.action_map.task_high, dtype=np.float32)

    @property
    def action_space_sb3(self) -> spaces.Box:
        """What the SB3 algorithm answers: ``[-1, 1]^n``."""
        return self.action_map.bounded_space


def _check_name(name: str) -> str:
    key = str(name).lower()
    if key not in ALGORITHM_NAMES:
        raise ValueError(f"unknown SB3 algorithm {name!r}; choose one of {ALGORITHM_NAMES}")
    return key


def _prefixed(err: Exception, where: str) -> Exception:
    message = f"{where}: {err.args[0] if len(err.args) == 1 else err}"
    try:
        return type(err)(message)
    except Exception:  # an exception type with another signature
        return ValueError(message)


def _walk_callbacks(callback: Any) -> Iterator[BaseCallback]:
    """Every SB3 callback inside ``callback`` (lists, CallbackList, event children)."""
    stack, seen = [callback], set()
    while stack:
        cb = stack.pop()
        if cb is None or id(cb) in seen:
            continue
        seen.add(id(cb))
        if isinstance(cb, (list, tuple)):
            stack.extend(cb)
            continue
        if isinstance(cb, BaseCallback):
            yield cb
            stack.extend(getattr(cb, "callbacks", None) or [])
            stack.append(getattr(cb, "callback", None))
            stack.append(getattr(cb, "callback_on_new_best", None))


def _fit_action_noise(model: BaseAlgorithm) -> None:
    """A loaded TD3/DDPG's per-env noise must match the new env's width: SB3 re-vectorises it."""
    noise = getattr(model, "action_noise", None)
    if isinstance(noise, VectorizedActionNoise) and model.env is not None:
        if noise.n_envs != model.env.num_envs:
            model.action_noise = noise.base_noise


def _read_meta(path: str | os.PathLike | io.BufferedIOBase) -> dict[str, Any]:
    """The bridge's entry in the zip's ``data`` JSON (SB3 stores plain dicts as JSON)."""
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        if not path.exists() and path.suffix != ".zip":
            path = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    else:
        start = path.tell()
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        path.seek(start)
    meta = data.get(_META_KEY)
    if not isinstance(meta, dict) or "algorithm" not in meta:
        raise ValueError(
            "this file was not saved by an np-envs SB3 agent; load it with the SB3 class itself "
            "(e.g. stable_baselines3.PPO.load)"
        )
    return meta
