"""``NPMNIST-v0``: MNIST digits, 784 pixels in [0, 1] -> 10 logits.

The reward is ``-1/2 ||softmax(a) - onehot||^2``: the learner answers with logits and the
environment applies the softmax read-out, as in the paper. ``info["correct"]`` says whether the
arg-max logit is the label. The paper does not divide MNIST's learning rate by the batch size,
so ``batch_reduction = "sum"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from np_envs.envs.core import RewardOnlyEnv, RewardOnlyVectorEnv, check_split
from np_envs.envs.stream import DatasetStream, Shuffle

NUM_CLASSES = 10


def _mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixel bytes (N, 784) and one-hot targets; observations are the bytes / 255."""
    from np_envs.data import load_mnist_pixels  # the data layer loads only when data are needed

    pixels, labels = load_mnist_pixels(split)
    onehot = np.zeros((len(labels), NUM_CLASSES), dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    onehot.flags.writeable = False
    return pixels, onehot


def mnist_stream(split: str, shuffle: Shuffle | None) -> DatasetStream:
    check_split(split)
    pixels, onehot = _mnist_arrays(split)
    order: Shuffle = shuffle or ("epoch" if split == "train" else "none")
    return DatasetStream(pixels, onehot, shuffle=order, input_divisor=255.0)


class MNISTEnv(RewardOnlyEnv):
    """Single MNIST env: one image per trial."""

    readout = "softmax"
    batch_reduction = "sum"

    def __init__(
        self,
        split: str = "train",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        render_mode: Any = None,
    ) -> None:
        super().__init__(
            mnist_stream(split, shuffle),
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
            observation_bounds=(0.0, 1.0),
        )


class MNISTVectorEnv(RewardOnlyVectorEnv):
    """Batched MNIST env: ``num_envs`` images of the epoch's order per trial."""

    readout = "softmax"
    batch_reduction = "sum"

    def __init__(
        self,
        num_envs: int = 1,
        split: str = "train",
        evals_per_input: int = 2,
        reveal_target: bool = False,
        shuffle: Shuffle | None = None,
        render_mode: Any = None,
    ) -> None:
        super().__init__(
            mnist_stream(split, shuffle),
            num_envs=num_envs,
            split=split,
            evals_per_input=evals_per_input,
            reveal_target=reveal_target,
            observation_bounds=(0.0, 1.0),
        )
