"""The base class of every learning rule: the trial loop, SB3's interface, saving, seeding.

A learning rule is a small subclass. The base class runs the trials: for each batch of inputs it
calls ``clean_forward`` and steps the environment with the clean answer, calls
``perturbed_forward`` and steps it again with each perturbed answer, then calls ``update`` with
the scalar rewards. ``info`` never reaches a rule; the one exception is a rule that declares
``uses_targets = True`` (the SGD oracle), which is handed ``info["target"]`` through
``observe_targets``, and only when the environment was made with ``reveal_target=True``.

Plug-in hooks (override in a subclass; see examples/weight_perturbation.py):

- ``setup(batch_size)``: allocate what the rule needs for this batch size (called before
  learning, and again whenever the batch size changes); ``start_learning()`` at every learn();
- ``clean_forward(obs) -> actions``: the unperturbed answer, a (B, act_dim) tensor;
- ``perturbed_forward(obs, index) -> actions``: the ``index``-th perturbed answer to the same
  inputs (index < ``num_perturbations``);
- ``update(clean_rewards, perturbed_rewards)``: numpy float64 arrays of shape (B,) and
  (num_perturbations, B); the loss is minus the reward;
- ``num_perturbations(evals_per_input)``: how many perturbed answers a trial has room for
  (default: all but the clean one, i.e. ``evals_per_input - 1``; the rule averages them);
- ``stochastic_forward(obs)``: what ``predict(deterministic=False)`` answers (default: clean).

Helpers for rules: ``effective_learning_rate(B)`` (the convention below), ``noise_generator``
(seeded from ``seed``, saved and restored with the agent), ``network`` (the MLP), and
``_record(**kwargs)`` to store a rule's own keyword arguments so that ``load`` rebuilds it.

Learning-rate convention (``reduction``): every rule sums its per-sample updates over the batch;
``reduction="mean"`` divides the learning rate by the batch size, ``"sum"`` does not. The paper
divides for SARCOS and not for MNIST or the linear task; the default ``None`` takes the
environment's ``batch_reduction``, which encodes exactly that. The resolved value is stored with
the hyper-parameters.

Callbacks: SB3 callbacks are driven as SB3's own algorithms drive them, with one call of
``on_step`` per environment step (so ``eval_freq``, ``save_freq`` and the progress bar count env
steps, summed over sub-environments via ``num_timesteps``). The calls of one trial come after its
update, so every callback sees the weights between updates, never half-way through a trial.
"""

from __future__ import annotations

import io
import json
import pathlib
import secrets
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.logger import HumanOutputFormat, Logger

from agents.network import MLP, dtype_name, resolve_dtype
from agents.schedules import parse_rate, resolve_device

REDUCTIONS: tuple[str, ...] = ("mean", "sum")
SAVE_FORMAT = 1
#: multiply-adds of one forward pass below which learn() runs torch on one thread: splitting
#: such small products over threads costs more in fork/join (and in stalls on a busy machine)
#: than it saves
SINGLE_THREAD_WORK = 32_000_000


def _env_attr(env: Any, name: str, default: Any = None) -> Any:
    """An attribute of a (vector or single, possibly wrapped) np-envs environment."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        if candidate is not None and hasattr(candidate, name):
            return getattr(candidate, name)
    envs = getattr(env, "envs", None)  # SyncVectorEnv around one of our single envs
    if envs:
        return _env_attr(envs[0], name, default)
    return default


def as_vector_env(env: Any) -> gym.vector.VectorEnv:
    """A batch view of ``env``: a gymnasium VectorEnv as is, a single env as a batch of one."""
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the vector env autoresets in mode {mode}; the trial loop needs SAME_STEP (the "
                "step that ends a trial returns the next input), as np-envs' make_vec gives"
            )
        return env
    if isinstance(env, gym.Env):
        return gym.vector.SyncVectorEnv(
            [lambda: env], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
    raise TypeError(
        f"expected a gymnasium Env or VectorEnv, got {type(env).__name__}; SB3 VecEnvs are not "
        "supported by the reward-only agents (pass the gymnasium env itself)"
    )


def _targets_from_info(info: dict[str, Any]) -> np.ndarray | None:
    """``info["target"]``; for a wrapped single env the finished step's is in ``final_info``."""
    final = info.get("final_info")
    if isinstance(final, dict) and "target" in final:
        return np.asarray(final["target"])
    target = info.get("target")
    return None if target is None else np.asarray(target)


