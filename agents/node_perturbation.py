"""Node perturbation (NP), exactly as paper/NOTES.md states it, for a whole population at once.

Perturbed pass: ``sigma * xi_k`` (xi ~ N(0, I)) is added to every layer's pre-activation, the
read-out included, and propagates through the later layers. Update, summed over the batch:

    dW_k = -lr * sum_n [(l~_n - l_n) / sigma] xi_{k,n} h_{k-1,n}^T,    db_k likewise without h,

with h the CLEAN activity of the layer below and l = -reward. In expectation over xi this is the
SGD step (Eq. 5). With ``evals_per_input = k > 2`` each input gets k - 1 independent
perturbations and the update is their average, so the learning rate means the same for every k.

Every tensor has a leading member axis (see agents/population.py): member p has its own
learning rate, sigma, seed and noise generators, and the products of all members are batched
products. Why written by hand rather than with nn.Module calls: the whole step is a handful of
batched matrix products, and on a CPU the overheads around them decide the speed. Buffers are
allocated once per batch size; the perturbed pass reuses the first layer's clean pre-activation
(W_1 x is the same product); updates are in-place ``baddbmm_`` with the reward coefficient (and
each member's learning rate) folded into the noise; the noise comes from seeded generator
streams that a worker thread can fill beside the main one (agents/noise.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from agents.network import activate_
from agents.noise import NOISE_MODES, GaussianNoise
from agents.population import PopulationAgent, _as_list, _population_size
from np_envs.threads import cores_per_process

#: below this many noise numbers per update, a worker thread costs more than it saves
THREADED_NOISE_MIN_NUMBERS = 20_000


def member_sigmas(sigma: Any, kwargs: dict[str, Any]) -> list[float]:
    """``sigma`` per member (one value, or one per member), each finite and > 0."""
    size = _population_size(sigma=sigma, learning_rate=kwargs.get("learning_rate"),
                            seed=kwargs.get("seed"))
    sigmas = [float(s) for s in _as_list(sigma, size, "sigma")]
    for s in sigmas:
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"sigma must be finite and > 0, got {s}")
    return sigmas


class PerturbationRule(PopulationAgent):
    """What every perturbation rule shares: per-member ``sigma`` and seeded noise streams."""

    member_settings: ClassVar[tuple[str, ...]] = ("learning_rate", "seed", "sigma")

    def __init__(self, env: Any = None, *, sigma: Any = 1e-4, noise_streams: int = 1,
                 **kwargs: Any) -> None:
        sigmas = member_sigmas(sigma, kwargs)
        if int(noise_streams) < 1:
            raise ValueError(f"noise_streams must be >= 1, got {noise_streams}")
        super().__init__(env, sigma=sigmas, **kwargs)  # sigma counts in the population's size
        self.sigmas = sigmas
        self._record(sigma=sigmas[0] if self.num_members == 1 else sigmas)
        self.add_noise_streams(int(noise_streams))

    @property
    def sigma(self) -> float:
        return self.sigmas[0] if self.num_members == 1 else self._only("sigma")

    def sigma_tensor(self, ndim: int = 3) -> torch.Tensor:
        """Members' sigmas shaped (P, 1, ..., 1) to broadcast over a (P, ...) tensor."""
        shape = (self.num_members,) + (1,) * (ndim - 1)
        return torch.tensor(self.sigmas, dtype=self.dtype, device=self.device).view(shape)

    def reward_coefficients(self, clean_rewards: np.ndarray,
                            perturbed_rewards: np.ndarray) -> torch.Tensor:
        """``-lr_p / n_pert * (l~ - l) / sigma_p`` as (n_pert, P, B, 1); l = -reward.

        A frozen member's coefficient is 0.
        """
        n_pert, _, batch = perturbed_rewards.shape
        mean = self.reduction == "mean"
        # per member (-lr_p [/ B]) / n_pert / sigma_p, in Python floats: the same IEEE operations
        # as on arrays, without a dozen tiny numpy calls per update
        factor = [(-(lr / batch if mean else lr) / n_pert if on else -0.0 / n_pert) / sigma
                  for lr, on, sigma in zip(self.learning_rates, self.active, self.sigmas,
                                           strict=True)]
        c = (np.asarray(clean_rewards)[None] - perturbed_rewards) * np.asarray(factor)[:, None]
        return torch.from_numpy(c).to(device=self.device, dtype=self.dtype).unsqueeze_(-1)


