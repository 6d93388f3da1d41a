"""The engine: P learners of one rule and one architecture trained as one batched tensor program.

Why: the paper's results are grids (learning rates x seeds x widths), and a small network's
update is mostly per-step overhead (the Python loop, the environment call), not arithmetic. A
population pays that overhead once for all its members: every weight tensor carries a leading
member axis, every product is a batched product, and the environment scores all members'
answers in one call.

What a member is. Member p has its own learning rate, seed and perturbation size (``sigma``);
everything else (architecture, activation, reduction, dtype, the rule's structural options) is
shared by the population. The seed means what it means for a single agent: the initial weights,
the noise and the data order. So member p is exactly the single run with p's settings; members
that share a seed see the same inputs in the same order (common random numbers: paired
comparisons across learning rates), members with different seeds are independent replicates.
A single agent is a population of one, built and trained by the same code.

Data. Members that share a seed form a *group*; the environment hands each group's batch over
once, as ``(G, B, obs_dim)``. When the members are ordered group by group with equal counts
(the grid ``seeds x rates`` that :func:`agents.make_population` builds), the first layer of all
members of a group is one matrix product with the group's inputs (``R`` members' weights side by
side), so no input is copied per member; where the inputs are much narrower than the layer
(SARCOS) copying them per member is cheaper than moving that product's answers into member
order, and other orders always gather the inputs (``first_layer``).

Divergence. A member whose answers turn NaN/inf is frozen at once (its learning rate becomes 0
and its weights are kept as they were before the step that broke them) and reported in
``diverged``; the others go on untouched. The runner also freezes members whose test error
passes its divergence bound (:meth:`PopulationAgent.freeze`), and then goes on with the others
alone (:meth:`PopulationAgent.select`), so frozen members cost nothing after.

A rule implements five hooks over the member axis (see ``NodePerturbation`` for the full set,
``WeightPerturbation`` for a short one): ``pop_setup(B)``, ``pop_clean(x) -> (P, B, act)``,
``pop_perturbed(x, j) -> (P, B, act)``, ``pop_update(coefficients)`` and optionally
``pop_observe_targets``. The classic single-agent hooks (``clean_forward``, ...) keep working on
a population of one.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import io
import json
import pathlib
import secrets
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from agents.base import SAVE_FORMAT, RewardAgent, _SingleGroupEnv, as_vector_env
from agents.checkpoint import copy_parameters, policy_state, zip_path_for_save
from agents.network import MLP, activate, activate_, dtype_name, resolve_dtype
from agents.schedules import parse_rate, resolve_device


def derived_seed(seed: int, stream: int) -> int:
    """Independent seeds for the init, noise and prediction generators from one seed."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


#: a population of one multiplies in 2-D from this many multiply-adds per product on: there
#: torch's batched kernel measured slower (SARCOS width 3200, B=100: 281 vs 229 us for the first
#: layer), below it the extra views cost more than the 2-D kernel saves
PLAIN_PRODUCT_WORK = 2_000_000


def _plain(w: torch.Tensor, rows: int) -> bool:
    """Whether ``rows`` rows times the weights ``w`` (P, out, in) run as a plain 2-D product."""
    return w.shape[0] == 1 and rows * w.shape[1] * w.shape[2] >= PLAIN_PRODUCT_WORK


def _as_list(value: Any, count: int, name: str) -> list[Any]:
    """A per-member setting: one value for everyone, or exactly one per member."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if len(values) != count:
            raise ValueError(f"{name} has {len(values)} values for {count} members")
        return values
    return [value] * count


def _population_size(**settings: Any) -> int:
    sizes = {len(v) for v in settings.values() if isinstance(v, (list, tuple, np.ndarray))}
    if len(sizes) > 1:
        lengths = {k: len(v) for k, v in settings.items()
                   if isinstance(v, (list, tuple, np.ndarray))}
        raise ValueError(f"per-member settings have different lengths: {lengths}")
    size = sizes.pop() if sizes else 1
    if size < 1:
        raise ValueError("a population needs at least one member")
    return size


def checked_members(members: Sequence[int], size: int) -> list[int]:
    """``members`` as ints, refused when empty or out of range of a population of ``size``."""
    members = [int(p) for p in members]
    if not members:
        raise ValueError("select() needs at least one member")
    bad = [p for p in members if not 0 <= p < size]
    if bad:
        raise IndexError(f"members {bad} of a population of {size}")
    return members


def accepted_keywords(cls: type) -> list[str]:
    """Every keyword the ``__init__`` methods along ``cls``'s MRO name."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            named = param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
            if named and param.name not in ("self", "env") and param.name not in names:
                names.append(param.name)
    return names


