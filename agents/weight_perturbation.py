"""Weight perturbation (``wp``): jitter every weight, learn from the change of the batch's loss.

All weights and biases of a member get one shared Gaussian perturbation ``sigma * Xi`` per
trial; the member answers every input of the batch with its clean and with its perturbed
weights, and the update is

    dW = -lr * [(L~ - L) / sigma] * Xi,        L = sum_n l_n (the batch-summed loss = -reward)

which is, like NP, an unbiased estimate of the SGD step, but with a variance that grows with the
number of weights rather than of neurons (the paper's reason to prefer NP). It is also the
worked example of a rule written over the member axis (README, "Your own rule"): the noise has
the weights' shapes with a leading member axis, each member draws its own from its generator,
and the per-member scalars (learning rate, sigma) broadcast over that axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.node_perturbation import PerturbationRule


class WeightPerturbation(PerturbationRule):
    """``wp``: one Gaussian perturbation of all weights per trial, shared by the batch."""

    name = "wp"

    def __init__(self, env: Any = None, *, sigma: Any = 1e-3, **kwargs: Any) -> None:
        super().__init__(env, sigma=sigma, noise_streams=1, **kwargs)

    def num_perturbations(self, evals_per_input: int) -> int:
        super().num_perturbations(evals_per_input)  # refuses evals_per_input < 2
        return 1  # one perturbed answer per trial; extra evaluations repeat the clean one

    def pop_clean(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        params = self._all_params()  # W_1, b_1, W_2, ... each (P, ...)
        self._xi = [torch.empty_like(t) for t in params]
        for p, gen in enumerate(self.noise_generators):  # member p draws from its own stream
            for xi in self._xi:
                xi[p].normal_(generator=gen)
        perturbed = [t + xi * self.sigma_tensor(t.dim()) for t, xi in zip(params, self._xi,
                                                                           strict=True)]
        has_bias = self.biases[0] is not None
        weights = perturbed[0::2] if has_bias else perturbed
        biases = perturbed[1::2] if has_bias else [None] * len(weights)
        return self.forward(x, weights=weights, biases=biases)

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        # loss = -reward, so L~ - L = sum(clean rewards) - sum(perturbed rewards), per member
        batch = clean_rewards.shape[1]
        loss_change = clean_rewards.sum(axis=1) - perturbed_rewards[0].sum(axis=1)
        step = -self.effective_learning_rates(batch) * loss_change / np.asarray(self.sigmas)
        step_t = torch.from_numpy(step).to(dtype=self.dtype, device=self.device)
        for param, xi in zip(self._all_params(), self._xi, strict=True):
            param.addcmul_(xi, step_t.view((-1,) + (1,) * (xi.dim() - 1)))
