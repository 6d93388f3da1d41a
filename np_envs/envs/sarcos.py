"""``NPSarcos-v0``: SARCOS robot-arm inverse dynamics, 21 joint readings -> 7 torques.

Data are used raw, as in the paper. ``split_scheme`` picks the train/test split: ``"gpml"`` (the
paper's published files, the default), ``"leak-free"`` (contiguous blocks of the training file, no
test row in training) or ``"test-file"`` (contiguous blocks of the 4,449-row test file alone, for
machines without the training file). ``arrays=(inputs, torques)`` brings your own training rows
(the benchmarks use it for a synthetic set of the training file's shape) and
``test_arrays=(inputs, torques)`` the rows ``split="test"`` (and so ``np_envs.evaluate``) scores;
without ``test_arrays`` the test split refuses rather than score the training rows. For data of
another width use ``np_envs.make_dataset_env``.

The paper divides SARCOS's learning rate by the batch size, so ``batch_reduction = "mean"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from np_envs.envs.core import RewardOnlyEnv, RewardOnlyVectorEnv, check_split
from np_envs.envs.stream import DatasetStream, Shuffle

OBS_DIM, ACTION_DIM = 21, 7


def _check_arrays(arrays: tuple[np.ndarray, np.ndarray], name: str) -> tuple[np.ndarray, ...]:
    inputs, targets = (np.asarray(a) for a in arrays)
    if inputs.ndim != 2 or targets.ndim != 2 or inputs.shape[1] != OBS_DIM:
        raise ValueError(
            f"{name} must be (inputs (N, {OBS_DIM}), torques (N, {ACTION_DIM})), got shapes "
            f"{inputs.shape} and {targets.shape}"
        )
    if targets.shape[1] != ACTION_DIM:
        raise ValueError(f"torques must have {ACTION_DIM} columns, got {targets.shape[1]}")
    return inputs, targets


def sarcos_stream(
    split: str,
    split_scheme: str,
    shuffle: Shuffle | None,
    arrays: tuple[np.ndarray, np.ndarray] | None,
    test_arrays: tuple[np.ndarray, np.ndarray] | None = None,
) -> DatasetStream:
    check_split(split)
    if test_arrays is not None and arrays is None:
        raise ValueError("test_arrays= needs arrays= (the training rows) too")
    if arrays is not None:
        if split == "test" and test_arrays is None:
            raise ValueError(
                "split='test' with arrays= but no test_arrays=: arrays= holds training rows, "
                "and scoring them as the test split would hide overfitting. Pass "
                "test_arrays=(inputs, torques) as well, or use np_envs.make_dataset_env(train, "
                "test) for data of any width"
            )
        inputs, targets = _check_arrays(
            test_arrays if split == "test" else arrays,  # type: ignore[arg-type]
            "test_arrays" if split == "test" else "arrays",
        )
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
        test_arrays: tuple[np.ndarray, np.ndarray] | None = None,
        render_mode: Any = None,
    ) -> None:
        self.split_scheme = split_scheme
        super().__init__(
            sarcos_stream(split, split_scheme, shuffle, arrays, test_arrays),
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
        test_arrays: tuple[np.ndarray, np.ndarray] | None = None,
        render_mode: Any = None,
    ) -> None:
        self.split_scheme = split_scheme
        super().__init__(
            sarcos_stream(split, split_scheme, shuffle, arrays, test_arrays),
            num_envs=num_envs,
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
        )
