"""Weight perturbation as a plug-in learning rule: the template for your own rule.

Node perturbation (``np``) jitters the neurons; weight perturbation jitters the weights. Here all
weights and biases get one shared Gaussian perturbation ``sigma * Xi`` per trial, the network
answers every input of the batch with the clean and with the perturbed weights, and the update is

    dW = -lr * [(L~ - L) / sigma] * Xi,        L = sum_n l_n (the batch-summed loss = -reward)

which is, like NP, an unbiased estimate of the SGD step. A rule only ever sees observations and
scalar rewards; the base class runs the trials, SB3 callbacks, saving, seeding and logging.

This is the single-agent form of a rule (the classic hooks): ``make_population`` runs its members
one after another. The built-in ``wp`` (agents/weight_perturbation.py) is the same rule written
over the member axis, so a whole grid trains as one program; the README's "Your own rule" shows
the two side by side. Member for member, the two give the same weights (tests/test_population.py).

Run:  python examples/weight_perturbation.py      (about 10 s on a laptop CPU)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.func import functional_call

import np_envs
from agents import RewardAgent, make_agent, register_agent


# ------------------------------------------------------------------ the rule (about 50 lines)
class WeightPerturbationPlugin(RewardAgent):
    """``wp-plugin``: one Gaussian perturbation of all weights per trial, shared by the batch."""

    name = "wp-plugin"

    def __init__(self, env: Any = None, *, sigma: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.sigma = float(sigma)
        self._record(sigma=self.sigma)  # saved with the agent, so load() rebuilds it

    def num_perturbations(self, evals_per_input: int) -> int:
        super().num_perturbations(evals_per_input)  # refuses evals_per_input < 2
        return 1  # one perturbed answer per trial; extra evaluations repeat the clean one

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(obs)

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        params = dict(self.network.named_parameters())
        self._xi = {
            name: torch.randn(p.shape, generator=self.noise_generator, dtype=p.dtype,
                              device=p.device)
            for name, p in params.items()
        }
        perturbed = {name: p + self.sigma * self._xi[name] for name, p in params.items()}
        return functional_call(self.network, perturbed, (obs,))

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        # loss = -reward, so L~ - L = sum(clean rewards) - sum(perturbed rewards)
        loss_change = float(clean_rewards.sum() - perturbed_rewards[0].sum())
        step = -self.effective_learning_rate(len(clean_rewards)) * loss_change / self.sigma
        for name, p in self.network.named_parameters():
            p.add_(self._xi[name], alpha=step)


register_agent("wp-plugin", WeightPerturbationPlugin, overwrite=True)
# A package would advertise it instead in pyproject.toml:
#   [project.entry-points."np_envs.agents"]
#   wp-plugin = "my_package.rules:WeightPerturbationPlugin"
# and make_agent("my_package.rules:WeightPerturbationPlugin", env) works as well.


# ------------------------------------------------------------------ train and score it
def main() -> None:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=100, Lx=20, Ly=5)
    agent = make_agent("wp-plugin", env, hidden_sizes=(20,), activation="linear", bias=False,
                       learning_rate=1e-3, sigma=1e-3, reduction="mean", seed=0)
    before = np_envs.evaluate(agent, env, split="test")
    print(f"before: test mse {before['mse']:.4f}  (mean reward {before['mean_reward']:.4f})")
    for _ in range(5):
        agent.learn(total_timesteps=400_000, reset_num_timesteps=False)
        score = np_envs.evaluate(agent, env, split="test")
        print(f"after {agent.num_timesteps // (2 * env.num_envs):>6} trials of "
              f"{env.num_envs} inputs: test mse {score['mse']:.4f}")
    print(f"test error reduced {before['mse'] / score['mse']:.1f}x by weight perturbation")


if __name__ == "__main__":
    main()