class NodePerturbation(PerturbationRule):
    """``np``: node perturbation of every layer.

    Extra keywords: ``sigma`` (perturbation size, one or one per member); ``noise_streams``
    (independent generator streams per member, each filling a fixed block of rows; part of the
    seeding, so results depend on it but not on the machine); ``noise_mode`` ("serial" |
    "parallel" | "prefetch", how the streams are scheduled on threads -- speed only, same
    numbers; None picks one, see agents/noise.py).
    """

    name = "np"

    def __init__(
        self,
        env: Any = None,
        *,
        sigma: Any = 1e-4,
        noise_streams: int = 2,
        noise_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if noise_mode is not None and noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; choose one of {NOISE_MODES}")
        self._noise: GaussianNoise | None = None
        super().__init__(env, sigma=sigma, noise_streams=noise_streams, **kwargs)
        self.noise_mode = noise_mode
        self._record(noise_streams=self.noise_streams, noise_mode=noise_mode)

    # which layers the perturbed pass perturbs (REINFORCE overrides)
    def perturbed_layers(self) -> list[int]:
        return list(range(self.n_layers))

    def pop_setup(self, batch_size: int) -> None:
        """Buffers for one batch size: clean activities, perturbed activities, noise."""
        sizes = self.sizes[1:]
        members = self.num_members
        kw = {"dtype": self.dtype, "device": self.device}
        n_pert = self.num_perturbations(self.evals_per_input or 2)
        last = self.n_layers - 1
        hidden_linear = self.activation == "linear"
        # _z1: the first layer's clean pre-activation; _h[k]: clean output of layer k
        self._z1 = torch.empty(members, batch_size, sizes[0], **kw)
        self._h = [
            self._z1 if (k == 0 and (hidden_linear or last == 0)) else
            torch.empty(members, batch_size, sizes[k], **kw)
            for k in range(self.n_layers)
        ]
        self._ht = [torch.empty(members, batch_size, s, **kw) for s in sizes]
        self._noisy = self.perturbed_layers()
        # members that share a seed share their noise stream (same seed, same draws): it is
        # drawn once per group and spread to the members (side by side on a seeds x rates grid)
        groups = self.layout.num_groups
        shared = groups < members
        spread = self.layout.per_group if shared else 1  # None: members not in group order
        grid = spread is not None and spread > 1
        draw_rows = groups if shared else members
        shapes = [(draw_rows, batch_size, sizes[k]) for _ in range(n_pert) for k in self._noisy]
        numbers = sum(int(np.prod(s)) for s in shapes)
        self.teardown()
        self._noise = GaussianNoise(
            self._drawing_generators(draw_rows), shapes, self.dtype, self.device,
            mode=self.noise_mode or self._auto_noise_mode(batch_size, numbers),
            members=draw_rows,
        )
        self._n_pert = n_pert
        self._xi: list[list[torch.Tensor]] = []
        self._sigma = self.sigma_tensor()
        # irregular member order: each member gets a copy of its group's noise after a draw
        self._gathered = None if spread is not None else [
            torch.empty(members, batch_size, sizes[k], **kw)
            for _ in range(n_pert) for k in self._noisy]
        # on a grid, sum_j c_j xi_j is written per member here (the noise rows are shared)
        self._e = [torch.empty(members, batch_size, sizes[k], **kw)
                   for k in self._noisy] if grid else None
        self._sigma_grid = self._sigma.view(groups, spread, 1, 1) if grid else None

    def _drawing_generators(self, draw_rows: int) -> list[torch.Generator]:
        """The generators that draw: every member's, or its group's first member's."""
        if draw_rows == self.num_members:
            return self.noise_generators
        s = self.noise_streams
        first = [self.layout.member_groups.index(g) for g in range(draw_rows)]
        return [self.noise_generators[p * s + stream] for p in first for stream in range(s)]

    def _auto_noise_mode(self, batch_size: int, numbers: int) -> str:
        """Threads only pay with a core to spare (see agents/noise.py) and enough noise per
        update; ahead when torch runs single-threaded, in parallel streams otherwise."""
        if (self.device.type != "cpu" or numbers < THREADED_NOISE_MIN_NUMBERS
                or cores_per_process() < 2):
            return "serial"
        return "prefetch" if self.learn_threads(batch_size) == 1 else "parallel"

    def teardown(self) -> None:
        super().teardown()
        if self._noise is not None:
            self._noise.close()
            if self._noise.members < self.num_members:  # group-mates catch up with the drawer
                for gen, state in zip(self.noise_generators, self.noise_generator_states(),
                                      strict=True):
                    gen.set_state(state)

    def _regroup(self, layout: Any) -> None:
        self.teardown()  # under the old groups: group-mates catch up, a worker stops
        self._noise = None  # drawn per group: rebuilt for the new groups
        super()._regroup(layout)

    def noise_generator_states(self) -> list[torch.Tensor]:
        """One state per member and stream (group-mates' are their group's drawing stream)."""
        if self._noise is None:
            return super().noise_generator_states()
        states = self._noise.consumer_states()
        if self._noise.members == self.num_members:
            return states
        s = self.noise_streams
        return [states[g * s + stream] for g in self.layout.member_groups for stream in range(s)]

    def pop_clean(self, x: torch.Tensor) -> torch.Tensor:
        last = self.n_layers - 1
        self._x = x
        z1 = self.first_layer(x, out=self._z1)
        if last == 0:
            if self._noise is not None:
                self._noise.begin()
            return z1
        h = self._h[0]
        if h is not z1:  # keep z1 for the perturbed pass, write f(z1) beside it
            if self.activation == "relu":
                torch.clamp(z1, min=0.0, out=h)
            else:
                torch.tanh(z1, out=h)
        for k in range(1, last + 1):
            h = self.layer(k, h, out=self._h[k])
            if k < last:
                activate_(h, self.activation)
        if self._noise is not None:
            self._noise.begin()  # let a worker draw its noise while the env scores this answer
        return h

    def _draw_noise(self) -> None:
        """Fresh xi for every perturbed layer: (P, B, L), or (G, B, L) shared on a grid."""
        assert self._noise is not None
        flat = self._noise.draw()
        if self._gathered is not None:
            index = self._groups_index()
            flat = [torch.index_select(xi, 0, index, out=buf)
                    for xi, buf in zip(flat, self._gathered, strict=True)]
        n = len(self._noisy)
        self._xi = [flat[j * n:(j + 1) * n] for j in range(self._n_pert)]

    def perturb(self, base: torch.Tensor, xi: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = base + sigma_p * xi`` for every member p (``out`` may be ``base``); ``xi``
        is each member's (P, ...) or, on a seeds x rates grid, each group's (G, ...)."""
        if self._sigma_grid is None:
            return torch.addcmul(base, xi, self._sigma, out=out)
        g, r = self._sigma_grid.shape[:2]
        torch.addcmul(base.view(g, r, *base.shape[1:]), xi.unsqueeze(1), self._sigma_grid,
                      out=out.view(g, r, *out.shape[1:]))
        return out

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if index == 0:
            self._draw_noise()
        xi = self._xi[index]
        ht = self.perturb(self._z1, xi[0], out=self._ht[0])  # W_1 x reused
        for k in range(1, self.n_layers):
            activate_(ht, self.activation)
            ht = self.perturb(self.layer(k, ht, out=self._ht[k]), xi[k], out=self._ht[k])
        return ht

    def _weighted_noise(self, k: int, c: torch.Tensor) -> torch.Tensor:
        """sum_j c_j * xi_{k,j} per member (c already holds -lr / n_pert): in the consumed
        noise buffer, or on a grid (shared noise rows) in a per-member buffer."""
        pos = self._noisy.index(k)
        if self._e is None:
            e = self._xi[0][pos].mul_(c[0])
            for j in range(1, self._n_pert):
                e.addcmul_(self._xi[j][pos], c[j])
            return e
        e = self._e[pos]
        g, r = self._sigma_grid.shape[:2]
        grid = e.view(g, r, *e.shape[1:])
        torch.mul(self._xi[0][pos].unsqueeze(1), c[0].view(g, r, *c.shape[2:]), out=grid)
        for j in range(1, self._n_pert):
            grid.addcmul_(self._xi[j][pos].unsqueeze(1), c[j].view(g, r, *c.shape[2:]))
        return e

    def apply_update(self, k: int, e: torch.Tensor) -> None:
        """W_k += e^T h_{k-1} and b_k += sum_n e_n for every member (h_{-1} = the inputs)."""
        if k == 0:
            self.first_layer_update(e, self._x)
        else:
            self.layer_update(k, e, self._h[k - 1])

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        c = self.reward_coefficients(clean_rewards, perturbed_rewards)
        for k in range(self.n_layers):
            self.apply_update(k, self._weighted_noise(k, c))
        self.after_update()

    def after_update(self) -> None:
        """Called after every weight change (weight normalisation hooks in here)."""

    def pop_stochastic(self, x: torch.Tensor) -> torch.Tensor:
        """The perturbed networks; noise from each member's prediction generator."""
        noisy = set(self.perturbed_layers())
        members = self.num_members
        sigma = self.sigma_tensor()
        h = self.first_layer(x)
        for k in range(self.n_layers):
            if k > 0:
                h = self.layer(k, h)
            if k in noisy:
                noise = torch.stack([
                    torch.randn(h.shape[1:], generator=self.predict_generators[p],
                                dtype=h.dtype, device=h.device)
                    for p in range(members)
                ])
                h = h + sigma * noise
            if k < self.n_layers - 1:
                h = activate_(h, self.activation)
        return h