class RewardAgent:
    """SB3-shaped agent that learns from scalar rewards through the trial loop above.

    Keyword arguments common to every rule: ``hidden_sizes`` (any depth), ``activation``
    (relu | tanh | linear), ``bias``, ``dtype`` (float32 | float64), ``device``,
    ``learning_rate`` (a number, RL Zoo's ``"lin_<x>"`` or a callable of SB3's
    ``progress_remaining``; ``self.learning_rate`` is the current value, which a schedule moves
    before every trial), ``reduction`` (see the module docstring), ``init_scales`` (one initial
    weight factor per layer, e.g. (10, 1) for Fig. 4F), ``seed`` (network, noise and the first
    env reset; None draws one and records it), ``verbose``, ``tensorboard_log``,
    ``num_threads`` (torch CPU threads during ``learn``; None: one thread when a forward pass
    is under ``SINGLE_THREAD_WORK`` multiply-adds, else torch's setting; restored afterwards).
    """

    #: name in the registry (informational; set by subclasses)
    name: ClassVar[str] = ""
    #: the SGD oracle alone sets this: it is handed ``info["target"]`` through observe_targets
    uses_targets: ClassVar[bool] = False

    def __init__(
        self,
        env: Any = None,
        *,
        hidden_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        bias: bool = True,
        dtype: str = "float32",
        device: str = "cpu",
        learning_rate: float | str | Callable[[float], float] = 1e-4,
        reduction: str | None = None,
        init_scales: Sequence[float] | None = None,
        seed: int | None = None,
        verbose: int = 0,
        tensorboard_log: str | None = None,
        num_threads: int | None = None,
        obs_dim: int | None = None,
        act_dim: int | None = None,
    ) -> None:
        self._refuse_member_lists(learning_rate=learning_rate, seed=seed)
        start, schedule = parse_rate(learning_rate)
        #: the current rate (one entry: a single agent is the shared loop's population of one);
        #: a schedule rewrites it before every trial, and ``learning_rate`` reads it
        self.learning_rates = [start]
        self._schedules: list[Any] = [schedule]
        self._pop_env: Any = None
        obs_dim, act_dim, reduction = self._attach_env(env, obs_dim, act_dim, reduction)
        if seed is None:
            seed = secrets.randbits(31)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.reduction = str(reduction)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.seed = int(seed)
        self.verbose = int(verbose)
        self.tensorboard_log = tensorboard_log
        self.num_threads = num_threads
        self._hyperparameters: dict[str, Any] = {
            "hidden_sizes": list(self.hidden_sizes),
            "activation": activation,
            "bias": bool(bias),
            "dtype": dtype_name(self.dtype),
            "device": str(device),
            # a "lin_<x>" schedule is data and saved as written; a callable as its start value
            "learning_rate": learning_rate if isinstance(learning_rate, str) else start,
            "reduction": self.reduction,
            "init_scales": None if init_scales is None else [float(s) for s in init_scales],
            "seed": self.seed,
            "verbose": self.verbose,
            "tensorboard_log": tensorboard_log,
            "num_threads": num_threads,
        }
        init_gen = torch.Generator().manual_seed(self._derived_seed(0))
        self.network = MLP(
            (self.obs_dim, *self.hidden_sizes, self.act_dim),
            activation=activation,  # type: ignore[arg-type]
            bias=bias,
            dtype=self.dtype,
            device=self.device,
            init_scales=init_scales,
            generator=init_gen,
        )
        self.network.requires_grad_(False)
        #: training noise, one generator per stream (rules may add streams, see agents/noise.py)
        self.noise_generators = [torch.Generator(device=self.device)]
        self.predict_generator = torch.Generator(device=self.device)
        self.set_random_seed(self.seed)
        self.num_timesteps = 0
        self._n_updates = 0
        self._total_timesteps = 0
        self._last_obs: np.ndarray | None = None
        self._batch_size: int | None = None
        self._logger: Logger | None = None
        self._custom_logger = False
        self.start_time = 0
        # a single agent is a population of one: the shared trial loop's view of it
        self.active = np.ones(1, dtype=bool)
        self._frozen: dict[int, list[torch.Tensor]] = {}
        self._batch_setup: int | None = None

    @property
    def learning_rate(self) -> float:
        """The current learning rate: the schedule's value during ``learn`` (SB3's
        ``progress_remaining``), the given number otherwise. Rules read it in ``update``."""
        return self.learning_rates[0]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        # the current value; a schedule, if any, sets it again before the next trial
        if "learning_rates" in self.__dict__:
            self.learning_rates[0] = float(value)
        else:  # set by a subclass before RewardAgent.__init__ ran
            self.learning_rates = [float(value)]

    def _refuse_member_lists(self, **settings: Any) -> None:
        """Per-member lists are for rules written over the member axis (PopulationAgent)."""
        lists = [k for k, v in settings.items() if isinstance(v, (list, tuple, np.ndarray))]
        if not lists:
            return
        cls = type(self)
        rule = self.name or f"{cls.__module__}:{cls.__qualname__}"
        raise ValueError(
            f"{cls.__name__} is a single-agent rule (it has no population implementation), so "
            f"{' and '.join(lists)} take one value, not a list; for a grid of learners use "
            f"agents.make_population({rule!r}, env, learning_rates=[...], seeds=[...]), which "
            "trains its members one after another"
        )

    def _attach_env(
        self, env: Any, obs_dim: int | None, act_dim: int | None, reduction: str | None
    ) -> tuple[int, int, str]:
        """Attach ``env`` (if any) and resolve the network's sizes and the rate convention."""
        self.env: gym.vector.VectorEnv | None = None
        self.observation_space: gym.spaces.Box | None = None
        self.action_space: gym.spaces.Box | None = None
        self.evals_per_input: int | None = None
        if env is not None:
            self.set_env(env)
            assert self.observation_space is not None and self.action_space is not None
            obs_dim_env = int(np.prod(self.observation_space.shape))
            act_dim_env = int(np.prod(self.action_space.shape))
            checks = (("obs_dim", obs_dim, obs_dim_env), ("act_dim", act_dim, act_dim_env))
            for label, given, found in checks:
                if given is not None and int(given) != found:
                    raise ValueError(f"{label}={given} does not match the env's {found}")
            obs_dim, act_dim = obs_dim_env, act_dim_env
        if obs_dim is None or act_dim is None:
            raise ValueError("pass an env (or obs_dim and act_dim, as load() does)")
        if reduction is None:
            reduction = _env_attr(self.env, "batch_reduction") if self.env is not None else None
            if reduction is None:
                raise ValueError(
                    "reduction is None and the env has no batch_reduction: pass "
                    "reduction='mean' (learning rate divided by the batch) or 'sum'"
                )
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
        return int(obs_dim), int(act_dim), str(reduction)

    # ------------------------------------------------------------------ hooks for rules
    def setup(self, batch_size: int) -> None:
        """Allocate per-batch-size buffers (called before learning and when B changes)."""

    def start_learning(self) -> None:
        """Called at the start of every learn(), after setup."""

    def clean_forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The clean answer to a batch of observations; remember what the update needs."""
        raise NotImplementedError

    def perturbed_forward(self, obs: torch.Tensor, index: int) -> torch.Tensor:
        """The ``index``-th perturbed answer to the same observations."""
        raise NotImplementedError

    def update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        """Change the weights from the rewards of the clean and the perturbed answers."""
        raise NotImplementedError

    def observe_targets(self, targets: np.ndarray) -> None:
        """Only for rules with ``uses_targets = True``: the targets of the current inputs."""

    def num_perturbations(self, evals_per_input: int) -> int:
        """Perturbed answers per trial: all but the clean one; at least one is needed."""
        if evals_per_input < 2:
            raise ValueError(
                f"{type(self).__name__} needs evals_per_input >= 2 (one clean and at least one "
                f"perturbed answer per input), the env gives {evals_per_input}; make it with "
                "evals_per_input=2"
            )
        return evals_per_input - 1

    def stochastic_forward(self, obs: torch.Tensor) -> torch.Tensor:
        """What ``predict(deterministic=False)`` answers; the clean network unless overridden."""
        return self.network(obs)

    # ---------------------------------------------- the member-axis hooks, for a classic rule
    #: a classic rule is one learner; populations (agents/population.py) set their own count
    num_members = 1

    def pop_setup(self, batch_size: int) -> None:
        self.setup(batch_size)

    def pop_clean(self, x: torch.Tensor) -> torch.Tensor:
        return self.clean_forward(x[0]).unsqueeze(0)

    def pop_perturbed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return self.perturbed_forward(x[0], index).unsqueeze(0)

    def pop_update(self, clean_rewards: np.ndarray, perturbed_rewards: np.ndarray) -> None:
        self.update(clean_rewards[0], perturbed_rewards[:, 0])

    def pop_observe_targets(self, targets: np.ndarray) -> None:
        self.observe_targets(targets[0])

    def _ensure(self, batch_size: int) -> None:
        """Set the rule up for this batch size (once, and again when it changes)."""
        if self._batch_setup != batch_size:
            self.pop_setup(batch_size)
            self._batch_setup = batch_size
            self._batch_size = batch_size

    def to_groups(self, obs: np.ndarray) -> torch.Tensor:
        """Inputs (G, B, in), one batch per data stream, as a tensor of the network's dtype."""
        return self.to_tensor(obs)

    def _restore_frozen(self) -> None:
        """Populations keep a frozen member's weights; a single agent has none to keep."""

    # ------------------------------------------------------------------ helpers for rules
    def effective_learning_rate(self, batch_size: int) -> float:
        """The rate multiplying the batch-summed update: lr / B for "mean", lr for "sum"."""
        if self.reduction == "mean":
            return self.learning_rate / batch_size
        return self.learning_rate

    def _derived_seed(self, stream: int) -> int:
        """Independent seeds for the init, noise and prediction generators from one seed."""
        return int(np.random.SeedSequence([self.seed, stream]).generate_state(1, np.uint64)[0]
                   >> np.uint64(1))

    def _record(self, **hyperparameters: Any) -> None:
        """Subclasses record their own keyword arguments so that save/load round-trips."""
        self._hyperparameters.update(hyperparameters)

    def to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """Observations as a tensor of the network's dtype/device (zero-copy when they match)."""
        x = torch.from_numpy(np.ascontiguousarray(obs))
        if x.dtype != self.dtype or x.device != self.device:
            x = x.to(device=self.device, dtype=self.dtype)
        return x

    @staticmethod
    def to_numpy(actions: torch.Tensor) -> np.ndarray:
        return actions.detach().cpu().numpy()

    # ------------------------------------------------------------------ SB3-shaped API
    @property
    def logger(self) -> Logger:
        if self._logger is None:
            self._logger = self._make_logger("run", True)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger
        self._custom_logger = True

    def _make_logger(self, tb_log_name: str, reset_num_timesteps: bool) -> Logger:
        if self.tensorboard_log is not None:
            from stable_baselines3.common.utils import configure_logger

            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise ImportError(
                    f"tensorboard_log={self.tensorboard_log!r} needs the tensorboard package: "
                    "pip install 'np-envs[tensorboard]' (or pass tensorboard_log=None)"
                ) from None

            return configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
            )
        if self.verbose >= 1:
            return Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)])
        return Logger(folder=None, output_formats=[])

    def dump_logs(self) -> None:
        self.logger.dump(step=self.num_timesteps)

    def get_env(self) -> gym.vector.VectorEnv | None:
        return self.env

    def get_vec_normalize_env(self) -> None:
        return None

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """Attach a (vector or single) env of the same shapes; reads its trial settings."""
        vec = as_vector_env(env)
        obs_space = vec.single_observation_space
        act_space = vec.single_action_space
        if self.observation_space is not None and (
            obs_space.shape != self.observation_space.shape
            or act_space.shape != self.action_space.shape  # type: ignore[union-attr]
        ):
            raise ValueError(
                f"env spaces {obs_space.shape} -> {act_space.shape} differ from the agent's "
                f"{self.observation_space.shape} -> {self.action_space.shape}"  # type: ignore
            )
        if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
            raise ValueError("reward-only agents need flat Box observations and actions")
        self.env = vec
        self._pop_env = _SingleGroupEnv(vec)
        self.observation_space, self.action_space = obs_space, act_space
        self.evals_per_input = int(_env_attr(vec, "evals_per_input", 1))
        if force_reset:
            self._last_obs = None

    @property
    def n_envs(self) -> int:
        return 0 if self.env is None else int(self.env.num_envs)

    @property
    def noise_generator(self) -> torch.Generator:
        """The (first) generator of the training noise; plug-in rules draw from it."""
        return self.noise_generators[0]

    def set_random_seed(self, seed: int | None = None) -> None:
        """Reseed the perturbation noise, the prediction noise and the next env reset."""
        if seed is not None:
            self.seed = int(seed)
            self._hyperparameters["seed"] = self.seed
        for i, gen in enumerate(self.noise_generators):
            gen.manual_seed(self._derived_seed(1 if i == 0 else 100 + i))
        self.predict_generator.manual_seed(self._derived_seed(2))
        self._pending_env_seed: int | None = self.seed
        self._last_obs = None

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Answer one observation (obs_dim,) or a batch (N, obs_dim); numpy in, float32 out."""
        obs = np.asarray(observation)
        single = obs.ndim == 1
        if obs.shape[-1] != self.obs_dim or obs.ndim not in (1, 2):
            raise ValueError(f"observation shape {obs.shape}; expected ({self.obs_dim},) or "
                             f"(N, {self.obs_dim})")
        x = self.to_tensor(obs.reshape(-1, self.obs_dim))
        with torch.no_grad():
            out = self.network(x) if deterministic else self.stochastic_forward(x)
        actions = self.to_numpy(out).astype(np.float32, copy=False)
        return (actions[0] if single else actions), None

    def _init_callback(self, callback: Any, progress_bar: bool) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return callback

    def learn_threads(self, batch_size: int) -> int:
        """Torch CPU threads for learn(): see ``num_threads`` (all members' work counts)."""
        if self.num_threads is not None:
            return int(self.num_threads)
        sizes = self.network_sizes
        work = self.num_members * batch_size * sum(
            a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        if self.device.type == "cpu" and work < SINGLE_THREAD_WORK:
            return 1
        return torch.get_num_threads()

    @property
    def network_sizes(self) -> tuple[int, ...]:
        return self.network.sizes

    def _check_learnable(self) -> None:
        """Rules may refuse an env here (the SGD oracle refuses hidden targets)."""

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 100,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> RewardAgent:
        """Run trials until ``total_timesteps`` env steps per member are spent.

        As for a single agent, steps are summed over sub-environments: every member spends the
        same number of steps, so ``total_timesteps`` means one member's budget.
        """
        self._check_learnable()
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        env = self._pop_env
        k = int(env.evals_per_input)
        batch = int(env.num_envs)
        n_pert = self.num_perturbations(k)
        if n_pert > k - 1:
            raise ValueError(f"{n_pert} perturbations do not fit in {k} evaluations per input")
        self._ensure(batch)
        self.start_learning()
        perturbed = np.empty((n_pert, self.num_members, batch), dtype=np.float64)
        single = isinstance(env, _SingleGroupEnv)
        scheduled = any(s is not None for s in self._schedules)
        cb_locals: dict[str, Any] = {"total_timesteps": total_timesteps, "self": self}
        callback.on_training_start(locals(), globals())
        continue_training = True
        threads_before = torch.get_num_threads()
        threads = self.learn_threads(batch)
        if threads != threads_before:
            torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                while continue_training and self.num_timesteps < total_timesteps:
                    if scheduled:
                        self._update_rates(total_timesteps)
                    x = self.to_groups(self._last_obs)
                    actions = self.to_numpy(self.pop_clean(x))
                    new_obs, clean_rewards, terminated, truncated, info = env.step(actions)
                    clean_info = info
                    finite = info.get("finite")
                    if self.uses_targets:
                        targets = info.get("target")
                        if targets is None:
                            raise ValueError(self._missing_targets_message())
                        self.pop_observe_targets(targets)
                    for j in range(n_pert):
                        actions = self.to_numpy(self.pop_perturbed(x, j))
                        new_obs, perturbed[j], terminated, truncated, info = env.step(actions)
                        if finite is not None:
                            finite = finite & info["finite"]
                    for _ in range(k - 1 - n_pert):
                        new_obs, _, terminated, truncated, info = env.step(
                            self.to_numpy(self.pop_clean(x)))
                    if not (np.all(terminated) or np.all(truncated)):
                        raise RuntimeError(
                            f"the env's trials did not end after evals_per_input={k} steps; "
                            "the agent and env disagree on the trial length"
                        )
                    if finite is not None and not finite.all():
                        for p in np.flatnonzero(~finite & self.active):
                            self.freeze(int(p))
                        clean_rewards = np.where(finite[:, None], clean_rewards, 0.0)
                        perturbed = np.where(finite[None, :, None], perturbed, 0.0)
                    self.pop_update(clean_rewards, perturbed)
                    if self._frozen:
                        self._restore_frozen()
                    self._n_updates += 1
                    self._last_obs = new_obs
                    dones = np.asarray(terminated) | np.asarray(truncated)
                    if single:  # a single agent's callbacks see what SB3's would
                        cb_locals.update(actions=actions[0], new_obs=new_obs[0],
                                         rewards=clean_rewards[0], dones=dones, infos=info)
                    else:
                        cb_locals.update(actions=actions, new_obs=new_obs,
                                         rewards=clean_rewards, dones=dones, infos=info)
                    cb_locals["clean_infos"] = clean_info  # the scores of the clean answers
                    callback.update_locals(cb_locals)
                    for _ in range(k):
                        self.num_timesteps += batch
                        if not callback.on_step():
                            continue_training = False
                            break
                    if log_interval and self._n_updates % log_interval == 0:
                        self._log(clean_rewards, info)
        finally:
            self.teardown()
            if threads != threads_before:
                torch.set_num_threads(threads_before)
        callback.on_training_end()
        return self

    def _update_rates(self, total_timesteps: int) -> None:
        """Scheduled learning rates at SB3's ``progress_remaining`` = 1 - steps / total."""
        self._current_progress_remaining = 1.0 - self.num_timesteps / max(total_timesteps, 1)
        for p, schedule in enumerate(self._schedules):
            if schedule is not None:
                self.learning_rates[p] = float(schedule(self._current_progress_remaining))
        if self._n_updates % 100 == 0:
            self.logger.record("train/learning_rate", float(np.mean(self.learning_rates)))

    def _setup_learn(self, total_timesteps, callback, reset_num_timesteps, tb_log_name,
                     progress_bar):
        if self._pop_env is None:
            raise ValueError("this agent has no env: pass one to the constructor, load() or "
                             "set_env() before learn()")
        self.start_time = time.time_ns()
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._n_updates = 0
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if reset_num_timesteps or self._last_obs is None:
            seeds = self._pending_env_seed
            self._last_obs, _ = self._pop_env.reset(seed=seeds)
            self._pending_env_seed = None
        if not self._custom_logger:
            self._logger = self._make_logger(tb_log_name, reset_num_timesteps)
        return total_timesteps, self._init_callback(callback, progress_bar)

    def teardown(self) -> None:
        """Release what learning held (e.g. a noise worker thread); rules may extend it."""

    def _missing_targets_message(self) -> str:
        return (
            f"{type(self).__name__} is the supervised oracle and needs the targets: create the "
            "env with reveal_target=True, e.g. gym.make_vec(env_id, num_envs=B, "
            "reveal_target=True) (no other agent uses them)"
        )

    def _log(self, clean_rewards: np.ndarray, info: dict[str, Any]) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.record("train/clean_reward", float(np.mean(clean_rewards)))
        if "epoch" in info:
            self.logger.record("train/epoch", int(np.max(info["epoch"])))
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ save / load
    def extra_state(self) -> dict[str, Any]:
        """A rule's own state beyond weights and noise generators (a momentum buffer, a reward
        baseline): tensors, numbers, strings, lists and dicts of them. Saved with the agent and
        handed back to :meth:`load_extra_state` by ``load`` -- so it also survives the experiment
        runner, which reloads every agent from its checkpoint after each chunk."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned (called by ``load``)."""

    def noise_generator_states(self) -> list[torch.Tensor]:
        """The training noise generators' states to save (rules drawing ahead override it)."""
        return [gen.get_state() for gen in self.noise_generators]

    def get_parameters(self) -> dict[str, dict[str, torch.Tensor]]:
        """SB3's layout: ``{"policy": state_dict}`` of ``self.network`` (the saved file's
        format is separate and unchanged)."""
        return {"policy": self.network.state_dict()}

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True,
                       device: str | torch.device = "auto") -> None:
        """Load the network's weights, as SB3's ``BaseAlgorithm.set_parameters``.

        ``load_path_or_dict``: ``get_parameters()`` output (``{"policy": state_dict}``; the
        older ``{"network": state_dict}`` is accepted too) or the path of a saved agent (any
        rule's, of the same architecture; a saved population of one member works too).
        ``exact_match=True`` requires every parameter of the network, and no other; ``False``
        loads those the network has and ignores the rest (as torch's ``strict=False``; at least
        one must match). Shapes must match either way, and nothing is changed unless all loaded
        tensors fit. ``device`` is where a file is read to; the tensors are copied onto the
        agent's own device in any case.
        """
        from agents.checkpoint import copy_parameters, policy_state

        if isinstance(load_path_or_dict, dict):
            state = policy_state(load_path_or_dict)
        else:
            state = self._parameters_from_file(load_path_or_dict, device)
        copy_parameters(self.network.state_dict(), state, exact_match, "network")

    @staticmethod
    def _parameters_from_file(path: Any, device: str | torch.device) -> dict[str, torch.Tensor]:
        """The network tensors of a saved agent's file (read as data: nothing is imported)."""
        from agents.checkpoint import read_agent_file

        meta, state = read_agent_file(path)
        network = state["network"]
        members = meta.get("members")
        if members is not None:  # a population's file: tensors stacked on a member axis
            if members != 1:
                raise ValueError(f"{path} holds a population of {members} members; load one "
                                 "member's parameters (get_parameters of its member(p))")
            network = {k: v[0] for k, v in network.items()}
        target = resolve_device(device)
        return {k: v.to(target) for k, v in network.items()}

    def save(self, path: str | pathlib.Path) -> None:
        """A zip with ``agent.json`` (class, hyper-parameters, counters) and the tensors."""
        from agents.checkpoint import zip_path_for_save

        path = zip_path_for_save(path)
        meta = {
            "format": SAVE_FORMAT,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "name": self.name,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "num_timesteps": self.num_timesteps,
            "n_updates": self._n_updates,
            "hyperparameters": self._hyperparameters,
        }
        tensors = io.BytesIO()
        torch.save(
            {
                "network": {k: v.cpu() for k, v in self.network.state_dict().items()},
                "noise_generators": self.noise_generator_states(),
                "predict_generator": self.predict_generator.get_state(),
                "extra": self.extra_state(),
            },
            tensors,
        )
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("agent.json", json.dumps(meta, indent=2))
            zf.writestr("tensors.pt", tensors.getvalue())

    @classmethod
    def load(
        cls, path: str | pathlib.Path, env: Any = None, **kwargs: Any
    ) -> RewardAgent:
        """Rebuild a saved agent (``kwargs`` override saved hyper-parameters, e.g. device)."""
        from agents.checkpoint import (
            drop_sb3_only_load_keywords,
            read_agent_file,
            resolve_saved_class,
        )

        meta, state = read_agent_file(path)
        kwargs = drop_sb3_only_load_keywords(kwargs)
        saved_cls = resolve_saved_class(meta, cls)
        if saved_cls.load.__func__ is not RewardAgent.load.__func__:  # type: ignore[attr-defined]
            return saved_cls.load(path, env=env, **kwargs)
        hyper = dict(meta["hyperparameters"])
        hyper.update(kwargs)
        if env is None:
            hyper.update(obs_dim=meta["obs_dim"], act_dim=meta["act_dim"])
        agent = saved_cls(env, **hyper)
        agent.network.load_state_dict(state["network"])
        try:
            for gen, saved in zip(agent.noise_generators, state["noise_generators"],
                                  strict=True):
                gen.set_state(saved)
            agent.predict_generator.set_state(state["predict_generator"])
        except (RuntimeError, ValueError):  # saved on another device type: reseeded instead
            pass
        agent.num_timesteps = int(meta["num_timesteps"])
        agent._n_updates = int(meta["n_updates"])
        agent.load_extra_state(state.get("extra") or {})
        # as SB3: a loaded agent continues the env where it stands (its next learn() calls a
        # plain reset()); it never rewinds the env's stream with its seed
        agent._pending_env_seed = None
        return agent

    def __repr__(self) -> str:
        if "network" not in self.__dict__:
            return f"{type(self).__name__}(<not built>)"
        return (f"{type(self).__name__}(sizes={self.network.sizes}, "
                f"lr={self.learning_rate}, reduction={self.reduction!r})")


class _SingleGroupEnv:
    """An ordinary vector env seen as a population env of one member and one group.

    A single agent keeps the ordinary env's behaviour exactly: its checks (an action with NaN
    raises, as Gymnasium users expect) and its seeding.
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.evals_per_input = int(_env_attr(env, "evals_per_input", 1))

    def reset(self, seed: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None
        obs, info = self.env.reset(seed=seed)
        return obs[None], info

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        obs, rewards, terminated, truncated, info = self.env.step(actions[0])
        if "target" in info or "final_info" in info:
            targets = _targets_from_info(info)
            if targets is not None:
                info = {**info, "target": targets[None]}
        return obs[None], np.asarray(rewards)[None], terminated, truncated, info
