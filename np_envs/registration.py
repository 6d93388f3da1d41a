"""Registers the environments with Gymnasium, each with its natively batched vector entry point.

Entry points are strings, so registering imports nothing heavy: data are read only when an
environment is made. ``gym.make("np_envs:NPSarcos-v0")`` imports ``np_envs`` and lands here.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: dict[str, str] = {
    "NPLinearTeacher-v0": "linear_teacher:LinearTeacher",
    "NPSarcos-v0": "sarcos:Sarcos",
    "NPMNIST-v0": "mnist:MNIST",
    "NPDataset-v0": "dataset:Dataset",
}


def register_envs() -> None:
    """Register every np-envs id once (safe to call again)."""
    for env_id, target in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        module, prefix = target.split(":")
        gym.register(
            id=env_id,
            entry_point=f"np_envs.envs.{module}:{prefix}Env",
            vector_entry_point=f"np_envs.envs.{module}:{prefix}VectorEnv",
            disable_env_checker=False,
        )
