"""``NPDataset-v0``: your own train and test arrays as the same reward-only task.

Description:
    Any supervised data set becomes a contextual bandit exactly like the built-in tasks: a trial
    shows one input row, the learner answers with an output vector, the environment answers with
    ``-loss`` and nothing else. ``np_envs.make_dataset_env(train, test, ...)`` makes it (single or
    natively batched); ``gym.make("NPDataset-v0", train=..., test=...)`` is the same thing.

Data (``train``, ``test``):
    Each is a pair ``(x, y)`` of arrays, a mapping with keys ``"x"`` and ``"y"``, or the path of a
    ``.npz`` file holding arrays named ``x`` and ``y`` (``np.savez("train.npz", x=..., y=...)``).
    Paths are what the command line passes: ``np-envs compare --env NPDataset-v0 --env-kwargs
    '{"train": "train.npz", "test": "test.npz"}' ...``. ``x`` has one row per sample (``(N,)`` is
    one feature; trailing axes are flattened, so ``(N, 28, 28)`` images give 784 inputs); ``y``
    holds the targets of the same rows. Both files are read and checked whichever split is made,
    so a bad test file stops a run before it trains. ``test`` may be omitted to train only;
    ``split="test"`` (and so ``np_envs.evaluate``) then refuses.

Task (``task=``):
    ``"regression"``: ``y`` is ``(N,)`` or ``(N, k)`` real numbers; the action is ``k`` outputs and
    the reward ``-1/2 ||a - y||^2`` (linear read-out).
    ``"classification"``: ``y`` holds integer labels ``(N,)`` (or ``(N, 1)``) in
    ``[0, num_classes)``, or one-hot rows ``(N, num_classes)``; the action is ``num_classes``
    logits and the reward ``-1/2 ||softmax(a) - onehot||^2`` (softmax read-out, as for MNIST);
    ``info["correct"]`` says whether the arg-max logit is the label, so ``np_envs.evaluate``
    reports ``accuracy``. ``num_classes`` defaults to the largest label in train and test plus 1.

Observation Space:
    ``Box(-inf, inf, (d,), dtype)`` with ``d`` the input width, ``dtype`` float32 by default.

Action Space:
    ``Box(-inf, inf, (k,), float32)``: ``k`` targets (regression) or ``num_classes`` logits.

Splits and epochs:
    ``split="train"`` reads the training arrays in a fresh seeded permutation every epoch
    (``shuffle="once"``: one permutation reused; ``"none"``: file order); ``split="test"`` reads
    the *test* arrays in their own order. ``np_envs.evaluate(agent, env, split="test")`` rebuilds
    the env from ``env.spec`` with ``split="test"`` and so scores the test arrays.

Stable-Baselines3:
    ``env.unwrapped.action_offset`` and ``action_scale`` are the task's units for algorithms that
    need bounded actions (``action = offset + scale * a``, ``a`` in ``[-1, 1]``): for regression
    the centre of the training targets' range per output and half that range widened by 25 %
    (the rule used for SARCOS); for classification logits ``0 +- 10`` (softmax is saturated).

Arguments:
    ``batch_reduction`` (``"mean"``, the default: learning rates that do not depend on the batch
    size, as the paper did for SARCOS; or ``"sum"``), ``evals_per_input`` (2), ``reveal_target``
    (False; the SGD oracle's door to the targets), ``dtype`` of the observations.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from np_envs.envs.core import (
    BatchReduction,
    RewardOnlyEnv,
    RewardOnlyVectorEnv,
    check_split,
)
from np_envs.envs.stream import DatasetStream, Shuffle

Task = Literal["regression", "classification"]
TASKS: tuple[str, ...] = ("regression", "classification")
BATCH_REDUCTIONS: tuple[str, ...] = ("mean", "sum")
ENV_ID = "NPDataset-v0"
#: the names the arrays must have inside a ``.npz`` file
NPZ_KEYS: tuple[str, str] = ("x", "y")
#: logits of +-10 already give a one-hot softmax to 1e-8 (same as MNIST's default)
LOGIT_SCALE = 10.0
#: regression: the training targets' half-range is widened by this factor (as for SARCOS)
RANGE_MARGIN = 1.25

ArrayPair = tuple[Any, Any]
DataSource = str | os.PathLike | ArrayPair | Mapping[str, Any]


# --- reading and checking the arrays ---------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _read_npz(path: str, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``x`` and ``y`` arrays of a ``.npz`` file, read once per process (and per version)."""
    del size, mtime_ns  # cache key only: a changed file is read again
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            if not set(NPZ_KEYS) <= set(names):
                raise ValueError(
                    f"{path} holds arrays {names}; a data file needs arrays named "
                    f"{NPZ_KEYS[0]!r} (inputs) and {NPZ_KEYS[1]!r} (targets): save it with "
                    f"np.savez(path, x=inputs, y=targets)"
                )
            x, y = archive[NPZ_KEYS[0]], archive[NPZ_KEYS[1]]
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path} as a .npz file ({exc})") from exc
    for array in (x, y):
        array.flags.writeable = False  # shared between the envs of this process
    return x, y


