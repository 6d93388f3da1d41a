"""sb3-contrib's ARS with its step count fixed for vectorised envs.

ARS scores candidates with ``evaluate_policy``, whose callback runs once per sub-env per vector
step; ARS adds ``num_envs`` there, so with ``B`` sub-envs ``num_timesteps`` (and the training
budget) ran ``B`` times faster than the env (sb3-contrib 2.9.2: 2,048 counted for 256 real steps at
``B = 8``). Here each call counts its one sub-env step, and callbacks run once per vector step.
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import ARS
from stable_baselines3.common.callbacks import BaseCallback


class CountingARS(ARS):
    """ARS whose ``num_timesteps`` counts environment steps exactly, whatever ``num_envs``."""

    def _trigger_callback(
        self,
        _locals: dict[str, Any],
        _globals: dict[str, Any],
        callback: BaseCallback,
        n_envs: int,
    ) -> None:
        self.num_timesteps += 1
        if self.num_timesteps % n_envs == 0:
            callback.on_step()
