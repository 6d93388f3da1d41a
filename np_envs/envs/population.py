"""A population of learners on one task: P members in G data groups, scored in one array step.

Why this exists
---------------
A learning-rate sweep (say 4 learning rates x 4 seeds) is fastest as one batched tensor program
that trains all P members at once. Each member's seed decides its data order, so members that
share a seed see the same inputs in the same order: they form one *group*, one data stream.
Running P ordinary vector envs would draw, copy and hand over every batch P times although only
G distinct batches exist; this environment draws each group's batch once, hands it over once
(``obs`` has shape ``(G, B, obs_dim)``), and scores every member's answer against its own
group's targets in one vectorised computation. The reward still comes only from the
environment: the targets never leave it (unless ``reveal_target=True``, for the SGD oracle).

Why it is not a ``gymnasium.vector.VectorEnv``
----------------------------------------------
A ``VectorEnv`` maps one action per sub-environment to one reward per sub-environment, with
observations and actions of the same leading size. Here the observation has a group axis and the
action and reward a member axis (``P >= G``): several actions answer the same observation. No
Gymnasium wrapper or checker can make sense of that, so this class is a documented extension
that keeps the ordinary env's conventions wherever they apply:

- group ``g`` reset with seed ``s`` yields exactly the batches of ``gym.make_vec(id, B)`` reset
  with seed ``s`` (same random generator construction, same stream), and member ``p`` gets
  exactly the rewards, ``mse`` and ``correct`` that ordinary env would give its actions;
- a trial is ``evals_per_input`` steps on the same input; autoreset is SAME_STEP (the step that
  ends a trial returns the next trial's inputs and the finished ones in ``info["final_obs"]``);
- within a trial every step returns the same observation array: treat it as read-only;
  ``terminated`` and ``truncated`` are shared read-only arrays, too (they never change).

Encoded observations (``encoded_obs=True``, opt-in): where the data set stores integer codes
(MNIST's pixel bytes, ``obs = float32(code) / float32(255)``), obs and ``info["final_obs"]`` hold
the stored codes (uint8) and ``env.obs_divisor`` is the divisor; the learners decode them on
their own device (a quarter of the bytes to hand over, and no decoding on the env's side while
the learners wait: an MNIST population of 16 at width 100 measured ~8 % faster per update).
``env.decode(obs)`` gives the numbers the ordinary env would have shown. Tasks without codes
(SARCOS, the linear teacher) ignore the flag (``obs_divisor`` is None). The np-envs agents ask
for it on the population envs they make.

What differs: a member whose actions hold NaN or inf does not raise (the ordinary env does). Its
rewards are NaN and ``info["finite"][p]`` is False, while the others are scored normally, so a
diverging member can be detected and frozen while the rest of the population goes on. A member
whose actions are finite but so large that its loss overflows keeps the ordinary env's reward
(``-inf``) and is flagged too: ``finite[p]`` says that all of member ``p``'s rewards are finite.

Shapes: actions ``(P, B, act_dim)``; rewards, ``info["mse"]``, ``info["correct"]`` ``(P, B)``;
``info["finite"]`` ``(P,)``; obs, ``info["final_obs"]`` ``(G, B, obs_dim)``; terminated,
truncated, ``info["epoch"]`` ``(G, B)``; ``info["target"]`` ``(G, B, act_dim)``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from np_envs.envs.core import RewardOnlyVectorEnv
from np_envs.envs.stream import DatasetStream, SampleStream
from np_envs.losses import loss_in_place_guarded
from np_envs.threads import for_row_blocks

STATE_VERSION = 1
#: measured cost of scoring one answer number (one core, float64 work array): the softmax
#: readout's exp and row reductions ~25 ns, the linear readout's ~5 ns
SOFTMAX_SCORE_NS, LINEAR_SCORE_NS = 25.0, 5.0


def _check_member_groups(member_groups: Any) -> np.ndarray:
    """Validate member -> group labels: P ints in [0, G), every group with a member."""
    groups = np.asarray(member_groups)
    if groups.ndim != 1 or groups.size == 0:
        raise ValueError(
            f"member_groups must be a non-empty 1-D sequence of group numbers (one per member), "
            f"got shape {groups.shape}"
        )
    if groups.dtype.kind not in "iu":
        raise ValueError(
            f"member_groups must hold integers (each member's group number), got dtype "
            f"{groups.dtype}: {groups.tolist()!r}"
        )
    groups = groups.astype(np.int64)
    if groups.min() < 0:
        raise ValueError(f"member_groups must be >= 0, got {groups.tolist()}")
    present = np.unique(groups)
    num_groups = int(groups.max()) + 1
    if len(present) != num_groups:
        missing = sorted(set(range(num_groups)) - set(present.tolist()))
        raise ValueError(
            f"member_groups {groups.tolist()} names groups 0..{num_groups - 1} but group(s) "
            f"{missing} have no member; number the groups 0..G-1 without gaps"
        )
    groups.flags.writeable = False
    return groups


def members_per_group(member_groups: Sequence[int] | np.ndarray) -> int | None:
    """R when member p belongs to group p // R (members ordered group by group, R in each: a
    seeds x rates grid), else None. The agents lay their batched products out the same way."""
    groups = np.asarray(member_groups)
    per_group, rest = divmod(len(groups), int(groups.max()) + 1)
    regular = rest == 0 and bool((groups == np.arange(len(groups)) // per_group).all())
    return per_group if regular else None


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a seed must be an int >= 0 or None, got {seed!r}")
    return int(seed)


def _data_only(value: Any) -> Any:
    """Nested dicts (string keys), lists, JSON scalars and numpy arrays: no pickling needed."""
    if isinstance(value, dict):
        return {str(key): _data_only(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_data_only(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    return value


class PopulationEnv:
    """``P`` members in ``G`` data groups on one task, ``B`` samples per group per trial.

    ``template`` is an ordinary batched env of the task (a ``RewardOnlyVectorEnv``, possibly
    wrapped); it fixes the task, split, batch size and trial length, and its stream is cloned
    once per group (the data arrays are shared, not copied). ``member_groups[p]`` is member
    ``p``'s group. ``encoded_obs``: hand over the stored integer codes where there are any
    (see the module docstring). See the module docstring for the shapes and why this is not a
    ``VectorEnv``.
    """

    def __init__(self, template: Any, member_groups: Sequence[int] | np.ndarray,
                 encoded_obs: bool = False) -> None:
        base = getattr(template, "unwrapped", template)
        if not isinstance(base, RewardOnlyVectorEnv):
            raise TypeError(
                "template must be an np-envs batched env (gym.make_vec of an np-envs id, a "
                f"RewardOnlyVectorEnv), got {type(base).__name__}"
            )
        self.template = template
        self.member_groups = _check_member_groups(member_groups)
        self.num_members = len(self.member_groups)
        self.num_groups = int(self.member_groups.max()) + 1
        self.num_envs = base.num_envs
        self.evals_per_input = base.evals_per_input
        self.readout = base.readout
        self.batch_reduction = base.batch_reduction
        self.reveal_target = base.reveal_target
        self.split = base.split
        self.single_observation_space = base.single_observation_space
        self.single_action_space = base.single_action_space
        self.spec = getattr(template, "spec", None) or base.spec
        self.teacher: np.ndarray | None = getattr(base, "teacher", None)
        self.streams: list[SampleStream] = [base.stream.clone() for _ in range(self.num_groups)]
        self._one_data_set = type(base.stream).next is DatasetStream.next and all(
            s.inputs is self.streams[0].inputs and s.targets is self.streams[0].targets
            for s in self.streams)
        #: obs are the stored codes, ``float32(code) / obs_divisor`` (None: obs are decoded)
        self.obs_divisor: np.float32 | None = (
            getattr(base.stream, "input_divisor", None)
            if encoded_obs and self._one_data_set else None)
        self.epoch_size: int | None = base.stream.size
        self.obs_dim = base.stream.obs_dim
        self.target_dim = base.stream.target_dim
        self.action_shape = (self.num_members, self.num_envs, self.target_dim)
        self._owns_template = False
        self._seeded = [False] * self.num_groups
        self._obs: np.ndarray | None = None  # (G, B, obs_dim)
        self._targets: np.ndarray | None = None  # (G, B, target_dim), float64
        self._epochs: np.ndarray | None = None  # (G, B), int64
        self._evals_done = 0
        self._obs_shape = (self.num_groups, self.num_envs, self.obs_dim)
        # members ordered group by group, R per group (a seeds x rates grid): the answers are
        # scored as a (G, R, B, act) view against the groups' targets, with no per-member copy
        self._per_group = members_per_group(self.member_groups)
        self._answers = np.empty(self.action_shape, np.float64)  # the scoring's work array
        self._member_targets: np.ndarray | None = None  # targets as the answers' layout sees
        self._member_labels: np.ndarray | None = None  # softmax: each member's true classes
        self._truncated = np.zeros((self.num_groups, self.num_envs), dtype=bool)
        self._truncated.flags.writeable = False
        self._all_true = np.ones((self.num_groups, self.num_envs), dtype=bool)
        self._all_true.flags.writeable = False

    @property
    def unwrapped(self) -> PopulationEnv:
        return self

    @property
    def encoded_obs(self) -> bool:
        """Whether obs are the stored codes (``encoded_obs=True`` on a task that has codes)."""
        return self.obs_divisor is not None

    @property
    def current_obs(self) -> np.ndarray | None:
        """The current trial's inputs (G, B, obs_dim), e.g. after :meth:`load_state_dict`."""
        return self._obs

    # ------------------------------------------------------------------ trials

    def _start(self) -> np.ndarray:
        """Draw each group's next batch; one contiguous (G, B, obs_dim) array for all groups."""
        if self._one_data_set and (self.num_groups > 1 or self.encoded_obs):
            # every group reads the same arrays: one gather of all groups' rows at once
            # (measured ~2x faster than a gather per group on MNIST)
            picks = [stream.next_rows(self.num_envs) for stream in self.streams]
            rows = np.stack([r for r, _ in picks])
            first = self.streams[0]
            assert isinstance(first, DatasetStream)
            self._obs = first.read_codes(rows) if self.encoded_obs else first.read_inputs(rows)
            self._targets = first.targets.take(rows, axis=0)
            self._epochs = np.stack([e for _, e in picks])
        elif self.num_groups == 1:  # a view, no copy
            batch = self.streams[0].next(self.num_envs)
            self._obs = batch.inputs[None]
            self._targets = batch.targets[None]
            self._epochs = batch.epochs[None]
        else:
            # each stream writes its batch straight into a new (G, B, obs) array: one copy of
            # the inputs, not two (a gather, then a stack)
            obs = np.empty(self._obs_shape, self.single_observation_space.dtype)
            batches = [stream.next(self.num_envs, out=obs[g])
                       for g, stream in enumerate(self.streams)]
            self._obs = obs
            self._targets = np.stack([batch.targets for batch in batches])
            self._epochs = np.stack([batch.epochs for batch in batches])
        self._evals_done = 0
        self._trial_targets()
        return self._obs

    def _trial_targets(self) -> None:
        """Once per trial: the targets (and labels) laid out as the members' answers are."""
        assert self._targets is not None
        if self._per_group is not None:  # (G, 1, B, T): broadcast over each group's members
            self._member_targets = self._targets[:, None]
        else:
            self._member_targets = self._targets[self.member_groups]
        self._member_labels = None
        if self.readout == "softmax":
            self._member_labels = self._targets.argmax(axis=2)[self.member_groups]

    def reset(
        self, seed: int | Sequence[int | None] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next trial of every group; a group's seed rewinds that group's stream.

        ``seed`` is one int per group (an int seeds every group alike; a ``None`` entry leaves
        that group's stream where it is). A seeded group restarts exactly as
        ``RewardOnlyVectorEnv.reset(seed=s)`` does; a group never seeded gets an unseeded
        generator on its first reset, as the ordinary env does.
        """
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [_check_seed(seed)] * self.num_groups
        elif isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, (str, bytes)):
            seeds = [_check_seed(s) for s in seed]
            if len(seeds) != self.num_groups:
                raise ValueError(
                    f"reset(seed=...) takes one seed per group ({self.num_groups} groups), got "
                    f"{len(seeds)}: {list(seed)!r}"
                )
        else:
            raise ValueError(
                f"a seed must be an int >= 0, None, or a sequence of one per group, got {seed!r}"
            )
        for group, (stream, group_seed) in enumerate(zip(self.streams, seeds, strict=True)):
            if group_seed is not None or not self._seeded[group]:
                rng, _ = gym.utils.seeding.np_random(group_seed)
                stream.restart(rng)
                self._seeded[group] = True
        obs = self._start()
        assert self._epochs is not None
        return obs, {"epoch": self._epochs}

    def _check_actions(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.dtype.kind not in "iuf":  # real numbers only: no bool, complex or object
            raise TypeError(
                f"actions must be real numbers (float32 or float64), got dtype {actions.dtype}"
            )
        if actions.shape != self.action_shape:
            raise ValueError(
                f"actions have shape {actions.shape}, expected {self.action_shape} "
                "(members x num_envs x action size): one output vector per member and sample"
            )
        return actions

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Score every member's actions against its group's targets: rewards ``(P, B)``."""
        if self._obs is None:
            raise RuntimeError("step() called before reset(): call env.reset() first")
        actions = self._check_actions(actions)
        assert self._targets is not None and self._epochs is not None
        finite_actions = np.isfinite(actions).all(axis=(1, 2))
        # a diverged member's NaN/inf must not warn or spill over: rows are independent
        losses, correct = self._score(actions, may_overflow=not finite_actions.all()
                                      or actions.dtype.itemsize > 4)
        losses[~finite_actions] = np.nan
        info: dict[str, Any] = {
            "epoch": self._epochs,
            "mse": (2.0 / self.target_dim) * losses,
        }
        if correct is not None:
            info["correct"] = correct & finite_actions[:, None]
        info["finite"] = np.isfinite(losses).all(axis=1)
        if self.reveal_target:
            info["target"] = self._targets
        self._evals_done += 1
        rewards = np.negative(losses, out=losses)
        if self._evals_done < self.evals_per_input:  # same input, same array: read-only
            return self._obs, rewards, self._truncated, self._truncated, info
        info["final_obs"] = self._obs
        info["_final_obs"] = self._all_true
        return self._start(), rewards, self._all_true, self._truncated, info

    def _score(self, actions: np.ndarray,
               may_overflow: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Per member and sample, ``loss_numpy``'s numbers (the answers cast to float64 in a
        work array, read out and compared with their group's targets in place) and, for a
        softmax readout, whether the answer's top class is the label: (P, B) each.

        Blocks of samples are scored on several threads when the work is big (MNIST at P=16:
        160k answers; np_envs/threads.py): every sample gets the same operations either way.
        """
        members, batch, width = actions.shape
        answers = self._answers
        r = self._per_group
        grid = (self.num_groups, r, batch, width)
        work = answers if r is None else answers.reshape(grid)
        given = actions if r is None else actions.reshape(grid)
        losses = np.empty(work.shape[:-1])
        labels = self._member_labels
        correct = None if labels is None else np.empty((members, batch), dtype=bool)

        def score(lo: int, hi: int) -> None:
            block = work[..., lo:hi, :]
            np.copyto(block, given[..., lo:hi, :])
            losses[..., lo:hi] = loss_in_place_guarded(
                block, self._member_targets[..., lo:hi, :], self.readout, may_overflow)
            if correct is not None:
                np.equal(actions[:, lo:hi].argmax(axis=2), labels[:, lo:hi],
                         out=correct[:, lo:hi])

        per_number = SOFTMAX_SCORE_NS if self.readout == "softmax" else LINEAR_SCORE_NS
        for_row_blocks(score, batch, per_number * answers.size)
        return losses.reshape(members, batch), correct

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to draw exactly the same batches after a restart.

        Data only: nested dicts with string keys, lists, str, ints (the generator states hold
        128-bit ones), bools, None and numpy arrays; no objects, so it can be stored without
        pickling (JSON for the scalars plus ``np.savez`` for the arrays). Note that
        ``torch.load(weights_only=True)`` refuses numpy arrays unless they are allow-listed. It
        holds each group's stream state and the current trial: its inputs, targets and epochs
        (the streams have moved past them, so they are kept verbatim) and how many of its steps
        are done.
        """
        trial: dict[str, Any] | None = None
        if self._obs is not None:
            assert self._targets is not None and self._epochs is not None
            trial = {
                "obs": self._obs.copy(),
                "targets": self._targets.copy(),
                "epochs": self._epochs.copy(),
                "evals_done": self._evals_done,
            }
        return {
            "version": STATE_VERSION,
            "num_groups": self.num_groups,
            "num_envs": self.num_envs,
            "obs_dim": self.obs_dim,
            "target_dim": self.target_dim,
            "seeded": list(self._seeded),
            "streams": [_data_only(stream.state_dict()) for stream in self.streams],
            "trial": trial,
        }

    @staticmethod
    def select_groups(state: dict[str, Any], groups: Sequence[int]) -> dict[str, Any]:
        """The :meth:`state_dict` of a population of only these groups (in this order): their
        streams and their rows of the pending trial, for a population env of those groups."""
        groups = [int(g) for g in groups]
        if not groups or any(not 0 <= g < int(state["num_groups"]) for g in groups):
            raise ValueError(f"groups {groups} of a state with {state['num_groups']} groups")
        trial = state["trial"]
        if trial is not None:
            trial = {**trial, **{key: np.asarray(trial[key])[groups].copy()
                                 for key in ("obs", "targets", "epochs")}}
        return {**state, "num_groups": len(groups),
                "seeded": [state["seeded"][g] for g in groups],
                "streams": [state["streams"][g] for g in groups], "trial": trial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the population back where :meth:`state_dict` found it (same task and sizes)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported population state version {state.get('version')!r}; "
                f"expected {STATE_VERSION}"
            )
        for key in ("num_groups", "num_envs", "obs_dim", "target_dim"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"state was saved with {key}={state[key]}, this population has "
                    f"{key}={getattr(self, key)}; build the same task, batch size and groups"
                )
        for stream, stream_state in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(stream_state)
        self._seeded = [bool(flag) for flag in state["seeded"]]
        trial = state["trial"]
        if trial is None:
            self._obs = self._targets = self._epochs = None
            self._evals_done = 0
            return
        shape = (self.num_groups, self.num_envs)
        obs = np.asarray(trial["obs"])
        if obs.dtype.kind not in "iu":  # observations (an encoded env's learners take them too)
            obs = np.array(obs, dtype=self.single_observation_space.dtype)
        elif self.encoded_obs:
            obs = obs.copy()
        elif getattr(self.streams[0], "input_divisor", None) is not None:
            obs = self.streams[0].decode(obs)  # saved by an env with encoded_obs
        else:
            raise ValueError("state's trial holds integer codes, but this task's data have "
                             "none: build the same task")
        targets = np.array(trial["targets"], dtype=np.float64)
        epochs = np.array(trial["epochs"], dtype=np.int64)
        if (
            obs.shape != (*shape, self.obs_dim)
            or targets.shape != (*shape, self.target_dim)
            or epochs.shape != shape
        ):
            raise ValueError(
                f"state's trial arrays have shapes {obs.shape}, {targets.shape}, {epochs.shape}; "
                f"expected {(*shape, self.obs_dim)}, {(*shape, self.target_dim)}, {shape}"
            )
        self._obs, self._targets, self._epochs = obs, targets, epochs
        self._evals_done = operator.index(trial["evals_done"])
        self._trial_targets()

    def decode(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the ordinary env shows them: ``obs`` decoded if they are codes."""
        obs = np.asarray(obs)
        if self.obs_divisor is None or obs.dtype.kind not in "iu":
            return obs
        return self.streams[0].decode(obs)

    def close(self) -> None:
        """Drop the current trial; closes the template only if this population made it."""
        self._obs = self._targets = self._epochs = None
        if self._owns_template:
            self.template.close()

    def __repr__(self) -> str:
        task = self.spec.id if self.spec is not None else type(self.template).__name__
        return (
            f"PopulationEnv({task}, members={self.num_members}, groups={self.num_groups}, "
            f"num_envs={self.num_envs})"
        )


def make_population_env(
    env_id: str, num_envs: int, member_groups: Sequence[int] | np.ndarray, **env_kwargs: Any
) -> PopulationEnv:
    """A population on ``gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)``'s task."""
    template = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
    try:
        population = PopulationEnv(template, member_groups)
    except Exception:
        template.close()
        raise
    population._owns_template = True
    return population