def _raw_arrays(source: DataSource, role: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a pair, a mapping or a ``.npz`` path, not yet checked."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{role} data file {str(path)!r} does not exist (resolved against the working "
                f"folder {os.getcwd()}); give the path of a .npz file with arrays x and y"
            )
        stat = path.stat()
        return _read_npz(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if isinstance(source, Mapping):
        missing = [key for key in NPZ_KEYS if key not in source]
        if missing:
            raise ValueError(
                f"{role} data mapping lacks {missing}; give {{'x': inputs, 'y': targets}}"
            )
        return np.asarray(source["x"]), np.asarray(source["y"])
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return np.asarray(source[0]), np.asarray(source[1])
    raise TypeError(
        f"{role} data must be a pair (x, y), a mapping {{'x': ..., 'y': ...}} or the path of a "
        f".npz file with arrays x and y; got {type(source).__name__}"
    )


def _check_numbers(array: np.ndarray, what: str) -> None:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be real numbers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"{what} contains NaN or inf (first at index {bad}); clean the data")


def _inputs(x: np.ndarray, role: str) -> np.ndarray:
    _check_numbers(x, f"{role} inputs x")
    if x.ndim == 0:
        raise ValueError(f"{role} inputs x must have one row per sample, got a scalar")
    return x.reshape(len(x), -1) if x.ndim != 2 else x


