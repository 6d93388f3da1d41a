"""A per-neuron (NP-style) rule with its own state, written over the population axis: the template.

Node perturbation with heavy-ball momentum: each member keeps a velocity per parameter,
``v <- beta v + dW_np`` and ``W <- W + v``, where ``dW_np`` is the NP step (agents/
node_perturbation.py). It shows the three things a population rule needs beyond the rule's
arithmetic:

- What a rule may use. Weights: ``self.weights[k]`` (P, out, in) and ``self.biases[k]``
  (P, out) or None -- the same tensors as ``self.networks[p].layers[k]`` (views), so every
  change is the live network; ``self.activation`` ("relu" | "tanh" | "linear") for the hidden
  layers (the read-out is linear); ``self.first_layer(x)`` / ``self.layer(k, h)`` for the
  batched products and ``self.first_layer_update(e, x)`` / ``self.layer_update(k, e, h)`` for
  ``W_k += e^T h``. Inputs ``x`` come once per data stream, (G, B, in).
- Rewards. ``pop_update(clean_rewards, perturbed_rewards)`` gets numpy float64 arrays (P, B) and
  (n_pert, P, B): one reward per member and sample, straight from the environment. The loss is
  minus the reward: l~ - l = clean_reward - perturbed_reward. Per-member learning rates and
  sigmas are ``self.learning_rates`` / ``self.sigmas`` (``effective_learning_rates(B)`` applies
  the task's batch convention and is 0 for a frozen member).
- State. Whatever the rule keeps between updates goes through ``extra_state()`` /
  ``load_extra_state()`` (tensors, numbers, lists): saved with the agent, so it survives
  ``save``/``load`` and the experiment runner, which reloads every agent after each chunk.

Run:  python examples/momentum_np.py      (about 10 s on a laptop CPU)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

import np_envs
from agents import NodePerturbation, make_population, register_agent


# ------------------------------------------------------------------ the rule (about 30 lines)
class MomentumNP(NodePerturbation):
    """``np-momentum``: NP steps accumulated in a per-member velocity (``momentum`` = beta)."""

    name = "np-momentum"

    def __init__(self, env: Any = None, *, momentum: float = 0.9, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self._record(momentum=self.momentum)  # saved with the agent, so load() rebuilds it
        self.velocity = [torch.zeros_like(t) for t in self._all_params()]

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        params = self._all_params()
        before = [t.clone() for t in params]
        super().pop_update(clean_rewards, perturbed_rewards)  # the plain NP step, in place
        for param, old, v in zip(params, before, self.velocity, strict=True):
            v.mul_(self.momentum).add_(param - old)  # v <- beta v + dW
            torch.add(old, v, out=param)  # W <- W_old + v

    def extra_state(self) -> dict[str, Any]:
        return {"velocity": [v.cpu() for v in self.velocity]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for v, saved in zip(self.velocity, state.get("velocity", []), strict=False):
            v.copy_(saved)


register_agent("np-momentum", MomentumNP, overwrite=True)


# ------------------------------------------------------------------ train and score it
def main() -> None:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=50, Lx=20, Ly=5)
    shared = {"hidden_sizes": (20,), "sigma": 1e-3, "reduction": "mean"}
    rates = [1e-3, 3e-3]
    for name in ("np", "np-momentum"):
        population = make_population(name, env, learning_rates=rates, seeds=[0, 1], **shared)
        population.learn(100_000)
        scores = np_envs.evaluate_members(population, env, split="test")
        for p, score in enumerate(scores):
            print(f"{name:12s} lr {population.learning_rates[p]:.0e} seed "
                  f"{population.seeds[p]}: test mse {score['mse']:.4f}")


if __name__ == "__main__":
    main()
