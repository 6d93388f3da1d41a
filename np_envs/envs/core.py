"""The trial logic every task shares, and the single and natively batched Gymnasium classes.

A trial shows one input for ``evals_per_input`` steps; each step scores the action it is given
with ``reward = -l(action, target)`` and says nothing else a learner may use. The single env is
the batched logic with one sub-environment, so both versions give the same rewards for the
same samples and actions by construction.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from np_envs.envs.stream import SampleStream
from np_envs.losses import READOUTS, Readout, loss_in_place_guarded

BatchReduction = Literal["mean", "sum"]
SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return split


def check_evals_per_input(evals_per_input: int) -> int:
    if isinstance(evals_per_input, bool) or not isinstance(evals_per_input, (int, np.integer)):
        raise TypeError(f"evals_per_input must be an int >= 1, got {evals_per_input!r}")
    if evals_per_input < 1:
        raise ValueError(f"evals_per_input must be >= 1, got {evals_per_input}")
    return int(evals_per_input)


class RewardOverflowError(ValueError):
    """Finite actions whose loss overflows float64: a reward of -inf would be a silent lie."""


def _overflow_message(actions: np.ndarray, losses: np.ndarray) -> str:
    """Names the first action whose loss overflowed: sub-env, largest entry and where it is."""
    env = int(np.flatnonzero(~np.isfinite(losses))[0])
    row = np.asarray(actions[env], dtype=np.float64)
    k = int(np.argmax(np.abs(row)))
    return (
        f"the action of sub-environment {env} ({row.size} values, largest a[{k}] = "
        f"{row[k]:.3g}) makes the loss overflow to inf; the learner's output diverged: lower "
        "its learning rate or perturbation size, or stop the run"
    )


class TrialLogic:
    """State of the current trial for ``num_envs`` sub-environments, and the scoring of actions.

    ``start()`` draws the next ``num_envs`` inputs; ``score(actions)`` validates the actions,
    returns the rewards, whether the trial ended, and the experimenter's ``info``.
    """

    def __init__(
        self,
        stream: SampleStream,
        num_envs: int,
        evals_per_input: int,
        readout: Readout,
        reveal_target: bool,
    ) -> None:
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; choose one of {READOUTS}")
        self.stream = stream
        self.num_envs = int(num_envs)
        self.evals_per_input = check_evals_per_input(evals_per_input)
        self.readout = readout
        self.reveal_target = bool(reveal_target)
        self.action_shape = (self.num_envs, stream.target_dim)
        self.obs: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.epochs: np.ndarray | None = None
        self.evals_done = 0

    def restart(self, rng: np.random.Generator) -> None:
        self.stream.restart(rng)

    def start(self) -> np.ndarray:
        batch = self.stream.next(self.num_envs)
        self.obs, self.targets, self.epochs = batch.inputs, batch.targets, batch.epochs
        self.evals_done = 0
        return self.obs

    def check_action(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != self.action_shape:
            raise ValueError(
                f"action has shape {actions.shape}, expected {self.action_shape} "
                f"(num_envs x action size); pass one output vector per sub-environment"
            )
        if actions.dtype.kind not in "iuf":  # real numbers only: no bool, complex or object
            raise TypeError(f"action must be real numbers, got dtype {actions.dtype}")
        if not np.isfinite(actions).all():
            bad = np.argwhere(~np.isfinite(actions))[0].tolist()
            raise ValueError(
                f"action contains NaN or inf (first at index {bad}); the learner's output "
                "diverged: lower its learning rate or perturbation size, or stop the run"
            )
        return actions

    def score(self, actions: Any) -> tuple[np.ndarray, bool, dict[str, Any]]:
        if self.obs is None:
            raise RuntimeError("step() called before reset(): call env.reset() first")
        actions = self.check_action(actions)  # finite from here on
        assert self.targets is not None and self.epochs is not None
        answers = actions.astype(np.float64)  # a copy the loss may overwrite
        losses = loss_in_place_guarded(answers, self.targets, self.readout,
                                       may_overflow=actions.dtype.itemsize > 4)
        if not np.isfinite(losses).all():
            raise RewardOverflowError(_overflow_message(actions, losses))
        info: dict[str, Any] = {
            "epoch": self.epochs,
            "mse": (2.0 / self.stream.target_dim) * losses,
        }
        if self.readout == "softmax":
            info["correct"] = actions.argmax(axis=1) == self.targets.argmax(axis=1)
        if self.reveal_target:
            info["target"] = self.targets
        self.evals_done += 1
        return -losses, self.evals_done >= self.evals_per_input, info


class RewardOnlyEnv(gym.Env):
    """A supervised task as a contextual bandit: one input per trial, a scalar reward per step."""

    metadata: dict[str, Any] = {"render_modes": []}
    readout: Readout = "linear"
    batch_reduction: BatchReduction = "sum"

    def __init__(
        self,
        stream: SampleStream,
        *,
        split: str,
        evals_per_input: int,
        reveal_target: bool,
        observation_bounds: tuple[float, float] = (-np.inf, np.inf),
    ) -> None:
        self.split = check_split(split)
        self._trial = TrialLogic(stream, 1, evals_per_input, self.readout, reveal_target)
        self.evals_per_input = self._trial.evals_per_input
        self.reveal_target = self._trial.reveal_target
        low, high = observation_bounds
        self.observation_space = spaces.Box(low, high, (stream.obs_dim,), stream.obs_dtype)
        self.action_space = spaces.Box(-np.inf, np.inf, (stream.target_dim,), np.float32)
        self._trial_over = True
        self._seeded = False

    @property
    def stream(self) -> SampleStream:
        return self._trial.stream

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next trial; a seed rewinds the sample stream to its start."""
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self._trial.restart(self.np_random)
            self._seeded = True
        obs = self._trial.start()
        self._trial_over = False
        return obs[0].copy(), {"epoch": int(self._trial.epochs[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._trial.obs is None:
            raise RuntimeError("step() called before reset(): call env.reset() first")
        if self._trial_over:
            raise RuntimeError(
                "step() called after the trial ended (terminated=True): call env.reset() to "
                "start the next trial"
            )
        action = np.asarray(action)
        expected = self.action_space.shape
        if action.shape != expected:
            raise ValueError(
                f"action has shape {action.shape}, expected {expected}; pass one output vector"
            )
        rewards, terminated, info = self._trial.score(action[None, :])
        self._trial_over = terminated
        single_info = {key: value[0].item() for key, value in info.items() if key != "target"}
        if "target" in info:
            single_info["target"] = info["target"][0].copy()  # a fresh object every step
        return self._trial.obs[0].copy(), float(rewards[0]), terminated, False, single_info


class RewardOnlyVectorEnv(VectorEnv):
    """``num_envs`` trials stepped together with array operations, autoreset SAME_STEP.

    Sub-environment ``i`` of batch ``j`` holds stream element ``j * num_envs + i``. All
    sub-environments start and end their trials together, so the step that ends a trial returns
    the next batch's observations. Within a trial every step returns the same observation array
    (the input has not changed; copying 3 MB per MNIST step would cost ~5 % of an NP update):
    treat observations as read-only.

    On the step that ends a trial, ``info`` follows Gymnasium's SAME_STEP convention (as
    ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` fills it), so Gymnasium's vector wrappers
    (``RecordEpisodeStatistics``, ``NormalizeReward``, ``DictInfoToList``, ...) work unchanged:

    - ``final_obs``: the finished trial's observations, ``final_obs[i]`` for sub-env ``i``; one
      ``(num_envs, obs_dim)`` array rather than Gymnasium's object array of rows (same indexing,
      no per-row objects on the hot path); ``_final_obs``: all True (every trial ends together;
      the all-True masks are one shared read-only array).
    - ``final_info``: the finished step's info (``epoch``, ``mse``, ``correct``, ``target``),
      each key with its ``_key`` mask; ``_final_info``: all True.

    The finished step's keys also stay at the top level of ``info`` (where the experiment tools
    and ``np_envs.evaluate`` read them, whatever the step), so ``info["epoch"]`` is the epoch of
    the samples just scored, not of the next batch (``reset``'s info holds that).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    readout: Readout = "linear"
    batch_reduction: BatchReduction = "sum"

    def __init__(
        self,
        stream: SampleStream,
        *,
        num_envs: int,
        split: str,
        evals_per_input: int,
        reveal_target: bool,
        observation_bounds: tuple[float, float] = (-np.inf, np.inf),
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be a positive int, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.split = check_split(split)
        self.num_envs = int(num_envs)
        self._trial = TrialLogic(
            stream, self.num_envs, evals_per_input, self.readout, reveal_target
        )
        self.evals_per_input = self._trial.evals_per_input
        self.reveal_target = self._trial.reveal_target
        low, high = observation_bounds
        self.single_observation_space = spaces.Box(
            low, high, (stream.obs_dim,), stream.obs_dtype
        )
        self.single_action_space = spaces.Box(-np.inf, np.inf, (stream.target_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._seeded = False
        self._every_env = np.ones(self.num_envs, dtype=bool)
        self._every_env.flags.writeable = False

    @property
    def stream(self) -> SampleStream:
        return self._trial.stream

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next batch of trials; a seed rewinds the sample stream to its start."""
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None  # one stream for the whole batch
        if seed is not None or not self._seeded:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
            self._trial.restart(self._np_random)
            self._seeded = True
        return self._trial.start(), {"epoch": self._trial.epochs}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rewards, trial_over, info = self._trial.score(actions)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if not trial_over:  # same input, same array: a trial's observation is read-only
            return self._trial.obs, rewards, truncated, truncated.copy(), info
        every = self._every_env  # the "_key" masks: all True, one shared read-only array
        final_info: dict[str, Any] = {}
        for key, value in info.items():
            final_info[key] = value
            final_info[f"_{key}"] = every
        info["final_obs"] = self._trial.obs
        info["_final_obs"] = every
        info["final_info"] = final_info
        info["_final_info"] = every
        return self._trial.start(), rewards, ~truncated, truncated, info