def _labels(y: np.ndarray, role: str) -> np.ndarray | None:
    """Integer labels if ``y`` holds labels (1-D, or one column), else None (one-hot rows)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return None
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(
            f"{role} labels y must be whole numbers for task='classification', got values such "
            f"as {y[y != np.round(y)][0]}; for regression pass task='regression'"
        )
    if len(y) and y.min() < 0:
        raise ValueError(f"{role} labels y must be >= 0, got {y.min()}")
    return y.astype(np.int64)


def _check_one_hot(y: np.ndarray, role: str) -> None:
    ones = y == 1
    if not ((ones | (y == 0)).all() and (ones.sum(axis=1) == 1).all()):
        bad = int(np.flatnonzero(~((ones | (y == 0)).all(axis=1) & (ones.sum(axis=1) == 1)))[0])
        raise ValueError(
            f"{role} targets y of shape {y.shape} are not one-hot (row {bad} is {y[bad]}); for "
            "classification give integer labels (N,) or rows with a single 1 (for real-valued "
            "targets pass task='regression')"
        )


class DatasetArrays:
    """The checked train and test arrays of one data set, and what they imply for the task."""

    def __init__(
        self,
        train: DataSource,
        test: DataSource | None,
        task: Task,
        num_classes: int | None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
        self.task = task
        raw = {"train": _raw_arrays(train, "train")}
        if test is not None:
            raw["test"] = _raw_arrays(test, "test")
        inputs = {split: _inputs(x, split) for split, (x, _) in raw.items()}
        for split, (x, y) in raw.items():
            if len(x) == 0:
                raise ValueError(f"{split} data have no rows")
            if len(y) != len(x):
                raise ValueError(
                    f"{split} data: x has {len(x)} rows but y has {len(y)}; they must match"
                )
            _check_numbers(y, f"{split} targets y")
        widths = {split: a.shape[1] for split, a in inputs.items()}
        if len(set(widths.values())) > 1:
            raise ValueError(
                f"train inputs have {widths['train']} columns but test inputs "
                f"{widths['test']}; both splits must describe the same features"
            )
        targets = {split: y for split, (_, y) in raw.items()}
        if task == "classification":
            self.targets = self._one_hot(targets, num_classes)
        else:
            if num_classes is not None:
                raise ValueError("num_classes applies to task='classification' only")
            self.targets = self._regression(targets)
        self.inputs = inputs
        self.target_dim = self.targets["train"].shape[1]
        self.action_offset, self.action_scale = self._action_units()

    def _regression(self, targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for split, y in targets.items():
            if y.ndim > 2:
                raise ValueError(f"{split} targets y must be (N,) or (N, k), got {y.shape}")
            out[split] = y.reshape(len(y), -1).astype(np.float64, copy=False)
        if "test" in out and out["test"].shape[1] != out["train"].shape[1]:
            raise ValueError(
                f"train targets have {out['train'].shape[1]} columns but test targets "
                f"{out['test'].shape[1]}; both splits must have the same outputs"
            )
        return out

    def _one_hot(
        self, targets: dict[str, np.ndarray], num_classes: int | None
    ) -> dict[str, np.ndarray]:
        labels = {split: _labels(y, split) for split, y in targets.items()}
        kinds = {split: "labels" if lab is not None else "one-hot" for split, lab in labels.items()}
        if len(set(kinds.values())) > 1:
            raise ValueError(f"give both splits as labels or both as one-hot rows, got {kinds}")
        if labels["train"] is None:  # one-hot rows
            widths = {split: y.shape[1] for split, y in targets.items() if y.ndim == 2}
            for split, y in targets.items():
                if y.ndim != 2:
                    raise ValueError(f"{split} targets y must be (N,) labels or (N, C) one-hot")
                _check_one_hot(y, split)
            if len(set(widths.values())) > 1:
                raise ValueError(f"one-hot widths differ between splits: {widths}")
            width = widths["train"]
            if num_classes is not None and num_classes != width:
                raise ValueError(f"num_classes={num_classes} but the one-hot rows have {width}")
            return {split: y.astype(np.float64) for split, y in targets.items()}
        largest = max(int(lab.max()) for lab in labels.values() if lab is not None)
        if num_classes is None:
            num_classes = largest + 1
        elif largest >= num_classes:
            raise ValueError(
                f"a label {largest} does not fit num_classes={num_classes} (labels are 0 .. "
                f"num_classes - 1); raise num_classes or leave it out to infer it"
            )
        if num_classes < 2:
            raise ValueError(f"classification needs at least 2 classes, got {num_classes}")
        out = {}
        for split, lab in labels.items():
            assert lab is not None
            onehot = np.zeros((len(lab), num_classes), dtype=np.float64)
            onehot[np.arange(len(lab)), lab] = 1.0
            out[split] = onehot
        return out

    def _action_units(self) -> tuple[np.ndarray, np.ndarray]:
        """``action = offset + scale * a`` for ``a`` in ``[-1, 1]``: what bounded agents use."""
        if self.task == "classification":
            return np.zeros(self.target_dim), np.full(self.target_dim, LOGIT_SCALE)
        y = self.targets["train"]
        low, high = y.min(axis=0), y.max(axis=0)
        half = (high - low) / 2
        scale = np.where(half > 0, RANGE_MARGIN * half, np.maximum(np.abs(low), 1.0))
        return (low + high) / 2, scale

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and one-hot or real targets of ``split``."""
        check_split(split)
        if split not in self.inputs:
            raise ValueError(
                "split='test' needs test data: make the env with test=(x, y) or test='test.npz' "
                "(np_envs.evaluate scores the test split)"
            )
        return self.inputs[split], self.targets[split]


