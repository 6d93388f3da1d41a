"""NP and backprop-REINFORCE are unbiased: averaged over many perturbations they give the SGD step.

Eq. 5 of the paper: <dW_np>_xi = -lr * dL/dW with L the batch-SUMMED loss. We drive the real
agents' hooks (clean_forward, perturbed_forward, update) on a fixed batch from the real linear
teacher env, with rewards from ``np_envs.losses.loss_numpy``, and compare every layer's average
update (weights and biases) with autograd's gradient of the same loss.

Vectorised perturbations: the fixed batch of N samples is repeated P times and updated once with
reduction="sum", so the weight change is P times the average over P independent perturbations
of the batch-summed NP update. Sizes are chosen so the check has a wide margin (P = 20,000:
cosines > 0.99, norm ratios within ~2 %), and a sign flip, a factor 2 or a mean-instead-of-sum
update fails it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import np_envs  # noqa: F401  (registers the environments)
from agents import make_agent
from np_envs.losses import loss_numpy

N_SAMPLES = 4
N_PERTURBATIONS = 20_000
LX, LY = 12, 4
HIDDEN = (16, 8)  # layer 1 wider than its input: both update paths of NP run
SIGMA = 1e-6
LR = 0.5
COS_MIN, RATIO_TOL = 0.98, 0.10


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch (inputs, targets) from the linear teacher env (targets revealed here)."""
    env = gym.make_vec(
        "NPLinearTeacher-v0", num_envs=N_SAMPLES, Lx=LX, Ly=LY, dtype="float64",
        reveal_target=True, evals_per_input=1,
    )
    obs, _ = env.reset(seed=3)
    _, _, _, _, info = env.step(np.zeros((N_SAMPLES, LY)))
    env.close()
    return obs.astype(np.float64), np.asarray(info["target"], dtype=np.float64)


def make(name: str, evals_per_input: int = 2, **kwargs) -> object:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=N_SAMPLES, Lx=LX, Ly=LY,
                       dtype="float64", evals_per_input=evals_per_input)
    kwargs.setdefault("reduction", "sum")
    return make_agent(name, env, hidden_sizes=HIDDEN, activation="relu", dtype="float64",
                      sigma=SIGMA, learning_rate=LR, seed=7, **kwargs)


def sgd_step(agent, inputs: np.ndarray, targets: np.ndarray) -> list[torch.Tensor]:
    """-lr * gradient of the batch-summed loss, per parameter, by autograd on a copy."""
    net = [p.detach().clone().requires_grad_(True) for p in agent.network.parameters()]
    h = torch.from_numpy(inputs)
    n_layers = len(net) // 2
    for k in range(n_layers):
        h = h @ net[2 * k].T + net[2 * k + 1]
        if k < n_layers - 1:
            h = torch.relu(h)
    loss = 0.5 * ((h - torch.from_numpy(targets)) ** 2).sum()
    return [-LR * g for g in torch.autograd.grad(loss, net)]


def average_update(agent, inputs: np.ndarray, targets: np.ndarray) -> list[torch.Tensor]:
    """One real update on the batch repeated P times; returns the change per parameter."""
    before = [p.detach().clone() for p in agent.network.parameters()]
    x = agent.to_tensor(np.tile(inputs, (N_PERTURBATIONS, 1)))
    t = np.tile(targets, (N_PERTURBATIONS, 1))
    with torch.no_grad():
        clean = agent.clean_forward(x).numpy().copy()
        n_pert = agent.num_perturbations(agent.evals_per_input)
        perturbed = np.stack(
            [-loss_numpy(agent.perturbed_forward(x, j).numpy(), t, "linear") for j in range(n_pert)]
        )
        agent.update(-loss_numpy(clean, t, "linear"), perturbed)
    return [p.detach() - b for p, b in zip(agent.network.parameters(), before, strict=True)]


def agreement(update: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    u, r = update.flatten(), reference.flatten()
    cos = float(u @ r / (u.norm() * r.norm()))
    return cos, float(u.norm() / r.norm())


def agrees(update: torch.Tensor, reference: torch.Tensor) -> bool:
    cos, ratio = agreement(update, reference)
    return cos >= COS_MIN and abs(ratio - 1.0) <= RATIO_TOL


def check_unbiased(agent, batch, scale: float = 1.0) -> None:
    inputs, targets = batch
    expected = [scale * g for g in sgd_step(agent, inputs, targets)]
    updates = average_update(agent, inputs, targets)
    if agent.reduction == "sum":
        updates = [u / N_PERTURBATIONS for u in updates]
    names = [n for n, _ in agent.network.named_parameters()]
    for name, u, g in zip(names, updates, expected, strict=True):
        cos, ratio = agreement(u, g)
        assert agrees(u, g), f"{name}: cosine {cos:.4f}, norm ratio {ratio:.4f}"
        # the same thresholds reject the classic mistakes
        assert not agrees(-u, g), f"{name}: a sign flip would pass"
        assert not agrees(2.0 * u, g), f"{name}: a factor-2 error would pass"
        assert not agrees(u / N_SAMPLES, g), f"{name}: mean instead of sum would pass"


def test_np_unbiased(batch) -> None:
    check_unbiased(make("np"), batch)


def test_np_unbiased_several_perturbations_per_input(batch) -> None:
    """evals_per_input=3: two perturbations per input, averaged -- same expected step."""
    check_unbiased(make("np", evals_per_input=3), batch)


def test_np_mean_reduction_divides_by_batch(batch) -> None:
    """reduction="mean": the step of the batch-MEAN loss (rows here = N * P)."""
    check_unbiased(make("np", reduction="mean"), batch, scale=1.0 / N_SAMPLES)


@pytest.mark.parametrize("hidden_noise", [False, True])
def test_reinforce_unbiased(batch, hidden_noise: bool) -> None:
    check_unbiased(make("reinforce", hidden_noise=hidden_noise), batch)


def test_threshold_needs_the_right_gradient(batch) -> None:
    """A rule that ignores the reward difference (pure noise) fails the check."""
    agent = make("np")
    inputs, targets = batch
    expected = sgd_step(agent, inputs, targets)
    noise = [torch.randn_like(g) * g.norm() / g.numel() ** 0.5 for g in expected]
    assert not any(agrees(n, g) for n, g in zip(noise, expected, strict=True))