def _refuse_unknown_keywords(cls: type, member_kwargs: dict[str, Any]) -> None:
    """A misspelt keyword must not vanish silently (``learning_rates=[...]`` would otherwise
    train P copies at the default rate): only the rule's per-member settings pass through."""
    unknown = [k for k in member_kwargs if k not in cls.member_settings]  # type: ignore[attr-defined]
    if not unknown:
        return
    accepted = accepted_keywords(cls)
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"{cls.__name__} got unexpected keyword argument(s) {', '.join(hints)}; it accepts "
        f"{', '.join(accepted)} (per-member settings take one value or a list, one per member)"
    )


@dataclass(frozen=True)
class GroupLayout:
    """Which data stream (group) each member reads, and whether the groups are a regular grid."""

    member_groups: tuple[int, ...]
    group_seeds: tuple[int, ...]

    @classmethod
    def from_seeds(cls, seeds: Sequence[int]) -> GroupLayout:
        order: dict[int, int] = {}
        groups = tuple(order.setdefault(int(s), len(order)) for s in seeds)
        return cls(groups, tuple(order))

    @property
    def num_members(self) -> int:
        return len(self.member_groups)

    @property
    def num_groups(self) -> int:
        return len(self.group_seeds)

    @functools.cached_property
    def per_group(self) -> int | None:
        """R when member p belongs to group p // R (a seeds x rates grid), else None."""
        from np_envs.envs.population import members_per_group

        return members_per_group(self.member_groups)


