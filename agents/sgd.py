"""The supervised oracle (``sgd``): back-propagation of the same per-sample loss, targets known.

It is the reference every reward-only rule is compared with, and the only agent that reads
``info["target"]``: the environment must be made with ``reveal_target=True``, otherwise it
refuses. The loss is ``np_envs.losses.loss_torch`` -- the very formula the environment rewards
with -- summed over the batch, times the learning rate divided by B for ``reduction="mean"``
(the same convention as the reward-only rules). It needs one evaluation per input; with
``evals_per_input > 1`` the extra evaluations repeat the clean answer and teach nothing, so make
its env with ``evals_per_input=1`` to compare budgets in inputs seen. A population sums the
members' losses: each member's gradient is its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.base import _env_attr
from agents.population import PopulationAgent
from np_envs.losses import loss_torch


class SGDOracle(PopulationAgent):
    """``sgd``: plain SGD on the environment's loss with the revealed targets."""

    name = "sgd"
    uses_targets = True

    def __init__(self, env: Any = None, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.readout = _env_attr(self.env, "readout", "linear") if self.env is not None else None
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

    def pop_clean(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass, recorded for autograd on aliases of the (P, ...) weights."""
        with torch.enable_grad():
            self._params = [t.detach().requires_grad_(True) for t in self._all_params()]
            weights = self._params[0::2] if self.biases[0] is not None else self._params
            biases = self._params[1::2] if self.biases[0] is not None else [None] * len(weights)
            self._out = self.forward(x, weights=weights, biases=biases)
        return self._out.detach()

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        raise RuntimeError("the SGD oracle answers each input once")

    def pop_observe_targets(self, targets: np.ndarray) -> None:
        t = self.to_tensor(targets)
        if t.shape[0] != self.num_members:
            t = t.index_select(0, self._groups_index())
        self._targets = t

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        assert self._out is not None and self._targets is not None
        rates = self.effective_learning_rates(self._out.shape[1])
        scale = torch.tensor(rates, dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            loss = loss_torch(self._out, self._targets, self.readout).sum()
            grads = torch.autograd.grad(loss, self._params)
        for param, grad in zip(self._params, grads, strict=True):
            shape = (-1,) + (1,) * (grad.dim() - 1)
            param.detach().sub_(grad.mul_(scale.view(shape)))
        self._out = None
        self._params = []
