"""The supervised oracle (``sgd``): back-propagation of the same per-sample loss, targets known.

It is the reference every reward-only rule is compared with, and the only agent that reads
``info["target"]``: the environment must be made with ``reveal_target=True``, otherwise it
refuses. The loss is ``np_envs.losses.loss_torch`` -- the very formula the environment rewards
with -- summed over the batch, times the learning rate divided by B for ``reduction="mean"``
(the same convention as the reward-only rules). It needs one evaluation per input; with
``evals_per_input > 1`` the extra evaluations repeat the clean answer and teach nothing, so make
its env with ``evals_per_input=1`` to compare budgets in inputs seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.base import RewardAgent, _env_attr
from np_envs.losses import loss_torch


class SGDOracle(RewardAgent):
    """``sgd``: plain SGD on the environment's loss with the revealed targets."""

    name = "sgd"
    uses_targets = True

    def __init__(self, env: Any = None, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.readout = _env_attr(self.env, "readout", "linear") if self.env is not None else None
        self.network.requires_grad_(True)  # the one rule that uses autograd
        self._check_learnable(allow_no_env=True)
        self._targets: torch.Tensor | None = None
        self._out: torch.Tensor | None = None

    def _check_learnable(self, allow_no_env: bool = False) -> None:
        if self.env is None:
            if allow_no_env:
                return
            raise ValueError("SGDOracle has no env: pass one made with reveal_target=True")
        if not _env_attr(self.env, "reveal_target", False):
            raise ValueError(self._missing_targets_message())
        self.readout = _env_attr(self.env, "readout", "linear")

    def num_perturbations(self, evals_per_input: int) -> int:
        return 0

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            self._out = self.network(obs)
        return self._out.detach()

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        raise RuntimeError("the SGD oracle answers each input once")

    def observe_targets(self, targets: np.ndarray) -> None:
        self._targets = self.to_tensor(targets)

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        assert self._out is not None and self._targets is not None
        lr = self.effective_learning_rate(self._out.shape[0])
        with torch.enable_grad():
            loss = loss_torch(self._out, self._targets, self.readout).sum()
            params = list(self.network.parameters())
            grads = torch.autograd.grad(loss, params)
        torch._foreach_add_(params, grads, alpha=-lr)
        self._out = None
