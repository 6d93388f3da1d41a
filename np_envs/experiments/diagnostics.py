"""Measurements of a network from outside, and SB3-style callbacks that take them while learning.

Why: the paper's explanations rest on a few quantities of the weights, not on the test error
alone: how well a rule's update aligns with the true gradient layer by layer (Fig. 4A; Eq. 6
predicts the hidden layer's cosine falling as 1/sqrt(width)), how the weight norms grow (Fig.
4D), and how spread out the hidden representation is (participation ratio). These functions only
need ``agent.network`` (its ``nn.Linear`` layers in order), so they work for any rule built on a
plain MLP; the callbacks plug into ``agent.learn(callback=...)`` or into ``np-envs compare
--diagnostics cosine,norms,pr``.

- Cosine: the agent's actual update of each layer's weights on a batch, against minus the SGD
  gradient of the summed per-sample loss on the same batch at the weights before the update.
  The batch and its targets come from :class:`~np_envs.experiments.envstate.ExperimentEnv`
  (made with ``reveal_target=True``: the targets reach the experimenter, never the rule).
- Participation ratio of a hidden layer's activity over the test inputs: with lambda the
  eigenvalues of its covariance, PR = (sum lambda)^2 / sum lambda^2 (between 1 and the width).
  At most :data:`PR_MAX_SAMPLES` test inputs are used (the first ones, a fixed set).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from np_envs.experiments.spec import DIAGNOSTICS  # noqa: F401  (re-exported)

PR_MAX_SAMPLES = 5000


# ---------------------------------------------------------------------------- measurements
def linear_layers(network: nn.Module) -> list[nn.Linear]:
    """The network's ``nn.Linear`` layers in the order they were registered (input first)."""
    return [m for m in network.modules() if isinstance(m, nn.Linear)]


def squared_weight_norms(network: nn.Module) -> list[float]:
    """||W_k||_F^2 of every layer (biases excluded); NaN/inf pass through as they are."""
    with torch.no_grad():
        return [float(layer.weight.detach().double().pow(2).sum()) for layer in
                linear_layers(network)]


def weights_finite(network: nn.Module) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in network.parameters())


def is_linear_chain(network: nn.Module) -> bool:
    """True for an MLP with linear activations and no biases: its map is one matrix."""
    layers = linear_layers(network)
    return (
        bool(layers)
        and getattr(network, "activation", None) == "linear"
        and all(layer.bias is None for layer in layers)
    )


def teacher_error(network: nn.Module, teacher: np.ndarray) -> float:
    """eps = ||W_K ... W_1 - A||_F^2 / (Lx Ly) of a linear chain against the teacher A."""
    with torch.no_grad():
        layers = linear_layers(network)
        product = layers[0].weight.detach().double()
        for layer in layers[1:]:
            product = layer.weight.detach().double() @ product
        diff = product - torch.as_tensor(teacher, dtype=torch.float64)
        ly, lx = diff.shape
        return float(diff.pow(2).sum()) / (lx * ly)


def participation_ratio(features: np.ndarray | torch.Tensor) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of ``features`` (samples x units)."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a (samples >= 2, units) matrix, got shape {tuple(x.shape)}")
    x = x - x.mean(dim=0, keepdim=True)
    # the nonzero eigenvalues of X^T X and X X^T agree: use the smaller Gram matrix
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    lam = torch.linalg.eigvalsh(gram).clamp(min=0.0)
    total = float(lam.sum())
    if not math.isfinite(total) or total <= 0.0:
        return float("nan")
    return total**2 / float((lam**2).sum())


def hidden_representations(network: nn.Module, inputs: np.ndarray) -> list[np.ndarray]:
    """The activity entering every layer after the first (the hidden layers' outputs)."""
    layers = linear_layers(network)[1:]
    captured: list[torch.Tensor] = [torch.empty(0)] * len(layers)
    hooks = []
    for k, layer in enumerate(layers):

        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], k: int = k) -> None:
            captured[k] = args[0].detach()

        hooks.append(layer.register_forward_pre_hook(hook))
    try:
        first = linear_layers(network)[0]
        x = torch.as_tensor(inputs).to(dtype=first.weight.dtype, device=first.weight.device)
        with torch.no_grad():
            network(x)
    finally:
        for h in hooks:
            h.remove()
    return [c.cpu().numpy() for c in captured]


