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
import math
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import HumanOutputFormat, Logger
from stable_baselines3.common.noise import VectorizedActionNoise
from torch import nn

from agents.checkpoint import CheckpointError, not_this_kind
from agents.sb3_defaults import algorithm_defaults, default_action_map, single_action_space
from agents.sb3_vec_adapter import ActionMap, rescaled_like, to_sb3_vec_env
from agents.schedules import parse_rate, resolve_device

ALGORITHM_NAMES: tuple[str, ...] = ("ppo", "a2c", "sac", "td3", "ddpg", "ars")
ALGORITHM_CLASS_NAMES = {"ppo": "PPO", "a2c": "A2C", "sac": "SAC", "td3": "TD3", "ddpg": "DDPG",
                         "ars": "ARS"}
#: the common ``activation`` keyword as SB3's ``policy_kwargs["activation_fn"]``
ACTIVATIONS = ("relu", "tanh", "linear")
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
    activation: str | None = None,
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

    The common keywords are checked here, before SB3 sees them, because SB3 accepts some bad
    values silently (a negative learning rate trains uphill, ``device="cuda"`` on a CPU-only
    torch falls back to the CPU, ``net_arch=[0]`` builds an empty layer): ``hidden_sizes``
    positive ints, ``activation`` ``relu``/``tanh``/``linear`` (``None``: SB3's default, tanh
    for PPO/A2C, ReLU otherwise), ``learning_rate`` a finite number >= 0, ``"lin_<x>"`` or a
    schedule, ``device`` one this torch has.
    """
    key = _check_name(name)
    where = f"{key} ({ALGORITHM_CLASS_NAMES[key]})"
    net_arch = _check_hidden_sizes(hidden_sizes, where)
    if learning_rate is not None:
        learning_rate = _check_learning_rate(learning_rate, where)
    resolve_device(device)  # one clear line instead of SB3's silent fall-back to the CPU
    if "sigma" in algo_kwargs:
        raise TypeError(f"{where} has no sigma (the perturbation size of np, wn-np and "
                        "reinforce); its exploration is log_std_init (PPO/A2C/SAC) or "
                        "action_noise (TD3/DDPG)")
    cls = algorithm_class(key)
    action_map = default_action_map(env, action_scale, action_offset)
    venv = to_sb3_vec_env(env, action_map)
    kwargs = algorithm_defaults(key, venv)
    user_policy_kwargs = algo_kwargs.pop("policy_kwargs", None) or {}
    policy_kwargs = {
        "net_arch": net_arch,
        **kwargs.pop("policy_kwargs", {}),
        **user_policy_kwargs,
    }
    if activation is not None:
        if "activation_fn" in user_policy_kwargs:
            raise ValueError(f"{where}: give activation= or policy_kwargs['activation_fn'], "
                             "not both")
        policy_kwargs["activation_fn"] = _activation_fn(activation, where)
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
        self._log_without_a_folder()
        self.model.learn(
            total_timesteps, callback=callback, progress_bar=progress_bar, **learn_kwargs
        )
        return self

    def _log_without_a_folder(self) -> None:
        """SB3's own logger without ``tensorboard_log`` still makes an empty temp folder per
        ``learn`` (``/tmp/SB3-<date>``: a sweep's chunks left hundreds); the same outputs
        (stdout when ``verbose >= 1``) with no folder. A logger set by the user is kept."""
        model = self.model
        ours = self.__dict__.get("_quiet_logger")
        if model._custom_logger and model._logger is not ours:
            return  # the user's
        if model.tensorboard_log is None:  # made afresh each time, as SB3 does (verbose may change)
            formats = [HumanOutputFormat(sys.stdout)] if model.verbose >= 1 else []
            self._quiet_logger = Logger(folder=None, output_formats=formats)
            model.set_logger(self._quiet_logger)
        elif ours is not None:
            model._custom_logger = False  # tensorboard_log set since: SB3 sets it up as usual

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
        meta = {"algorithm": self.name, "action_map": self.action_map.to_dict(),
                "observation_shape": list(self.model.observation_space.shape)}
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
        """Load an agent saved by :meth:`save`, on ``env`` (ours: single or vector) or none.

        The file's JSON part is checked first (a truncated, empty or foreign file, or one saved
        for another env's shapes, raises :class:`~agents.checkpoint.CheckpointError`); the rest
        is SB3's own zip, whose ``data`` entry SB3 deserialises with cloudpickle: load only
        files you trust.
        """
        resolve_device(device)
        meta = _read_meta(path)
        try:
            name = _check_name(meta["algorithm"])
            action_map = ActionMap.from_dict(meta["action_map"])
        except (KeyError, TypeError, ValueError) as err:
            raise not_this_kind(path, f"its np_envs_bridge entry is damaged ({err})") from None
        venv = None
        if env is not None:
            _check_shapes(path, meta, action_map, env)
            try:
                venv = to_sb3_vec_env(env, action_map)
            except ValueError as err:
                raise not_this_kind(path, f"its shapes do not fit the env: {err}") from None
        try:
            model = algorithm_class(name).load(path, env=venv, device=device, **kwargs)
        except ValueError as err:  # SB3 compares the spaces itself (files without our shapes)
            if "spaces do not match" not in str(err).lower():
                raise
            raise not_this_kind(path, f"its shapes do not fit the env: {err}") from None
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


def _check_hidden_sizes(hidden_sizes: Any, where: str) -> list[int]:
    """``net_arch`` from ``hidden_sizes``: a sequence of positive ints (SB3 would build a
    0-unit layer, or fail far from the cause)."""
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes,
                                                                (Sequence, np.ndarray)):
        raise ValueError(f"{where}: hidden_sizes must be a sequence of positive ints, e.g. "
                         f"(64, 64), got {hidden_sizes!r}")
    sizes = []
    for h in hidden_sizes:
        if isinstance(h, (bool, np.bool_)) or not isinstance(h, (int, np.integer)) or h < 1:
            raise ValueError(f"{where}: hidden_sizes must be positive ints, got "
                             f"{tuple(hidden_sizes)!r}")
        sizes.append(int(h))
    return sizes


def _check_learning_rate(value: Any, where: str) -> Any:
    """A finite rate >= 0 or a schedule (SB3's ``Schedule``, or ``"lin_<x>"``); SB3 itself
    trains uphill with a negative rate."""
    try:
        start, schedule = parse_rate(value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if schedule is not None:
        end = float(schedule(0.0))
        if not (math.isfinite(end) and end >= 0):
            raise ValueError(f"{where}: learning_rate schedule must stay finite and >= 0, "
                             f"gives {end!r} at the end")
        return schedule
    return start


def _activation_fn(activation: Any, where: str) -> type[nn.Module]:
    """The torch module class for the common ``activation`` keyword."""
    table: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}
    key = str(activation).lower()
    if key not in table:
        raise ValueError(f"{where}: unknown activation {activation!r}; choose one of "
                         f"{ACTIVATIONS}")
    return table[key]


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


def _read_data(archive: zipfile.ZipFile, path: Any) -> dict[str, Any]:
    names = set(archive.namelist())
    if "data" not in names:
        hint = ("; an np-envs rule's file: load it with its class (e.g. "
                "NodePerturbation.load)" if "agent.json" in names else "")
        raise not_this_kind(path, f"it has no SB3 'data' entry (found {sorted(names)[:5]})"
                                  f"{hint}")
    data = json.loads(archive.read("data"))
    if not isinstance(data, dict):
        raise not_this_kind(path, "its SB3 'data' entry is not a JSON object")
    return data


def _read_meta(path: str | os.PathLike | io.BufferedIOBase) -> dict[str, Any]:
    """The bridge's entry in the zip's ``data`` JSON (SB3 stores plain dicts as JSON); nothing
    in the file is unpickled here."""
    shown: Any = path
    try:
        if isinstance(path, (str, os.PathLike)):
            path = Path(path)
            if not path.exists() and path.suffix != ".zip":
                path = path.with_name(path.name + ".zip")
            shown = path
            with zipfile.ZipFile(path) as archive:
                data = _read_data(archive, shown)
        else:
            start = path.tell()
            with zipfile.ZipFile(path) as archive:
                data = _read_data(archive, "the stream")
            path.seek(start)
    except (FileNotFoundError, CheckpointError):
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError) as err:
        raise not_this_kind(shown, f"{type(err).__name__}: {err}"[:300]) from None
    meta = data.get(_META_KEY)
    if not isinstance(meta, dict) or "algorithm" not in meta:
        raise not_this_kind(
            shown, "it was not saved by an np-envs SB3 agent; load it with the SB3 class "
                   "itself (e.g. stable_baselines3.PPO.load)"
        )
    return meta


def _check_shapes(path: Any, meta: dict[str, Any], action_map: ActionMap, env: Any) -> None:
    """The env's observation and action sizes against those the file was saved for."""
    space = single_action_space(env)
    obs_space = env.single_observation_space if hasattr(env, "single_observation_space") \
        else env.observation_space
    saved_obs = meta.get("observation_shape")
    acts = getattr(space, "shape", None)
    problems = []
    if saved_obs is not None and tuple(saved_obs) != tuple(obs_space.shape):
        problems.append(f"observations {tuple(saved_obs)} vs the env's {tuple(obs_space.shape)}")
    if acts is not None and (action_map.size,) != tuple(acts):
        problems.append(f"actions ({action_map.size},) vs the env's {tuple(acts)}")
    if problems:
        raise not_this_kind(path, "its shapes do not fit: saved for " + "; ".join(problems))
