"""NP and backprop-REINFORCE are unbiased: averaged over many perturbations they give the SGD step.

Eq. 5 of the paper: <dW_np>_xi = -lr * dL/dW with L the batch-SUMMED loss. We drive the real
agents' population hooks (pop_clean, pop_perturbed, pop_update) on a fixed batch from the real
linear teacher env, with rewards from ``np_envs.losses.loss_numpy``, and compare every member's
every layer's average update (weights and biases) with autograd's gradient of the same loss,
times the member's learning rate. Populations of two members are checked: one data stream per
member (different seeds) and one stream shared by both (the grouped first-layer path).

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


#: the two members' learning rates as multiples of LR
RATE_FACTORS = (1.0, 0.5)


def make(name: str, evals_per_input: int = 2, seeds=(7, 8), **kwargs) -> object:
    env = gym.make_vec("NPLinearTeacher-v0", num_envs=N_SAMPLES, Lx=LX, Ly=LY,
                       dtype="float64", evals_per_input=evals_per_input)
    kwargs.setdefault("reduction", "sum")
    return make_agent(name, env, hidden_sizes=HIDDEN, activation="relu", dtype="float64",
                      sigma=SIGMA, learning_rate=[LR * f for f in RATE_FACTORS],
                      seed=list(seeds), **kwargs)


def sgd_step(network, inputs: np.ndarray, targets: np.ndarray) -> list[torch.Tensor]:
    """-lr * gradient of the batch-summed loss, per parameter, by autograd on a copy."""
    net = [p.detach().clone().requires_grad_(True) for p in network.parameters()]
    h = torch.from_numpy(inputs)
    n_layers = len(net) // 2
    for k in range(n_layers):
        h = h @ net[2 * k].T + net[2 * k + 1]
        if k < n_layers - 1:
            h = torch.relu(h)
    loss = 0.5 * ((h - torch.from_numpy(targets)) ** 2).sum()
    return [-LR * g for g in torch.autograd.grad(loss, net)]


def average_update(agent, inputs: np.ndarray, targets: np.ndarray) -> list[list[torch.Tensor]]:
    """One real population update on the batch repeated P times; the change per member and
    parameter."""
    nets = agent.networks
    before = [[p.detach().clone() for p in net.parameters()] for net in nets]
    tiled = np.tile(inputs, (N_PERTURBATIONS, 1))
    x = agent.to_tensor(np.stack([tiled] * agent.layout.num_groups))  # one batch per stream
    t = np.tile(targets, (N_PERTURBATIONS, 1))
    agent.setup(len(tiled))
    with torch.no_grad():
        clean = agent.pop_clean(x).numpy().copy()
        n_pert = agent.num_perturbations(agent.evals_per_input)
        perturbed = np.stack(
            [-loss_numpy(agent.pop_perturbed(x, j).numpy(), t, "linear") for j in range(n_pert)]
        )
        agent.pop_update(-loss_numpy(clean, t, "linear"), perturbed)
    return [[p.detach() - b for p, b in zip(net.parameters(), old, strict=True)]
            for net, old in zip(nets, before, strict=True)]


def agreement(update: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    u, r = update.flatten(), reference.flatten()
    cos = float(u @ r / (u.norm() * r.norm()))
    return cos, float(u.norm() / r.norm())


def agrees(update: torch.Tensor, reference: torch.Tensor) -> bool:
    cos, ratio = agreement(update, reference)
    return cos >= COS_MIN and abs(ratio - 1.0) <= RATIO_TOL


def check_unbiased(agent, batch, scale: float = 1.0) -> None:
    inputs, targets = batch
    expected = [[scale * f * g for g in sgd_step(net, inputs, targets)]
                for net, f in zip(agent.networks, RATE_FACTORS, strict=True)]
    updates = average_update(agent, inputs, targets)
    names = [n for n, _ in agent.networks[0].named_parameters()]
    for member, (member_updates, member_expected) in enumerate(
            zip(updates, expected, strict=True)):
        if agent.reduction == "sum":
            member_updates = [u / N_PERTURBATIONS for u in member_updates]
        for name, u, g in zip(names, member_updates, member_expected, strict=True):
            cos, ratio = agreement(u, g)
            where = f"member {member} {name}"
            assert agrees(u, g), f"{where}: cosine {cos:.4f}, norm ratio {ratio:.4f}"
            # the same thresholds reject the classic mistakes
            assert not agrees(-u, g), f"{where}: a sign flip would pass"
            assert not agrees(2.0 * u, g), f"{where}: a factor-2 error would pass"
            assert not agrees(u / N_SAMPLES, g), f"{where}: mean instead of sum would pass"


@pytest.mark.parametrize("seeds", [(7, 8), (7, 7)], ids=["own-streams", "shared-stream"])
def test_np_unbiased(batch, seeds) -> None:
    check_unbiased(make("np", seeds=seeds), batch)


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
    expected = sgd_step(agent.networks[0], inputs, targets)
    noise = [torch.randn_like(g) * g.norm() / g.numel() ** 0.5 for g in expected]
    assert not any(agrees(n, g) for n, g in zip(noise, expected, strict=True))