def participation_ratios(network: nn.Module, inputs: np.ndarray) -> list[float]:
    """PR of every hidden layer over (at most PR_MAX_SAMPLES of) ``inputs``."""
    reps = hidden_representations(network, np.asarray(inputs)[:PR_MAX_SAMPLES])
    return [participation_ratio(r) for r in reps]


def readout_output(logits: torch.Tensor, readout: str) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) if readout == "softmax" else logits


def sgd_gradients(
    network: nn.Module, inputs: np.ndarray, targets: np.ndarray, readout: str = "linear"
) -> list[torch.Tensor]:
    """d/dW_k of sum_n 1/2 ||readout(f(x_n)) - y_n||^2, one tensor per layer (weights only)."""
    layers = linear_layers(network)
    first = layers[0].weight
    x = torch.as_tensor(np.asarray(inputs)).to(dtype=first.dtype, device=first.device)
    y = torch.as_tensor(np.asarray(targets)).to(dtype=first.dtype, device=first.device)
    flags = [p.requires_grad for p in network.parameters()]
    try:
        for p in network.parameters():
            p.requires_grad_(True)
            p.grad = None
        with torch.enable_grad():
            out = readout_output(network(x), readout)
            loss = 0.5 * (out - y).pow(2).sum()
            grads = torch.autograd.grad(loss, [layer.weight for layer in layers])
    finally:
        for p, flag in zip(network.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return [g.detach() for g in grads]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0 or not (math.isfinite(na) and math.isfinite(nb)):
        return float("nan")
    return float(a @ b) / (na * nb)


def update_cosines(
    before: Sequence[torch.Tensor], after: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]
) -> list[float]:
    """Per layer: cosine between the update (after - before) and the SGD step (-gradient)."""
    return [cosine(a - b, -g) for b, a, g in zip(before, after, gradients, strict=True)]


def network_of(model: Any) -> nn.Module:
    """``model.network`` (our agents), else an SB3 algorithm's ``policy``."""
    net = getattr(model, "network", None)
    if net is None:
        net = getattr(model, "policy", None)
    if net is None:
        raise ValueError(f"{type(model).__name__} exposes neither .network nor .policy")
    return net


def _find_experiment_env(model: Any) -> Any:
    env = model.get_env() if hasattr(model, "get_env") else getattr(model, "env", None)
    while env is not None:
        if hasattr(env, "last_inputs") and hasattr(env, "last_targets"):
            return env
        env = getattr(env, "env", None)
    return None


def _snapshot(network: nn.Module) -> list[torch.Tensor]:
    """Copies of every layer's weight, then every layer's bias (those that exist)."""
    layers = linear_layers(network)
    params = [layer.weight for layer in layers] + [
        layer.bias for layer in layers if layer.bias is not None
    ]
    return [p.detach().clone() for p in params]


def _restore(network: nn.Module, saved: Sequence[torch.Tensor]) -> None:
    layers = linear_layers(network)
    params = [layer.weight for layer in layers] + [
        layer.bias for layer in layers if layer.bias is not None
    ]
    with torch.no_grad():
        for p, v in zip(params, saved, strict=True):
            p.copy_(v)


# ---------------------------------------------------------------------------- callbacks
class _UpdateCallback(BaseCallback):
    """Base: calls ``_on_update`` once per completed update of the model.

    Our agents call ``on_step`` ``evals_per_input`` times after each update; SB3's algorithms
    update between rollouts. An update is recognised by the model's update counter
    (``_n_updates``) having changed at an ``on_step``, a rollout start or the end of training
    (for models without a counter, every ``on_step`` counts).
    """

    def __init__(self, every: int = 1, verbose: int = 0) -> None:
        super().__init__(verbose)
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = int(every)
        self._seen_updates: int | None = None
        self.history: list[dict[str, Any]] = []

    def _n_updates(self) -> int:
        return int(getattr(self.model, "_n_updates", self.n_calls))

    def _on_training_start(self) -> None:
        self._seen_updates = self._n_updates()
        self._before_update()

    def _check(self) -> None:
        n = self._n_updates()
        if n != self._seen_updates:
            self._seen_updates = n
            self._on_update(n)
            self._before_update()

    def _on_step(self) -> bool:
        self._check()
        return True

    # SB3's on-policy algorithms update between rollouts and after the last one
    def _on_rollout_start(self) -> None:
        self._check()

    def _on_training_end(self) -> None:
        self._check()

    def _before_update(self) -> None:
        """Called when the next update is about to happen (weights are between updates)."""

    def _on_update(self, n_updates: int) -> None:
        raise NotImplementedError

    def take(self) -> list[dict[str, Any]]:
        """Return and forget what was recorded since the last call."""
        out, self.history = self.history, []
        return out


