"""Backprop-REINFORCE (``reinforce``), the paper's Eq. 15 (its reference [40]), for a population.

Only the read-out is perturbed; ``g_K = (l~ - l) xi_K / sigma`` estimates the read-out gradient
per sample from the reward difference. The read-out is updated like NP; the hidden layers get
g_K back-propagated through the current weights (before they change), gated by the derivative of
the activation at the CLEAN pre-activation. ``hidden_noise=True`` adds sigma * xi to the hidden
layers too in the perturbed pass (as NP does) -- which only makes l~ - l noisier: the update
still uses xi_K alone. Summed over the batch; k - 1 perturbations per input are averaged. Every
tensor has a leading member axis (agents/population.py); the learning rate is folded into g.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.network import activation_derivative_
from agents.node_perturbation import NodePerturbation


class BackpropReinforce(NodePerturbation):
    """``reinforce``: output-perturbation gradient estimate, back-propagated. Extra keywords:
    ``sigma``, ``hidden_noise`` (also perturb hidden layers in the perturbed pass)."""

    name = "reinforce"

    def __init__(self, env: Any = None, *, hidden_noise: bool = False, **kwargs: Any) -> None:
        self.hidden_noise = bool(hidden_noise)
        super().__init__(env, **kwargs)
        self._record(hidden_noise=self.hidden_noise)

    def perturbed_layers(self) -> list[int]:
        n = self.n_layers
        return list(range(n)) if self.hidden_noise else [n - 1]

    def pop_setup(self, batch_size: int) -> None:
        super().pop_setup(batch_size)
        kw = {"dtype": self.dtype, "device": self.device}
        hidden = self.sizes[1:-1]
        self._delta = [torch.empty(self.num_members, batch_size, s, **kw) for s in hidden]
        self._gate = [torch.empty(self.num_members, batch_size, s, **kw) for s in hidden]

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if self.hidden_noise:
            return super().pop_perturbed(x, index)
        if index == 0:
            self._draw_noise()
        last = self.n_layers - 1
        return self.perturb(self._h[last], self._xi[index][0], out=self._ht[last])

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        c = self.reward_coefficients(clean_rewards, perturbed_rewards)
        last = self.n_layers - 1
        g = self._weighted_noise(last, c)  # -lr/n_pert times the estimate of dl/dz_K
        for k in range(last, -1, -1):
            if k > 0:  # back-propagate through the weights before they change
                delta = torch.bmm(g, self.weights[k], out=self._delta[k - 1])
                gate = activation_derivative_(self._h[k - 1], self.activation, self._gate[k - 1])
                delta.mul_(gate)
            self.apply_update(k, g)
            if k > 0:
                g = delta
        self.after_update()