class PopulationAgent(RewardAgent):
    """P learners of one rule, stacked on a leading member axis (see the module docstring).

    Per-member keywords take one value (shared) or a list with one value per member:
    ``learning_rate``, ``seed`` and, for perturbation rules, ``sigma``. Everything else is
    shared: ``hidden_sizes``, ``activation``, ``bias``, ``dtype``, ``device``, ``reduction``,
    ``init_scales``, ``verbose``, ``tensorboard_log``, ``num_threads``.

    Weights: ``agent.weights[k]`` is ``(P, out, in)``, ``agent.biases[k]`` ``(P, out)``;
    ``agent.networks[p]`` is member p's ``MLP`` whose ``nn.Linear`` layers are views of those
    tensors (so anything measured on it is the live member); ``agent.network`` is the one
    network of a population of one. ``agent.member(p)`` returns member p as an ordinary agent.
    """

    #: rules written over the member axis set this; the runner groups only those into populations
    population_native: ClassVar[bool] = True
    #: per-member settings a rule accepts as lists (the runner groups specs differing only here)
    member_settings: ClassVar[tuple[str, ...]] = ("learning_rate", "seed")

    def __init__(
        self,
        env: Any = None,
        *,
        hidden_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        bias: bool = True,
        dtype: str = "float32",
        device: str = "cpu",
        learning_rate: float | Sequence[float] = 1e-4,
        reduction: str | None = None,
        init_scales: Sequence[float] | None = None,
        seed: int | Sequence[int] | None = None,
        verbose: int = 0,
        tensorboard_log: str | None = None,
        num_threads: int | None = None,
        obs_dim: int | None = None,
        act_dim: int | None = None,
        **member_kwargs: Any,
    ) -> None:
        _refuse_unknown_keywords(type(self), member_kwargs)
        self.env = None
        self._pop_env: Any = None
        self._own_pop_env = True
        size = _population_size(learning_rate=learning_rate, seed=seed, **member_kwargs)
        self.num_members = size
        seeds = [secrets.randbits(31) if s is None else int(s)
                 for s in _as_list(seed, size, "seed")]
        parsed = [parse_rate(r) for r in _as_list(learning_rate, size, "learning_rate")]
        rates = [start for start, _ in parsed]
        self._schedules = [schedule for _, schedule in parsed]
        recorded = [r if isinstance(r, str) else start for r, (start, _) in
                    zip(_as_list(learning_rate, size, "learning_rate"), parsed, strict=True)]
        self.layout = GroupLayout.from_seeds(seeds)
        obs_dim, act_dim, reduction = self._attach_env(env, obs_dim, act_dim, reduction)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.reduction = reduction
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.verbose = int(verbose)
        self.tensorboard_log = tensorboard_log
        self.num_threads = num_threads
        self.seeds = seeds
        self.learning_rates = rates
        self._hyperparameters: dict[str, Any] = {
            "hidden_sizes": list(self.hidden_sizes),
            "activation": activation,
            "bias": bool(bias),
            "dtype": dtype_name(self.dtype),
            "device": str(device),
            "learning_rate": recorded[0] if size == 1 else recorded,
            "reduction": self.reduction,
            "init_scales": None if init_scales is None else [float(s) for s in init_scales],
            "seed": seeds[0] if size == 1 else seeds,
            "verbose": self.verbose,
            "tensorboard_log": tensorboard_log,
            "num_threads": num_threads,
        }
        self._build_networks(activation, bias, init_scales)
        self.noise_generators: list[torch.Generator] = []  # member-major: p * streams + s
        self.noise_streams = 1
        self.predict_generators = [torch.Generator(device=self.device) for _ in range(size)]
        self.active = np.ones(size, dtype=bool)
        self.diverged_at: list[int | None] = [None] * size
        self._frozen: dict[int, list[torch.Tensor]] = {}
        self.num_timesteps = 0
        self._n_updates = 0
        self._total_timesteps = 0
        self._last_obs = None
        self._batch_size = None
        self._batch_setup: int | None = None
        self._logger = None
        self._custom_logger = False
        self.start_time = 0
        self._pending_env_seed = None
        self.set_random_seed()

    # ------------------------------------------------------------------ construction
    def _build_networks(self, activation: str, bias: bool,
                        init_scales: Sequence[float] | None) -> None:
        """Each member initialised exactly as a single agent with its seed, then stacked."""
        sizes = (self.obs_dim, *self.hidden_sizes, self.act_dim)
        nets = [
            MLP(sizes, activation=activation, bias=bias, dtype=self.dtype,  # type: ignore
                device=self.device, init_scales=init_scales,
                generator=torch.Generator().manual_seed(derived_seed(s, 0)))
            for s in self.seeds
        ]
        self._own_views = None
        self.weights = [torch.stack([n.layers[k].weight.detach() for n in nets])
                        for k in range(nets[0].n_layers)]
        self.biases: list[torch.Tensor | None] = [
            torch.stack([n.layers[k].bias.detach() for n in nets]) if bias else None
            for k in range(nets[0].n_layers)
        ]
        for p, net in enumerate(nets):  # members' modules become views of the stacks
            for k, layer in enumerate(net.layers):
                layer.weight = nn.Parameter(self.weights[k][p], requires_grad=False)
                if bias:
                    layer.bias = nn.Parameter(self.biases[k][p], requires_grad=False)  # type: ignore
        self.networks = nets
        self.activation = activation
        self.sizes = nets[0].sizes
        self.n_layers = nets[0].n_layers
        self.init_stds = nets[0].init_stds

    @property
    def network_sizes(self) -> tuple[int, ...]:
        return self.sizes

    @property
    def network(self) -> MLP:  # type: ignore[override]
        """The network of a population of one (a population has ``networks[p]``)."""
        if self.num_members != 1:
            raise AttributeError(
                f"this population has {self.num_members} networks: use agent.networks[p], "
                "agent.weights[k][p] or agent.member(p)"
            )
        return self.networks[0]

    @property
    def seed(self) -> int:  # type: ignore[override]
        return self.seeds[0] if self.num_members == 1 else self._only("seed")

    @seed.setter
    def seed(self, value: int) -> None:
        self.seeds = [int(value)] * self.num_members

    @property
    def learning_rate(self) -> float:  # type: ignore[override]
        if self.num_members == 1:
            return self.learning_rates[0]
        return self._only("learning_rate")

    def _only(self, name: str) -> Any:
        raise AttributeError(f"a population has one {name} per member: use {name}s[p]")

    def effective_learning_rates(self, batch_size: int) -> np.ndarray:
        """Per member: lr / B for "mean", lr for "sum"; 0 for a frozen member."""
        rates = np.asarray(self.learning_rates, dtype=np.float64)
        if self.reduction == "mean":
            rates = rates / batch_size
        return np.where(self.active, rates, 0.0)

    def effective_learning_rate(self, batch_size: int) -> float:
        if self.num_members != 1:
            self._only("learning_rate")
        return float(self.effective_learning_rates(batch_size)[0])

    # ------------------------------------------------------------------ seeding and noise
    def add_noise_streams(self, streams: int) -> None:
        """Give every member ``streams`` training-noise generators (rules call it once)."""
        self.noise_streams = int(streams)
        self.noise_generators = [torch.Generator(device=self.device)
                                 for _ in range(self.num_members * self.noise_streams)]
        self.set_random_seed()

    @property
    def noise_generator(self) -> torch.Generator:
        return self.noise_generators[0]

    @property
    def predict_generator(self) -> torch.Generator:  # type: ignore[override]
        return self.predict_generators[0]

    def set_random_seed(self, seed: int | Sequence[int] | None = None) -> None:
        """Reseed every member's noise and prediction generators and the next env reset."""
        if seed is not None:
            seeds = [int(s) for s in _as_list(seed, self.num_members, "seed")]
            regrouped = GroupLayout.from_seeds(seeds)
            if regrouped.member_groups != self.layout.member_groups:
                self._check_regroup()  # raises before anything changed
                self._regroup(regrouped)
            self.seeds = seeds
            self.layout = regrouped
            one = self.num_members == 1
            self._hyperparameters["seed"] = self.seeds[0] if one else self.seeds
        s = self.noise_streams
        for i, gen in enumerate(self.noise_generators):
            p, stream = divmod(i, s)
            gen.manual_seed(derived_seed(self.seeds[p], 1 if stream == 0 else 100 + stream))
        for p, gen in enumerate(self.predict_generators):
            gen.manual_seed(derived_seed(self.seeds[p], 2))
        self._pending_env_seed = list(self.layout.group_seeds)
        self._last_obs = None

    def _check_regroup(self) -> None:
        from np_envs.envs.population import PopulationEnv

        if isinstance(self._pop_env, PopulationEnv) and not self._own_pop_env:
            raise ValueError(
                "the new seeds group the members differently from the PopulationEnv this "
                "agent was given (members sharing a seed share a data stream); build a "
                "PopulationEnv with the new groups and pass it to set_env() after "
                "set_random_seed(), or keep the seeds' grouping"
            )

    def _regroup(self, layout: GroupLayout) -> None:
        """New seeds group the members differently: new data streams and buffers."""
        self.layout = layout
        self._groups_idx = None
        self._batch_setup = None
        if self._pop_env is not None and self.env is not None:
            self.set_env(self.env)

    # ------------------------------------------------------------------ the environment
    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """An ordinary (vector or single) env, or a ``PopulationEnv`` of this layout."""
        from np_envs.envs.population import PopulationEnv

        self._own_pop_env = not isinstance(env, PopulationEnv)
        if isinstance(env, PopulationEnv):
            template = env.template
            if tuple(int(g) for g in env.member_groups) != self.layout.member_groups:
                raise ValueError("the PopulationEnv's member groups differ from the agent's")
            pop_env = env
        else:
            template = as_vector_env(env)
            if self.num_members == 1:
                pop_env = _SingleGroupEnv(template)
            else:
                pop_env = PopulationEnv(template, self.layout.member_groups, encoded_obs=True)
        super().set_env(template, force_reset)
        self._pop_env = pop_env

    def get_env(self) -> Any:
        return self.env

    def to_groups(self, obs: np.ndarray) -> torch.Tensor:
        """Inputs (G, B, in) as a tensor of the network's dtype. Stored integer codes from a
        ``PopulationEnv(encoded_obs=True)`` (MNIST's bytes) are decoded here, on the device,
        into the numbers the env would have shown: ``float32(code) / obs_divisor`` (IEEE
        division in float32 either way; checked bit for bit by the tests).

        The returned tensor is one buffer rewritten every trial (a fresh 12.5 MB tensor per
        MNIST update measured slower than the numpy decode it replaces): a rule may use ``x``
        within its trial's hooks, and must copy what it keeps for later."""
        divisor = getattr(self._pop_env, "obs_divisor", None)
        if divisor is None or obs.dtype.kind not in "iu":
            return self.to_tensor(obs)
        codes = torch.from_numpy(np.ascontiguousarray(obs)).to(self.device)
        key = (codes.shape, codes.device, float(divisor))
        if self.__dict__.get("_decode_key") != key:
            self._decoded = torch.empty(codes.shape, dtype=torch.float32, device=self.device)
            # a divisor tensor on the device, not a Python number: CUDA divides by a scalar as
            # a multiplication by its reciprocal, 1 ulp off for 126 of the 256 byte values
            self._divisor_tensor = torch.tensor(float(divisor), dtype=torch.float32,
                                                device=self.device)
            self._decode_key = key
        x = self._decoded
        self._inputs_cache = None  # keyed on the tensor, which is the same buffer every trial
        x.copy_(codes).div_(self._divisor_tensor)
        return x if self.dtype == torch.float32 else x.to(self.dtype)

    # ------------------------------------------------------------------ hooks for rules
    def pop_setup(self, batch_size: int) -> None:
        """Allocate buffers for one batch size (before learning and when B changes)."""

    def pop_clean(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's clean answer to its group's inputs ``x`` (G, B, in): (P, B, act)."""
        raise NotImplementedError

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Every member's ``index``-th perturbed answer to the same inputs: (P, B, act)."""
        raise NotImplementedError

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        """Rewards (P, B) and (n_pert, P, B), float64; the loss is minus the reward."""
        raise NotImplementedError

    def pop_observe_targets(self, targets: np.ndarray) -> None:
        """Only for ``uses_targets`` rules: the targets (G, B, act) of the groups' inputs."""

    def pop_stochastic(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    # ------------------------------------------------------------------ batched products
    def _grouping(self, groups: int) -> int | None:
        """Members per input row-block when inputs come as ``groups`` blocks, or None (gather).

        ``groups == P``: one block per member; ``1``: the same inputs for every member
        (evaluation); ``G`` on a regular grid: R members per group, side by side.
        """
        if groups == self.num_members:
            return 1
        if groups == 1:
            return self.num_members
        if groups == self.layout.num_groups and self.layout.per_group is not None:
            return self.layout.per_group
        if groups != self.layout.num_groups:
            raise ValueError(f"inputs for {groups} groups; the population has "
                             f"{self.layout.num_groups} (or pass one batch for every member)")
        return None

    def first_layer(self, x: torch.Tensor, out: torch.Tensor | None = None,
                    weight: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
        """``W_1 x + b_1`` for every member from its group's inputs: (G, B, in) -> (P, B, H).

        On a regular grid each group's inputs are multiplied once by its R members' weights
        side by side (no copy of the inputs); where the inputs are narrow (SARCOS's 21) and come
        in batches, or the members are in no regular order, the inputs are copied out per member
        instead (see ``_gathers``). The bias is fused into the product on every path: a
        member's first layer is the same numbers whichever way its inputs come (checked bit for
        bit by the tests).
        """
        w = self.weights[0] if weight is None else weight
        b = self.biases[0] if bias is None else bias
        p, h, n_in = w.shape
        r = self._grouping(x.shape[0])
        own = self._own_view(0) if weight is None and bias is None else (None, None)
        if r != 1 and self._gathers(r, x.shape, n_in, h):
            x, r = self._member_inputs(x), 1
        if r == 1:
            return self._affine(x, w, b, out, *own)
        g, batch = x.shape[0], x.shape[1]
        side_by_side = w.reshape(g, r * h, n_in).transpose(1, 2)
        zg = (torch.bmm(x, side_by_side) if b is None
              else torch.baddbmm(b.reshape(g, 1, r * h), x, side_by_side))
        z = zg.view(g, batch, r, h).transpose(1, 2)  # (G, R, B, H): members in order
        if out is None:
            return z.reshape(p, batch, h)
        out.view(g, r, batch, h).copy_(z)
        return out

    def first_layer_update(self, e: torch.Tensor, x: torch.Tensor) -> None:
        """``W_1[p] += e[p]^T x_group(p)`` and ``b_1[p] += sum_n e[p, n]`` for every member."""
        w, b = self.weights[0], self.biases[0]
        p, h, n_in = w.shape
        r = self._grouping(x.shape[0])
        if r != 1 and self._gathers(r, x.shape, n_in, h):
            x, r = self._member_inputs(x), 1
        if r == 1:
            self._add_products(w, e, x)
        else:
            g, batch = x.shape[0], x.shape[1]
            eg = e.view(g, r, batch, h).transpose(1, 2).reshape(g, batch, r * h)
            w.view(g, r * h, n_in).baddbmm_(eg.transpose(1, 2), x)
        if b is not None:
            b.add_(e.sum(dim=1))

    def _gathers(self, r: int | None, shape: torch.Size, n_in: int, h: int) -> bool:
        """Whether the first layer copies its inputs (``shape`` (G, B, in)) out per member:
        always when the members are in no regular order (``r`` None); on a grid of several
        groups when the inputs are at most half as wide as the layer and B > 1, where that copy
        (P x B x in) is cheaper than the side-by-side product's, which must move its (B, R*H)
        answers into member order for the clean pass and the update's factors back (two
        copies of P x B x H; measured 5-14 % of a SARCOS w100 update at P=8). Inputs shown to
        every member alike (evaluation) keep the side-by-side product."""
        groups, batch = shape[0], shape[1]
        return r is None or (groups == self.layout.num_groups > 1 and batch > 1
                             and 2 * n_in <= h)

    def teardown(self) -> None:
        """Drop the per-member copy of the inputs that a clean pass keeps for its update."""
        self._inputs_cache = None

    def _member_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's group's inputs, (G, B, in) -> (P, B, in); the copy made for the clean
        pass is kept for the update, which gets the same ``x``."""
        cached = self.__dict__.get("_inputs_cache")
        if cached is not None and cached[0] is x:
            return cached[1]
        per_member = x.index_select(0, self._groups_index())
        self._inputs_cache = (x, per_member)
        return per_member

    def layer(self, k: int, h: torch.Tensor, out: torch.Tensor | None = None,
              weight: torch.Tensor | None = None,
              bias: torch.Tensor | None = None) -> torch.Tensor:
        """``W_k h + b_k`` for layer k >= 1 from per-member activities: (P, B, out)."""
        if weight is None:
            return self._affine(h, self.weights[k], self.biases[k], out, *self._own_view(k))
        return self._affine(h, weight, bias, out)

    def _own_view(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The members' own layer k as the batched products take it, ``W^T`` and ``b[:, None]``
        (views made once: the weights are only ever changed in place)."""
        views = self.__dict__.get("_own_views")
        if views is None:
            views = self._own_views = [
                (w.transpose(1, 2), None if b is None else b.unsqueeze(1))
                for w, b in zip(self.weights, self.biases, strict=True)]
        return views[k]

    @staticmethod
    def _affine(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                out: torch.Tensor | None, wt: torch.Tensor | None = None,
                b1: torch.Tensor | None = None) -> torch.Tensor:
        """``h w^T + b`` per member: one batched product, or for a big product of a population
        of one a plain 2-D product (the same answers bit for bit; autograd's gradients through
        it may round differently; see ``_plain``)."""
        if _plain(w, h.shape[1]) and h.shape[0] == 1:
            o = None if out is None else out[0]
            z = (torch.mm(h[0], w[0].T, out=o) if b is None
                 else torch.addmm(b[0], h[0], w[0].T, out=o))
            return z.unsqueeze(0) if out is None else out
        wt = w.transpose(1, 2) if wt is None else wt
        if b is None:
            return torch.bmm(h, wt, out=out)
        return torch.baddbmm(b.unsqueeze(1) if b1 is None else b1, h, wt, out=out)

    @staticmethod
    def _add_products(w: torch.Tensor, e: torch.Tensor, h: torch.Tensor) -> None:
        """``w[p] += e[p]^T h[p]`` per member (2-D where ``_affine`` is)."""
        if _plain(w, h.shape[1]):
            w[0].addmm_(e[0].T, h[0])
        else:
            w.baddbmm_(e.transpose(1, 2), h)

    def layer_update(self, k: int, e: torch.Tensor, h_prev: torch.Tensor) -> None:
        """``W_k[p] += e[p]^T h_prev[p]``, ``b_k[p] += sum_n e[p, n]`` (k >= 1)."""
        self._add_products(self.weights[k], e, h_prev)
        b = self.biases[k]
        if b is not None:
            b.add_(e.sum(dim=1))

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor] | None = None,
                biases: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Every member's clean answer, out of place: (G, B, in) -> (P, B, act).

        ``weights``/``biases`` replace the members' own (a perturbed or autograd copy).
        """
        ws = self.weights if weights is None else list(weights)
        bs = self.biases if weights is None else list(biases or [None] * len(ws))
        grad = torch.is_grad_enabled()
        h = self.first_layer(x, weight=ws[0], bias=bs[0]) if weights is not None \
            else self.first_layer(x)
        for k in range(1, self.n_layers):
            h = activate(h, self.activation) if grad else activate_(h, self.activation)
            h = self.layer(k, h, weight=ws[k], bias=bs[k])
        return h

    def _groups_index(self) -> torch.Tensor:
        idx = getattr(self, "_groups_idx", None)
        if idx is None:
            idx = torch.tensor(self.layout.member_groups, device=self.device)
            self._groups_idx = idx
        return idx

    def _single(self, what: str) -> None:
        if self.num_members != 1:
            raise RuntimeError(f"{what} is the single-agent hook; a population uses pop_* hooks")

    def setup(self, batch_size: int) -> None:
        self._ensure(batch_size)

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        self._single("clean_forward")
        self._ensure(obs.shape[0])
        return self.pop_clean(obs.unsqueeze(0))[0]

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        self._single("perturbed_forward")
        return self.pop_perturbed(obs.unsqueeze(0), index)[0]

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        self._single("update")
        self.pop_update(np.asarray(clean_rewards)[None], np.asarray(perturbed_rewards)[:, None])

    def observe_targets(self, targets: np.ndarray) -> None:
        self.pop_observe_targets(np.asarray(targets)[None])

    def stochastic_forward(self, obs: torch.Tensor) -> torch.Tensor:
        self._single("stochastic_forward")
        return self.pop_stochastic(obs.unsqueeze(0))[0]

    # ------------------------------------------------------------------ divergence
    def freeze(self, member: int, at: int | None = None) -> None:
        """Stop member p learning (diverged); its weights stay as they are now."""
        if not self.active[member]:
            return
        self.active[member] = False
        self.diverged_at[member] = self.num_timesteps if at is None else at
        self._frozen[member] = [w[member].clone() for w in self._all_params()]

    def _all_params(self) -> list[torch.Tensor]:
        return [t for pair in zip(self.weights, self.biases, strict=True) for t in pair
                if t is not None]

    def _restore_frozen(self) -> None:
        for p, saved in self._frozen.items():
            for param, value in zip(self._all_params(), saved, strict=True):
                param[p].copy_(value)

    @property
    def diverged(self) -> list[bool]:
        return [not a for a in self.active]

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        member: int | None = None,
    ) -> tuple[np.ndarray, None]:
        """One observation or a batch; a population answers (P, ...) unless ``member`` is given.

        Observations ``(obs_dim,)`` or ``(N, obs_dim)`` are shown to every member; a population
        also takes ``(G, N, obs_dim)``, one batch per group.
        """
        obs = np.asarray(observation)
        if obs.shape[-1] != self.obs_dim or obs.ndim not in (1, 2, 3):
            raise ValueError(f"observation shape {obs.shape}; expected ({self.obs_dim},) or "
                             f"(N, {self.obs_dim})")
        single = obs.ndim == 1
        grouped = obs.ndim == 3
        if getattr(self._pop_env, "encoded_obs", False):
            obs = self._pop_env.decode(obs)  # the stored bytes a population's callbacks see
        x = self.to_tensor(obs if grouped else obs.reshape(1, -1, self.obs_dim))
        with torch.no_grad():
            out = self.forward(x) if deterministic else self.pop_stochastic(x)
        with np.errstate(over="ignore"):  # a diverged member's answers overflow to inf
            actions = self.to_numpy(out).astype(np.float32, copy=False)
        if member is not None:
            actions = actions[member]
        elif self.num_members == 1:
            actions = actions[0]
        else:
            return (actions[:, 0] if single else actions), None
        return (actions[0] if single else actions), None

    # ------------------------------------------------------------------ members
    def member(self, p: int) -> PopulationAgent:
        """Member p as an ordinary agent of the same rule: weights, noise state and its seed's
        data stream carried over, so ``learn(..., reset_num_timesteps=False)`` goes on exactly
        as the single run with p's settings would (``set_env`` a new env for fresh data). A
        population of one is that single run already: its ``member(0)`` shares its env."""
        if not 0 <= p < self.num_members:
            raise IndexError(f"member {p} of a population of {self.num_members}")
        return self.select([p], carry_streams=True)

    def select(self, members: Sequence[int],
               carry_streams: bool | None = None) -> PopulationAgent:
        """These members, in this order, as a population of their own: weights, noise and
        prediction generators, counters and divergence status copied. ``carry_streams``
        (default: when two or more are selected; :meth:`member` always) also carries their
        groups' data streams over (a ``PopulationEnv`` of those groups, at the pending trial),
        so each member goes on exactly as it would have here; otherwise the selection is
        attached to this population's env and draws from it afresh.

        The experiment runner uses it to drop diverged members from a job. A rule with state
        of its own (:meth:`extra_state`) cannot be split member by member and is refused.
        """
        members = checked_members(members, self.num_members)
        if self.extra_state():
            raise ValueError(f"{type(self).__name__} keeps state of its own (extra_state), "
                             "which select() cannot split by member")
        hyper = dict(self._hyperparameters)
        for name in self.member_settings:
            value = hyper.get(name)
            if isinstance(value, list):
                picked = [value[p] for p in members]
                hyper[name] = picked[0] if len(members) == 1 else picked
        agent = type(self)(None, obs_dim=self.obs_dim, act_dim=self.act_dim, **hyper)
        if self.env is not None:
            agent.set_env(self.env)
        index = torch.tensor(members, device=self.device)
        for src, dst in zip(self._all_params(), agent._all_params(), strict=True):
            dst.copy_(src.index_select(0, index))
        s = self.noise_streams
        states = self.noise_generator_states()  # none for a rule without noise (sgd)
        picked = [states[p * s + stream] for p in members for stream in range(s)] if states \
            else []
        for gen, state in zip(agent.noise_generators, picked, strict=True):
            gen.set_state(state)
        for q, p in enumerate(members):
            agent.predict_generators[q].set_state(self.predict_generators[p].get_state())
        agent.learning_rates = [self.learning_rates[p] for p in members]
        agent.active = self.active[members].copy()
        agent.diverged_at = [self.diverged_at[p] for p in members]
        agent._frozen = {q: [t.clone() for t in self._frozen[p]]
                         for q, p in enumerate(members) if p in self._frozen}
        agent.num_timesteps, agent._n_updates = self.num_timesteps, self._n_updates
        # a population that has not drawn data yet: the selection starts from its own seeds,
        # as a fresh agent would (else it goes on from the stream it is given or attached to)
        fresh = self._pending_env_seed is not None and self._last_obs is None
        agent._pending_env_seed = list(agent.layout.group_seeds) if fresh else None
        if len(members) > 1 if carry_streams is None else carry_streams:
            self._carry_streams(agent, members)
        return agent

    def _carry_streams(self, agent: PopulationAgent, members: list[int]) -> None:
        """Give ``agent`` (these members) its groups' data streams where they are now."""
        from np_envs.envs.population import PopulationEnv

        if not isinstance(self._pop_env, PopulationEnv) or self._pop_env.current_obs is None:
            return
        groups = list(dict.fromkeys(self.layout.member_groups[p] for p in members))
        env = PopulationEnv(self._pop_env.template, agent.layout.member_groups,
                            encoded_obs=self._pop_env.encoded_obs)
        env.load_state_dict(PopulationEnv.select_groups(self._pop_env.state_dict(), groups))
        agent.set_env(env)
        agent._own_pop_env = True
        agent._last_obs = env.current_obs

    def member_hyperparameters(self, p: int) -> dict[str, Any]:
        """The keyword arguments of the single agent that member p is."""
        hyper = dict(self._hyperparameters)
        for name in self.member_settings:
            value = hyper.get(name)
            if isinstance(value, list):
                hyper[name] = value[p]
        return hyper

    # ------------------------------------------------------------------ save / load
    def noise_generator_states(self) -> list[torch.Tensor]:
        return [gen.get_state() for gen in self.noise_generators]

    def get_parameters(self) -> dict[str, dict[str, torch.Tensor]]:
        """SB3's layout: ``{"policy": state_dict}``; a population's tensors have axis 0 = member."""
        if self.num_members == 1:
            return {"policy": self.network.state_dict()}
        return {"policy": self._stacked_state()}

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True,
                       device: str = "auto") -> None:
        """Load weights from ``get_parameters()`` output or a saved agent's file (as SB3)."""
        params = load_path_or_dict
        if not isinstance(params, dict):
            params = type(self).load(params).get_parameters()
        state = policy_state(params)
        if self.num_members == 1:
            state = {k: v.unsqueeze(0) if v.dim() < self._stacked_state()[k].dim() else v
                     for k, v in state.items() if k in self._stacked_state()} | {
                k: v for k, v in state.items() if k not in self._stacked_state()}
        copy_parameters(self._stacked_state(), state, exact_match, "population")

    def _stacked_state(self) -> dict[str, torch.Tensor]:
        state = {}
        for k in range(self.n_layers):
            state[f"layers.{k}.weight"] = self.weights[k]
            if self.biases[k] is not None:
                state[f"layers.{k}.bias"] = self.biases[k]
        return state

    def save(self, path: str | pathlib.Path) -> None:
        """A zip: ``agent.json`` (rule name, settings, counters, members' status) and
        ``tensors.pt`` (plain tensors only, loaded with ``weights_only=True``)."""
        path = zip_path_for_save(path)
        meta = {
            "format": SAVE_FORMAT,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "name": self.name,
            "members": self.num_members,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "num_timesteps": self.num_timesteps,
            "n_updates": self._n_updates,
            "hyperparameters": self._hyperparameters,
            "active": [bool(a) for a in self.active],
            "diverged_at": self.diverged_at,
        }
        tensors: dict[str, Any] = {
            "network": {k: v.cpu() for k, v in self._stacked_state().items()},
            "noise_generators": [s.cpu() for s in self.noise_generator_states()],
            "predict_generators": [g.get_state().cpu() for g in self.predict_generators],
            "frozen": {str(p): [t.cpu() for t in v] for p, v in self._frozen.items()},
            "extra": self.extra_state(),
        }
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("agent.json", json.dumps(meta, indent=2))
            zf.writestr("tensors.pt", buffer.getvalue())

    @classmethod
    def load(cls, path: str | pathlib.Path, env: Any = None, **kwargs: Any) -> PopulationAgent:
        """Rebuild a saved agent or population (``kwargs`` override saved settings)."""
        from agents.checkpoint import (
            drop_sb3_only_load_keywords,
            read_agent_file,
            resolve_saved_class,
        )

        meta, state = read_agent_file(path)
        kwargs = drop_sb3_only_load_keywords(kwargs)
        saved_cls = resolve_saved_class(meta, cls)
        hyper = dict(meta["hyperparameters"])
        hyper.update(kwargs)
        if env is None:
            hyper.update(obs_dim=meta["obs_dim"], act_dim=meta["act_dim"])
        agent = saved_cls(env, **hyper)
        network = state["network"]
        if "members" not in meta:  # a single agent saved by np-envs 0.1: 2-D tensors
            network = {k: v.unsqueeze(0) for k, v in network.items()}
        try:
            copy_parameters(agent._stacked_state(), network, True, "population")
        except ValueError as err:  # another env's (or architecture's) shapes
            from agents.checkpoint import shape_mismatch

            raise shape_mismatch(path, meta, agent, err) from None
        gens = state.get("noise_generators") or []
        try:
            if len(gens) == len(agent.noise_generators):
                for gen, saved in zip(agent.noise_generators, gens, strict=True):
                    gen.set_state(saved)
            predict = state.get("predict_generators") or [state.get("predict_generator")]
            for gen, saved in zip(agent.predict_generators, predict, strict=False):
                if saved is not None:
                    gen.set_state(saved)
        except (RuntimeError, ValueError):  # saved on another device type: reseeded instead
            pass
        agent.num_timesteps = int(meta["num_timesteps"])
        agent._n_updates = int(meta["n_updates"])
        if "active" in meta:
            agent.active = np.asarray(meta["active"], dtype=bool)
            agent.diverged_at = list(meta["diverged_at"])
            agent._frozen = {int(p): [t.to(agent.device) for t in v]
                             for p, v in state.get("frozen", {}).items()}
        agent.load_extra_state(state.get("extra") or {})
        agent._pending_env_seed = None
        return agent

    def __repr__(self) -> str:
        if "weights" not in self.__dict__:
            return f"{type(self).__name__}(<not built>)"
        rates = self.learning_rates[0] if self.num_members == 1 else self.learning_rates
        return (f"{type(self).__name__}(members={self.num_members}, sizes={self.sizes}, "
                f"lr={rates}, reduction={self.reduction!r})")