def dataset_stream(
    split: str,
    train: DataSource | None,
    test: DataSource | None,
    task: Task,
    num_classes: int | None,
    shuffle: Shuffle | None,
    dtype: str,
) -> tuple[DatasetStream, DatasetArrays]:
    """The sample stream of ``split``, and the checked arrays it was made from."""
    check_split(split)
    if train is None:
        raise ValueError(
            f"{ENV_ID} needs your data: pass train=(x, y) or train='train.npz' (and test=...); "
            "see np_envs.make_dataset_env"
        )
    arrays = DatasetArrays(train, test, task, num_classes)
    inputs, targets = arrays.split(split)
    order: Shuffle = shuffle or ("epoch" if split == "train" else "none")
    return DatasetStream(inputs, targets, shuffle=order, obs_dtype=np.dtype(dtype)), arrays


def _check_reduction(batch_reduction: str) -> BatchReduction:
    if batch_reduction not in BATCH_REDUCTIONS:
        raise ValueError(
            f"unknown batch_reduction {batch_reduction!r}; choose one of {BATCH_REDUCTIONS}"
        )
    return batch_reduction  # type: ignore[return-value]


class _DatasetTask:
    """What both classes set from the arrays: read-out, reduction, action units."""

    def _describe(self, arrays: DatasetArrays, task: Task, batch_reduction: str) -> None:
        self.task = task
        self.readout = "softmax" if task == "classification" else "linear"
        self.batch_reduction = _check_reduction(batch_reduction)
        self.num_classes = arrays.target_dim if task == "classification" else None
        self.action_offset = arrays.action_offset
        self.action_scale = arrays.action_scale


class DatasetEnv(_DatasetTask, RewardOnlyEnv):
    """Single data-set env: one row per trial (see the module docstring for every argument)."""

    def __init__(
        self,
        train: DataSource | None = None,
        test: DataSource | None = None,
        task: Task = "regression",
        num_classes: int | None = None,
        split: str = "train",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        batch_reduction: str = "mean",
        dtype: str = "float32",
        render_mode: Any = None,
    ) -> None:
        stream, arrays = dataset_stream(split, train, test, task, num_classes, shuffle, dtype)
        self._describe(arrays, task, batch_reduction)
        super().__init__(
            stream, split=split, evals_per_input=evals_per_input, reveal_target=reveal_target
        )


class DatasetVectorEnv(_DatasetTask, RewardOnlyVectorEnv):
    """Batched data-set env: ``num_envs`` rows of the epoch's order per trial."""

    def __init__(
        self,
        num_envs: int = 1,
        train: DataSource | None = None,
        test: DataSource | None = None,
        task: Task = "regression",
        num_classes: int | None = None,
        split: str = "train",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        batch_reduction: str = "mean",
        dtype: str = "float32",
        render_mode: Any = None,
    ) -> None:
        stream, arrays = dataset_stream(split, train, test, task, num_classes, shuffle, dtype)
        self._describe(arrays, task, batch_reduction)
        super().__init__(
            stream,
            num_envs=num_envs,
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
        )


def make_dataset_env(
    train: DataSource,
    test: DataSource | None = None,
    *,
    task: Task = "regression",
    num_envs: int | None = None,
    **kwargs: Any,
) -> gym.Env | gym.vector.VectorEnv:
    """Your arrays as a reward-only env, made through Gymnasium so that it has a ``spec``.

    Args:
        train: the training data: ``(x, y)``, ``{"x": x, "y": y}`` or a ``.npz`` path.
        test: the test data, same forms; ``np_envs.evaluate(..., split="test")`` scores it.
        task: ``"regression"`` (linear read-out) or ``"classification"`` (softmax read-out).
        num_envs: None for a single env (``gym.make``), else a natively batched one
            (``gym.make_vec``) with that many sub-environments.
        **kwargs: the other arguments of ``NPDataset-v0`` (``num_classes``, ``split``,
            ``evals_per_input``, ``reveal_target``, ``shuffle``, ``batch_reduction``, ``dtype``).

    Returns:
        ``gym.make("NPDataset-v0", ...)`` or ``gym.make_vec("NPDataset-v0", num_envs, ...)``.
    """
    from np_envs.registration import register_envs

    register_envs()
    if num_envs is None:
        return gym.make(ENV_ID, train=train, test=test, task=task, **kwargs)
    return gym.make_vec(ENV_ID, num_envs=num_envs, train=train, test=test, task=task, **kwargs)