class WeightNormCallback(_UpdateCallback):
    """Records ||W_k||^2 of every layer after every ``every``-th update."""

    def _on_update(self, n_updates: int) -> None:
        if n_updates % self.every == 0:
            norms = squared_weight_norms(network_of(self.model))
            self.history.append({"timesteps": self.num_timesteps, "updates": n_updates,
                                 "w2": norms})


class SGDCosineCallback(_UpdateCallback):
    """Per-layer cosine between the model's update and the SGD step on the same batch.

    Measures every ``every``-th update. Needs the model's env to be an
    :class:`~np_envs.experiments.envstate.ExperimentEnv` around an env made with
    ``reveal_target=True``, and a model whose ``network`` maps inputs to the read-out's input
    (our MLP agents; not SB3 policies).
    """

    def __init__(self, every: int = 1, readout: str | None = None, verbose: int = 0) -> None:
        super().__init__(every, verbose)
        self.readout = readout
        self._before: list[torch.Tensor] | None = None  # weights, then biases
        self._env: Any = None

    def _init_callback(self) -> None:
        self._env = _find_experiment_env(self.model)
        if self._env is None:
            raise ValueError(
                "SGDCosineCallback needs the agent's env wrapped in "
                "np_envs.experiments.ExperimentEnv (made with reveal_target=True) to see the "
                "batch of each update and its targets"
            )
        if self.readout is None:
            self.readout = getattr(self._env.unwrapped, "readout", "linear")

    def _before_update(self) -> None:
        if (self._n_updates() + 1) % self.every == 0:
            self._before = _snapshot(network_of(self.model))
        else:
            self._before = None

    def _on_update(self, n_updates: int) -> None:
        if self._before is None:
            return
        inputs, targets = self._env.last_inputs, self._env.last_targets
        if inputs is None or targets is None:
            raise ValueError(
                "no targets for the cosine diagnostic: make the env with reveal_target=True"
            )
        network = network_of(self.model)
        after = _snapshot(network)
        # the gradient at the parameters BEFORE the update, on the batch the update used
        _restore(network, self._before)
        try:
            grads = sgd_gradients(network, inputs, targets, str(self.readout))
        finally:
            _restore(network, after)
        n = len(grads)
        cos = update_cosines(self._before[:n], after[:n], grads)
        self.history.append({"timesteps": self.num_timesteps, "updates": n_updates, "cos": cos})
        self._before = None


class ParticipationRatioCallback(BaseCallback):
    """PR of every hidden layer over fixed inputs (e.g. the test set), every ``every`` steps
    and at the end of each ``learn`` call."""

    def __init__(self, inputs: np.ndarray, every: int | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.inputs = np.asarray(inputs)[:PR_MAX_SAMPLES]
        self.every = every
        self.history: list[dict[str, Any]] = []

    def _measure(self) -> None:
        prs = participation_ratios(network_of(self.model), self.inputs)
        self.history.append({"timesteps": self.num_timesteps, "pr": prs})

    def _on_step(self) -> bool:
        if self.every and self.n_calls % self.every == 0:
            self._measure()
        return True

    def _on_training_end(self) -> None:
        self._measure()


def mean_per_layer(records: Sequence[dict[str, Any]], key: str) -> list[float]:
    """Average a per-layer list over records (NaNs ignored); [] when there are none."""
    values = [r[key] for r in records if r.get(key) is not None]
    if not values:
        return []
    arr = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        return [float(v) for v in np.nanmean(arr, axis=0)]
