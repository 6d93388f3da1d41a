"""``NPSarcos-v0``: SARCOS robot-arm inverse dynamics, 21 joint readings -> 7 torques.

Data are used raw, as in the paper. ``split_scheme`` picks the train/test split: ``"gpml"`` (the
paper's published files, the default), ``"leak-free"`` (contiguous blocks of the training file, no
test row in training) or ``"test-file"`` (contiguous blocks of the 4,449-row test file alone, for
machines without the training file). ``arrays=(inputs, torques)`` brings your own data (the
benchmarks use it for a synthetic set of the training file's shape).

The paper divides SARCOS's learning rate by the batch size, so ``batch_reduction = "mean"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from np_envs.envs.core import RewardOnlyEnv, RewardOnlyVectorEnv, check_split
from np_envs.envs.stream import DatasetStream, Shuffle

OBS_DIM, ACTION_DIM = 21, 7


def sarcos_stream(
    split: str,
    split_scheme: str,
    shuffle: Shuffle | None,
    arrays: tuple[np.ndarray, np.ndarray] | None,
) -> DatasetStream:
    check_split(split)
    if arrays is not None:
        inputs, targets = (np.asarray(a) for a in arrays)
        if inputs.ndim != 2 or targets.ndim != 2 or inputs.shape[1] != OBS_DIM:
            raise ValueError(
                f"arrays must be (inputs (N, {OBS_DIM}), torques (N, {ACTION_DIM})), got shapes "
                f"{inputs.shape} and {targets.shape}"
            )
        if targets.shape[1] != ACTION_DIM:
            raise ValueError(f"torques must have {ACTION_DIM} columns, got {targets.shape[1]}")
    else:
        from np_envs.data import load_sarcos  # the data layer loads only when data are needed

        inputs, targets = load_sarcos(split, split_scheme)
    order: Shuffle = shuffle or ("epoch" if split == "train" else "none")
    return DatasetStream(inputs, targets, shuffle=order)


class SarcosEnv(RewardOnlyEnv):
    """Single SARCOS env: one arm state per trial, reward ``-1/2 ||a - torque||^2``."""

    readout = "linear"
    batch_reduction = "mean"

    def __init__(
        self,
        split: str = "train",
        split_scheme: str = "gpml",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        arrays: tuple[np.ndarray, np.ndarray] | None = None,
        render_mode: Any = None,
    ) -> None:
        self.split_scheme = split_scheme
        super().__init__(
            sarcos_stream(split, split_scheme, shuffle, arrays),
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
        )


class SarcosVectorEnv(RewardOnlyVectorEnv):
    """Batched SARCOS env: ``num_envs`` consecutive samples of the epoch's order per trial."""

    readout = "linear"
    batch_reduction = "mean"

    def __init__(
        self,
        num_envs: int = 1,
        split: str = "train",
        split_scheme: str = "gpml",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        arrays: tuple[np.ndarray, np.ndarray] | None = None,
        render_mode: Any = None,
    ) -> None:
        self.split_scheme = split_scheme
        super().__init__(
            sarcos_stream(split, split_scheme, shuffle, arrays),
            num_envs=num_envs,
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
        )
