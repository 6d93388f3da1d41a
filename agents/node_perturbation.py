"""Node perturbation (NP), exactly as paper/NOTES.md states it.

Perturbed pass: ``sigma * xi_k`` (xi ~ N(0, I)) is added to every layer's pre-activation, the
read-out included, and propagates through the later layers. Update, summed over the batch:

    dW_k = -lr * sum_n [(l~_n - l_n) / sigma] xi_{k,n} h_{k-1,n}^T,    db_k likewise without h,

with h the CLEAN activity of the layer below and l = -reward. In expectation over xi this is the
SGD step (Eq. 5). With ``evals_per_input = k > 2`` each input gets k - 1 independent
perturbations and the update is their average, so the learning rate means the same for every k.

Why it is written by hand rather than with nn.Module calls: the whole step is a handful of
matrix products, and on a CPU the overheads around them decide the speed. Every buffer is
allocated once per batch size; the perturbed pass reuses the first layer's clean pre-activation
(W_1 x is the same product); updates are in-place ``addmm_`` with the reward coefficient applied
to the narrower factor; the noise comes from seeded generator streams that a worker thread fills
beside the main one (see agents/noise.py) -- on a CPU, drawing Gaussians costs as much as a
small network's products.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from agents.base import RewardAgent
from agents.network import activate_
from agents.noise import NOISE_MODES, GaussianNoise

#: below this many noise numbers per update, a worker thread costs more than it saves
THREADED_NOISE_MIN_NUMBERS = 20_000


class NodePerturbation(RewardAgent):
    """``np``: node perturbation of every layer.

    Extra keywords: ``sigma`` (perturbation size); ``noise_streams`` (independent generator
    streams the noise is drawn from, each filling a fixed block of rows; part of the seeding, so
    results depend on it but not on the machine); ``noise_mode`` ("serial" | "parallel" |
    "prefetch", how the streams are scheduled on threads -- speed only, same numbers; None picks
    one, see agents/noise.py).
    """

    name = "np"

    def __init__(
        self,
        env: Any = None,
        *,
        sigma: float = 1e-4,
        noise_streams: int = 2,
        noise_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, **kwargs)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if int(noise_streams) < 1:
            raise ValueError(f"noise_streams must be >= 1, got {noise_streams}")
        if noise_mode is not None and noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; choose one of {NOISE_MODES}")
        self.sigma = float(sigma)
        self.noise_streams = int(noise_streams)
        self.noise_mode = noise_mode
        self._record(sigma=self.sigma, noise_streams=self.noise_streams, noise_mode=noise_mode)
        self.noise_generators += [
            torch.Generator(device=self.device) for _ in range(self.noise_streams - 1)
        ]
        self.set_random_seed()
        self._noise: GaussianNoise | None = None

    # which layers the perturbed pass perturbs (REINFORCE overrides)
    def perturbed_layers(self) -> list[int]:
        return list(range(self.network.n_layers))

    def setup(self, batch_size: int) -> None:
        """Buffers for one batch size: clean activities, perturbed activities, noise."""
        net = self.network
        sizes = net.sizes[1:]
        kw = {"dtype": self.dtype, "device": self.device}
        n_pert = self.num_perturbations(self.evals_per_input or 2)
        last = net.n_layers - 1
        hidden_linear = net.activation == "linear"
        # _z1: the first layer's clean pre-activation; _h[k]: clean output of layer k
        self._z1 = torch.empty(batch_size, sizes[0], **kw)
        self._h = [
            self._z1 if (k == 0 and (hidden_linear or last == 0)) else
            torch.empty(batch_size, sizes[k], **kw)
            for k in range(net.n_layers)
        ]
        self._ht = [torch.empty(batch_size, s, **kw) for s in sizes]
        self._ones = torch.ones(batch_size, **kw)
        # scratch for c * h_{k-1} where that is narrower than the noise of layer k
        self._scratch = [
            torch.empty(batch_size, net.sizes[k], **kw) if net.sizes[k] < sizes[k] else None
            for k in range(net.n_layers)
        ]
        self._noisy = self.perturbed_layers()
        shapes = [(batch_size, sizes[k]) for _ in range(n_pert) for k in self._noisy]
        numbers = sum(int(np.prod(s)) for s in shapes)
        self.teardown()
        self._noise = GaussianNoise(
            self.noise_generators, shapes, self.dtype, self.device,
            mode=self.noise_mode or self._auto_noise_mode(batch_size, numbers),
        )
        self._n_pert = n_pert
        self._xi: list[list[torch.Tensor]] = []
        self._batch_setup = batch_size
        self.refresh_parameters()

    def start_learning(self) -> None:
        self.refresh_parameters()

    def refresh_parameters(self) -> None:
        """Cache the parameter tensors (updated in place) to skip nn.Module look-ups per step."""
        self._W = [layer.weight for layer in self.network.layers]
        self._b = [layer.bias for layer in self.network.layers]
        self._act = self.network.activation

    def _auto_noise_mode(self, batch_size: int, numbers: int) -> str:
        """Threads only pay on a multi-core CPU with enough noise per update; ahead when torch
        runs single-threaded (a core is idle anyway), in parallel streams otherwise."""
        if (self.device.type != "cpu" or numbers < THREADED_NOISE_MIN_NUMBERS
                or (os.cpu_count() or 1) < 2):
            return "serial"
        return "prefetch" if self.learn_threads(batch_size) == 1 else "parallel"

    def teardown(self) -> None:
        if self._noise is not None:
            self._noise.close()

    def noise_generator_states(self) -> list[torch.Tensor]:
        if self._noise is not None:
            return self._noise.consumer_states()
        return super().noise_generator_states()

    def _ensure(self, batch_size: int) -> None:
        if getattr(self, "_batch_setup", None) != batch_size:
            self.setup(batch_size)
            self._batch_size = batch_size

    def _linear(self, k: int, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        b = self._b[k]
        if b is None:
            return torch.mm(h, self._W[k].T, out=out)
        return torch.addmm(b, h, self._W[k].T, out=out)

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        self._ensure(obs.shape[0])
        last = len(self._W) - 1
        self._x = obs
        z1 = self._linear(0, obs, self._z1)
        if last == 0:
            if self._noise is not None:
                self._noise.begin()
            return z1
        h = self._h[0]
        if h is not z1:  # keep z1 for the perturbed pass, write f(z1) beside it
            if self._act == "relu":
                torch.clamp(z1, min=0.0, out=h)
            else:
                torch.tanh(z1, out=h)
        for k in range(1, last + 1):
            h = self._linear(k, h, self._h[k])
            if k < last:
                activate_(h, self._act)
        if self._noise is not None:
            self._noise.begin()  # let a worker draw its noise while the env scores this answer
        return h

    def _draw_noise(self) -> None:
        assert self._noise is not None
        flat = self._noise.draw()
        n = len(self._noisy)
        self._xi = [flat[j * n:(j + 1) * n] for j in range(self._n_pert)]

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        if index == 0:
            self._draw_noise()
        xi = self._xi[index]
        sigma, act = self.sigma, self._act
        ht = torch.add(self._z1, xi[0], alpha=sigma, out=self._ht[0])  # W_1 x reused
        for k in range(1, len(self._W)):
            activate_(ht, act)
            ht = self._linear(k, ht, self._ht[k]).add_(xi[k], alpha=sigma)
        return ht

    def reward_coefficients(
        self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray
    ) -> torch.Tensor:
        """(l~ - l) / sigma per perturbation and sample, as (n_pert, B, 1); l = -reward."""
        c = (np.asarray(clean_rewards) - np.asarray(perturbed_rewards)) / self.sigma
        return torch.from_numpy(c).to(device=self.device, dtype=self.dtype).unsqueeze_(-1)

    def _weighted_noise(self, k: int, c: torch.Tensor) -> torch.Tensor:
        """sum_j c_j * xi_{k,j}, in the (consumed) noise buffer of the first draw.

        Callers divide the learning rate by n_pert, so the perturbations are averaged.
        """
        pos = self._noisy.index(k)
        e = self._xi[0][pos].mul_(c[0])
        for j in range(1, self._n_pert):
            e.addcmul_(self._xi[j][pos], c[j])
        return e

    def _apply(self, k: int, e: torch.Tensor, alpha: float) -> None:
        """W_k += alpha * e^T h_{k-1}; b_k += alpha * sum_n e_n."""
        h_prev = self._x if k == 0 else self._h[k - 1]
        self._W[k].addmm_(e.T, h_prev, alpha=alpha)
        b = self._b[k]
        if b is not None:
            b.addmv_(e.T, self._ones, alpha=alpha)

    def _apply_one(self, k: int, xi: torch.Tensor, c: torch.Tensor, alpha: float) -> None:
        """One perturbation: W_k += alpha * (c * xi)^T h_{k-1} = alpha * xi^T (c * h_{k-1}).

        The coefficient multiplies whichever factor is narrower (for SARCOS's first layer the 21
        inputs rather than the 800 noise columns); the bias gets xi^T c directly.
        """
        h_prev = self._x if k == 0 else self._h[k - 1]
        b = self._b[k]
        if h_prev.shape[1] < xi.shape[1]:
            scaled = torch.mul(h_prev, c, out=self._scratch[k])
            self._W[k].addmm_(xi.T, scaled, alpha=alpha)
            if b is not None:
                b.addmv_(xi.T, c.squeeze(-1), alpha=alpha)
        else:
            self._apply(k, xi.mul_(c), alpha)

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        c = self.reward_coefficients(clean_rewards, perturbed_rewards)
        alpha = -self.effective_learning_rate(c.shape[1]) / self._n_pert
        for k in range(len(self._W)):
            if self._n_pert == 1:
                self._apply_one(k, self._xi[0][k], c[0], alpha)
            else:
                self._apply(k, self._weighted_noise(k, c), alpha)
        self.after_update()

    def after_update(self) -> None:
        """Called after every weight change (weight normalisation hooks in here)."""

    def stochastic_forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The perturbed network; noise from the prediction generator, not the training one."""
        net = self.network
        noisy = set(self.perturbed_layers())
        h = obs
        for k, layer in enumerate(net.layers):
            h = layer(h)
            if k in noisy:
                noise = torch.randn(h.shape, generator=self.predict_generator, dtype=h.dtype,
                                    device=h.device)
                h = h + self.sigma * noise
            if k < net.n_layers - 1:
                h = activate_(h, net.activation)
        return h

