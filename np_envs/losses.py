"""The one definition of the per-sample loss, shared by the environments and the SGD oracle.

``l = 1/2 * sum_i (out_i - target_i)^2`` where ``out`` is the action itself (``readout="linear"``)
or its softmax (``readout="softmax"``, MNIST). Environments compute it in float64 with numpy;
the supervised oracle differentiates the torch version. Keeping both here makes it impossible
for the reward and the oracle's loss to drift apart.

The environments import this module, and environments never load torch (a fresh process makes
its first env in a fraction of a second): :func:`loss_torch` imports torch when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Readout = Literal["linear", "softmax"]
READOUTS: tuple[str, ...] = ("linear", "softmax")


def softmax_numpy(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def readout_numpy(actions: np.ndarray, readout: Readout) -> np.ndarray:
    """What the loss compares with the target: the action, or its softmax."""
    if readout == "softmax":
        return softmax_numpy(actions)
    return actions


def loss_numpy(actions: np.ndarray, targets: np.ndarray, readout: Readout) -> np.ndarray:
    """Per-sample loss in float64, summed over the output axis (the last)."""
    out = readout_numpy(np.asarray(actions, dtype=np.float64), readout)
    diff = out - targets
    return 0.5 * np.einsum("...i,...i->...", diff, diff)


def loss_in_place(out: np.ndarray, targets: np.ndarray, readout: Readout) -> np.ndarray:
    """:func:`loss_numpy` on a float64 array the caller owns, overwritten on the way.

    The same operations in the same order (so the same numbers), without the temporaries: a
    population scores P x B answers per step.
    """
    if readout == "softmax":
        out -= out.max(axis=-1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
    out -= targets
    return 0.5 * np.einsum("...i,...i->...", out, out)


def loss_in_place_guarded(out: np.ndarray, targets: np.ndarray, readout: Readout,
                          may_overflow: bool) -> np.ndarray:
    """:func:`loss_in_place`, with numpy's overflow / invalid warnings silenced only when the
    answers can overflow in float64 or hold NaN/inf (the caller then checks the losses):
    float32 answers that are finite cannot, and the common case skips ``np.errstate``."""
    if not may_overflow:
        return loss_in_place(out, targets, readout)
    with np.errstate(over="ignore", invalid="ignore"):
        return loss_in_place(out, targets, readout)


def loss_torch(actions: torch.Tensor, targets: torch.Tensor, readout: Readout) -> torch.Tensor:
    """Per-sample loss, differentiable; same formula as :func:`loss_numpy`."""
    import torch  # only the oracle needs torch; the environments must not load it

    out = torch.softmax(actions, dim=-1) if readout == "softmax" else actions
    return 0.5 * ((out - targets) ** 2).sum(dim=-1)
