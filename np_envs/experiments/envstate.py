"""The training env as an experiment sees it: where its data stream stands, and what it scored.

Why: resuming a run must continue the data order exactly where the checkpoint left it, or an
interrupted run would not equal an uninterrupted one. :class:`ExperimentEnv` wraps the natively
batched env and

- remembers the sample stream's state *before the inputs of the current trial were drawn*, so a
  checkpoint can rewind the stream to the start of the pending trial: the reloaded agent's first
  ``reset()`` then draws exactly the batch the uninterrupted agent was about to train on;
- owns seeding: the first seeded ``reset`` (the agent's, with the run seed) starts the stream
  from ``seed``; later seeded resets (a freshly loaded agent reseeds, as SB3 agents do) keep the
  stream where it stands;
- tallies the loss of each trial's first answer (the clean one for NP-style rules) as the train
  loss, and keeps the last trial's inputs and (with ``reveal_target=True``) targets for the
  cosine diagnostic.

The stream state comes from the streams' own ``state_dict()`` / ``load_state_dict()``.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorWrapper

#: attributes agents read from np-envs' vector envs; forwarded by the wrapper
FORWARDED = ("evals_per_input", "readout", "batch_reduction", "reveal_target", "split",
             "teacher", "stream", "sigma_t")


def stream_state(stream: Any) -> dict[str, Any]:
    """A deep snapshot of a sample stream's position and random state (small: no data)."""
    return stream.state_dict()


def set_stream_state(stream: Any, state: dict[str, Any]) -> None:
    """Put a stream back where :func:`stream_state` found it."""
    stream.load_state_dict(state)


class ExperimentEnv(VectorWrapper):
    """Batched np-envs env with resumable data order and train-loss bookkeeping (see module)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self._trial_start: dict[str, Any] | None = None
        self._steps_in_trial = 0
        self._seeded = False
        self._obs: np.ndarray | None = None
        self.last_inputs: np.ndarray | None = None
        self.last_targets: np.ndarray | None = None
        self.reset_stats()

    def __getattr__(self, name: str) -> Any:
        if name in FORWARDED:
            return getattr(self.env.unwrapped, name)
        raise AttributeError(name)

    @property
    def stream(self) -> Any:
        return self.env.unwrapped.stream

    # ------------------------------------------------------------------ bookkeeping
    def reset_stats(self) -> None:
        """Start a new tally of train loss (called at the start of each evaluation chunk)."""
        self.loss_sum = 0.0
        self.mse_sum = 0.0
        self.trials = 0

    def train_stats(self) -> dict[str, float | None]:
        if not self.trials:
            return {"train_loss": None, "train_mse": None}
        return {"train_loss": self.loss_sum / self.trials, "train_mse": self.mse_sum / self.trials}

    # ------------------------------------------------------------------ stream position
    def start_stream(self, seed: int) -> None:
        """Seed the data order: every agent given ``seed`` sees the same batches."""
        self.env.reset(seed=int(seed))  # the env's own seeding: as any agent resetting it
        rng, _ = gym.utils.seeding.np_random(int(seed))
        self.stream.restart(rng)
        self._trial_start = stream_state(self.stream)
        self._seeded = True
        self._steps_in_trial = 0
        self._obs = None

    def checkpoint_state(self) -> dict[str, Any]:
        """The stream as it stood before the pending trial's inputs were drawn."""
        if self._trial_start is None:
            raise RuntimeError("the stream has not been started: call start_stream(seed)")
        return copy.deepcopy(self._trial_start)

    def restore_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: the next ``reset()`` draws the checkpoint's pending trial."""
        if not self._seeded:
            self.env.reset(seed=0)  # set the env up; the stream is replaced below
            self._seeded = True
        set_stream_state(self.stream, state)
        self._trial_start = copy.deepcopy(state)
        self._steps_in_trial = 0
        self._obs = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if not self._seeded:
            self.start_stream(0 if seed is None else int(seed[0] if isinstance(seed, list)
                                                          else seed))
        # a seeded reset after the start (a reloaded agent) keeps the stream where it stands
        self._trial_start = stream_state(self.stream)
        obs, info = self.env.reset(options=options)
        self._steps_in_trial = 0
        self._obs = obs
        return obs, info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        k = int(self.env.unwrapped.evals_per_input)
        first = self._steps_in_trial == 0
        ends = self._steps_in_trial + 1 >= k
        before = stream_state(self.stream) if ends else None
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if first:
            self.last_inputs = self._obs
            self.last_targets = info.get("target")
            self.loss_sum += float(-np.mean(rewards))
            self.mse_sum += float(np.mean(info["mse"]))
            self.trials += 1
        if ends:
            self._trial_start = before
            self._steps_in_trial = 0
        else:
            self._steps_in_trial += 1
        self._obs = obs
        return obs, rewards, terminated, truncated, info
