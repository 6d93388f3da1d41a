"""Grid points that share a task, a rule and an architecture, trained as one population job.

Why: a sweep's runs differ mostly in learning rate and seed. Trained one per process, a small
network's update is mostly per-step overhead; trained as one population (agents/population.py)
that overhead is paid once per job. The job writes exactly what separate runs would: each
member's rows go to its own ``runs/<run_id>/`` folder (same columns, same ``done`` record), so
tables, summaries and plots do not know how a run was computed.

Which specs group (:func:`population_key`): same env, env kwargs, batch, budget, evaluation
cadence, metric, target, divergence factor and every agent keyword except the rule's per-member
settings (learning rate, sigma; the seed is a spec field), a rule written over the member axis,
and no per-run diagnostics (``--diagnostics`` runs go alone, as before). Everything else runs
as a single job (SB3, plug-ins without a population implementation).

Resume: the job's checkpoint (``populations/<job_id>/checkpoint``) holds the population (a data
only zip), the population env's state (JSON + npz: stream positions, the pending trial) and
``state.json``, written last, the commit point. Rows past the checkpoint are dropped on resume
and recomputed; ``done`` markers are written only for chunks already committed. As for single
runs, every chunk starts from the checkpoint just written, reloaded, with the global RNGs
reseeded, so an interrupted job equals an uninterrupted one.

Divergence per member: answers that turn NaN/inf freeze the member during learning; at each
evaluation a member whose weights are not finite, or whose test error passes
``divergence_factor`` x its initial error, is recorded as diverged at that chunk and frozen;
the others go on untouched, and from that chunk on without it (the checkpoint's ``state.json``
lists the job's members it still holds, so a resume continues with the same ones).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments.datastate import read_data_state
from np_envs.experiments.results import (
    RunFolder,
    atomic_write_bytes,
    exclusive_lock,
    read_json,
)
from np_envs.experiments.runner import (
    STATUS_BUSY,
    STATUS_DIVERGED,
    STATUS_DONE,
    STATUS_FAILED,
    Measure,
    Schedule,
    check_spec,
    commit_checkpoint,
    done_record,
    seed_globals,
    torch_threads,
)
from np_envs.experiments.spec import RunSpec

#: agent keywords that may differ between the members of one population job
MEMBER_KEYWORDS = ("learning_rate", "sigma")


def population_key(spec: RunSpec) -> str | None:
    """Specs with equal keys train as one population; None: this spec runs alone."""
    if spec.diagnostics:
        return None
    from agents import resolve_agent

    try:
        cls = resolve_agent(spec.agent)
    except ValueError:
        return None
    if not getattr(cls, "population_native", False):
        return None
    settings = getattr(cls, "member_settings", ("learning_rate", "seed"))
    member = [k for k in MEMBER_KEYWORDS if k in settings]
    for name in member:
        value = spec.agent_kwargs.get(name)
        if value is not None and not isinstance(value, (int, float)):
            return None
    shared = {k: v for k, v in spec.agent_kwargs.items() if k not in member}
    return json.dumps(
        [spec.env_id, spec.agent, spec.env_kwargs, shared, spec.budget, spec.eval_every,
         spec.unit, spec.num_envs, spec.metric, spec.target, spec.divergence_factor],
        sort_keys=True, default=str,
    )


@dataclass(frozen=True)
class Job:
    """What one worker runs: one spec alone, or the members of a population."""

    specs: tuple[RunSpec, ...]
    population: bool

    @property
    def job_id(self) -> str:
        if not self.population:
            return self.specs[0].run_id
        text = "\n".join(sorted(s.run_id for s in self.specs))
        label = self.specs[0].label.replace("/", "_")
        return f"{label}-p{len(self.specs)}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _member_order(spec: RunSpec) -> tuple[Any, ...]:
    kw = spec.agent_kwargs
    return (spec.seed, float(kw.get("learning_rate") or 0.0), float(kw.get("sigma") or 0.0),
            spec.run_id)


def plan_jobs(specs: Sequence[RunSpec], workers: int = 1) -> list[Job]:
    """Group specs into population jobs (seed-major members) and single jobs.

    With ``workers`` > the number of jobs, the largest population is split (whole seeds first,
    then learning rates) until every worker has a job or no population has two members.
    """
    groups: dict[str, list[RunSpec]] = {}
    jobs: list[Job] = []
    for spec in specs:
        key = population_key(spec)
        if key is None:
            jobs.append(Job((spec,), population=False))
        else:
            groups.setdefault(key, []).append(spec)
    populations = [sorted(members, key=_member_order) for members in groups.values()]
    while len(jobs) + len(populations) < workers:
        largest = max(populations, key=len, default=None)
        if largest is None or len(largest) < 2:
            break
        populations.remove(largest)
        populations.extend(_halves(largest))
    jobs.extend(Job(tuple(members), population=True) for members in populations)
    return jobs


def _halves(members: list[RunSpec]) -> list[list[RunSpec]]:
    """Two parts of a population: whole seeds where there are two or more, else split rates."""
    seeds = sorted({m.seed for m in members})
    if len(seeds) >= 2:
        first = set(seeds[: len(seeds) // 2])
        return [[m for m in members if m.seed in first],
                [m for m in members if m.seed not in first]]
    half = len(members) // 2
    return [members[:half], members[half:]]


def _train_env(spec: RunSpec) -> Any:
    import gymnasium as gym

    import np_envs  # noqa: F401  (registers the ids)
    from np_envs.experiments.runner import _uses_targets

    kwargs = dict(spec.env_kwargs)
    if _uses_targets(spec.agent):
        kwargs["reveal_target"] = True
    return gym.make_vec(spec.env_id, num_envs=spec.num_envs, **kwargs)


class _TrainStats:
    """Per member: the mean loss and mse of the clean answers over a chunk (SB3 callback)."""

    def __init__(self, members: int) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        stats = self

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                updates = self.model._n_updates
                if updates != stats.last_update:
                    stats.last_update = updates
                    rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
                    mse = np.asarray(self.locals["clean_infos"]["mse"], dtype=np.float64)
                    with np.errstate(invalid="ignore", over="ignore"):
                        stats.loss += -rewards.mean(axis=1)
                        stats.mse += mse.mean(axis=1)
                    stats.trials += 1
                return True

        self.callback = Callback()
        self.loss = np.zeros(members)
        self.mse = np.zeros(members)
        self.trials = 0
        self.last_update = -1

    def of(self, p: int) -> dict[str, float | None]:
        if not self.trials:
            return {"train_loss": None, "train_mse": None}
        return {"train_loss": float(self.loss[p] / self.trials),
                "train_mse": float(self.mse[p] / self.trials)}


class PopulationRunner:
    """Executes one population :class:`Job` under ``root`` (see the module docstring)."""

    def __init__(self, specs: Sequence[RunSpec], root: str | Path,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.job = Job(tuple(sorted(specs, key=_member_order)), population=True)
        self.specs = list(self.job.specs)
        self.root = Path(root)
        self.folder = self.root / "populations" / self.job.job_id
        self.checkpoint_dir = self.folder / "checkpoint"
        self.members = [RunFolder(self.root / "runs" / s.run_id) for s in self.specs]
        self.progress = progress
        #: the job's members the population holds now, in its order (diverged ones are dropped)
        self.live = list(range(len(self.specs)))

    # ------------------------------------------------------------------ public
    def run(self) -> list[dict[str, Any]]:
        """Finish every member (or skip those done); one result per member, in job order."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            locks = [stack.enter_context(exclusive_lock(self.folder / ".lock"))]
            for member in self.members:
                member.path.mkdir(parents=True, exist_ok=True)
                locks.append(stack.enter_context(exclusive_lock(member.lock_file)))
            if not all(locks):
                return [self._result(p, STATUS_BUSY, computed=False)
                        for p in range(len(self.specs))]
            if all(m.is_done for m in self.members):
                return [self._result(p, None, computed=False) for p in range(len(self.specs))]
            for spec, member in zip(self.specs, self.members, strict=True):
                check_spec(member, spec)
            try:
                with torch_threads(1):
                    self._train()
            except Exception:  # a crash of one job must not stop a sweep
                text = traceback.format_exc()
                atomic_write_bytes(self.folder / "error.txt", text.encode())
                results = []
                for p, member in enumerate(self.members):
                    if member.is_done:
                        results.append(self._result(p, None, computed=True))
                        continue
                    atomic_write_bytes(member.error_file, text.encode())
                    result = self._result(p, STATUS_FAILED, computed=True)
                    result["error"] = text.strip().splitlines()[-1]
                    results.append(result)
                return results
            return [self._result(p, None, computed=True) for p in range(len(self.specs))]

    # ------------------------------------------------------------------ internals
    def _result(self, p: int, status: str | None, computed: bool) -> dict[str, Any]:
        folder = self.members[p]
        done = folder.done_record()
        if status is None:
            status = done["status"] if done else STATUS_FAILED
        return {"run_id": self.specs[p].run_id, "spec": self.specs[p].to_dict(),
                "status": status, "done": done, "rows": folder.rows(), "computed": computed,
                "job": self.job.job_id}

    def _make_agent(self, env: Any) -> Any:
        from agents import make_agent

        spec0 = self.specs[0]
        settings = {}
        for name in MEMBER_KEYWORDS:
            values = [s.agent_kwargs.get(name) for s in self.specs]
            if any(v is not None for v in values):
                if any(v is None for v in values):
                    raise ValueError(f"some members of {self.job.job_id} lack {name}")
                settings[name] = [float(v) for v in values]
        shared = {k: v for k, v in spec0.agent_kwargs.items() if k not in settings}
        return make_agent(spec0.agent, env, seed=[s.seed for s in self.specs], **settings,
                          **shared)

    def _job_seed(self) -> int:
        return int(hashlib.sha1(self.job.job_id.encode()).hexdigest()[:8], 16)

    def _attach(self, agent: Any, pop_env: Any) -> Any:
        agent.set_env(pop_env)
        agent._last_obs = pop_env.current_obs
        agent._pending_env_seed = None
        return agent

    def _checkpoint(self, agent: Any, pop_env: Any, chunk: int, wall: float) -> Path:
        return commit_checkpoint(self.checkpoint_dir, "population", chunk, agent,
                                 pop_env.state_dict(), {"wall_time": wall,
                                                        "members": list(self.live)})

    def _live_groups(self) -> list[int]:
        return _groups_of([self.specs[p] for p in self.live])

    def _drop_frozen(self, agent: Any) -> tuple[Any, Any]:
        """Go on without the members that will not learn again (diverged, or finished by
        another job): the others continue exactly as they would have (every member has its
        own weights, noise and data stream), and a sweep across the stability edge stops
        paying for its diverged runs. A rule with state of its own is kept whole."""
        keep = [q for q in range(agent.num_members) if agent.active[q]]
        if not keep or len(keep) == agent.num_members or agent.extra_state():
            return agent, agent._pop_env
        smaller = agent.select(keep, carry_streams=True)  # its groups' streams, as they are
        self.live = [self.live[q] for q in keep]
        return smaller, smaller._pop_env

    def _reload(self, agent_cls: type, template: Any, pop_env: Any, chunk: int) -> Any:
        """Continue from the committed checkpoint: population and env state as saved."""
        state = read_json(self.checkpoint_dir / "state.json")
        pop_env.load_state_dict(read_data_state(self.checkpoint_dir / state["env_file"]))
        agent = agent_cls.load(self.checkpoint_dir / state["agent_file"], env=template)
        seed_globals(self._job_seed(), chunk)
        return self._attach(agent, pop_env)

    def _train(self) -> None:
        from np_envs.envs.population import PopulationEnv

        template = _train_env(self.specs[0])
        try:
            self._train_on(template, PopulationEnv)
        finally:
            template.close()

    def _train_on(self, template: Any, population_env: type) -> None:
        spec0 = self.specs[0]
        k_evals = int(template.unwrapped.evals_per_input)
        schedule = Schedule(spec0, template.unwrapped.stream.size, k_evals)
        measures = [Measure(s, template, schedule) for s in self.specs]
        state_file = self.checkpoint_dir / "state.json"
        state = read_json(state_file) if state_file.is_file() else None
        t0 = time.perf_counter()
        if state is None:
            agent = self._make_agent(template)
            agent_cls = type(agent)
            pop_env = population_env(template, agent.layout.member_groups, encoded_obs=True)
            obs, _ = pop_env.reset(seed=list(agent.layout.group_seeds))
            self._attach(agent, pop_env)
            agent._last_obs = obs
            seed_globals(self._job_seed(), 0)
            for p, member in enumerate(self.members):
                if member.is_done:  # finished elsewhere: computed, never written
                    agent.freeze(p)
                else:
                    member.keep_rows([])
            self._chunk_rows(agent, measures, schedule, 0, 0.0, None)
            agent, pop_env = self._drop_frozen(agent)
            self._checkpoint(agent, pop_env, 0, 0.0)
            self._mark_finished(schedule, 0)
            start, wall0 = 1, 0.0
            for member in self.members:
                member.log_attempt({"start_chunk": 1, "resumed": False, "time": time.time(),
                                    "job": self.job.job_id})
        else:
            chunk = int(state["chunk"])
            for p, member in enumerate(self.members):
                rows = [r for r in member.rows() if r["chunk"] <= chunk]
                if not member.is_done:
                    member.keep_rows(rows)
                if rows:
                    measures[p].initial = rows[0]
            agent_cls = _agent_class(spec0.agent)
            self.live = [int(p) for p in state.get("members", self.live)]
            pop_env = population_env(template, self._live_groups(), encoded_obs=True)
            self._mark_finished(schedule, chunk)
            start, wall0 = chunk + 1, float(state.get("wall_time", 0.0))
            for member in self.members:
                if not member.is_done:
                    member.log_attempt({"start_chunk": start, "resumed": True,
                                        "time": time.time(), "job": self.job.job_id})
            agent = self._reload(agent_cls, template, pop_env, start)
        for chunk in range(start, schedule.n_chunks + 1):
            if not agent.active.any():
                break
            stats = _TrainStats(agent.num_members)
            todo = schedule.steps_at(chunk) - int(agent.num_timesteps)
            if todo > 0:
                agent.learn(todo, callback=stats.callback, reset_num_timesteps=False)
            wall = wall0 + time.perf_counter() - t0
            self._chunk_rows(agent, measures, schedule, chunk, wall, stats)
            if chunk < schedule.n_chunks:
                agent, pop_env = self._drop_frozen(agent)
            self._checkpoint(agent, pop_env, chunk, wall)
            self._mark_finished(schedule, chunk)
            if self.progress:
                self.progress(chunk, schedule.n_chunks)
            if chunk < schedule.n_chunks:
                agent = self._reload(agent_cls, template, pop_env, chunk + 1)

    def _chunk_rows(self, agent: Any, measures: list[Measure], schedule: Schedule, chunk: int,
                    wall: float, stats: _TrainStats | None) -> None:
        """Evaluate every live member, append its row, freeze the ones that diverged.

        Member q of the population is the job's member ``self.live[q]``.
        """
        from np_envs.evaluation import evaluate_members

        pending = [(q, p) for q, p in enumerate(self.live)
                   if not self.members[p].is_done and not _has_final_row(self.members[p])]
        if not pending:
            return
        finite = [all(bool(np.isfinite(t[q].detach().cpu().numpy()).all())
                      for t in agent._all_params()) for q in range(agent.num_members)]
        scores = evaluate_members(agent, measures[0].env, split="test")
        steps = int(agent.num_timesteps)
        samples = steps // schedule.evals_per_input
        size = schedule.epoch_size
        for q, p in pending:
            spec, measure = self.specs[p], measures[p]
            ev = scores[q] if finite[q] else {"diverged": True}
            row: dict[str, Any] = {
                "run_id": spec.run_id, "label": spec.label, "agent": spec.agent,
                "seed": spec.seed, "hidden": "x".join(str(h) for h in spec.hidden),
                "lr": spec.learning_rate, "chunk": chunk,
                "epoch": samples / size if size else None, "samples": samples,
                "trials": samples // spec.num_envs, "env_steps": steps,
                "test_mse": ev.get("mse"),
                "test_accuracy": None if ev.get("accuracy") is None else 100.0 * ev["accuracy"],
                **(stats.of(q) if stats is not None else
                   {"train_loss": None, "train_mse": None}),
            }
            for k, w in enumerate(agent.weights):
                row[f"w2_l{k}"] = float(w[q].detach().double().pow(2).sum())
            if measure.teacher is not None and agent.activation == "linear" and \
                    agent.biases[0] is None:
                row["eps"] = _teacher_error(agent, q, measure.teacher) if finite[q] else None
                row["theory_eps"] = measure.theory_eps(samples)
            row["wall_time"] = wall
            bad = (not finite[q]) or bool(ev.get("diverged")) or not _finite(row["test_mse"])
            if not agent.active[q]:
                bad = True
                row["diverged_reason"] = "answers turned NaN or inf while learning"
            if measure.initial is None:
                measure.initial = row
            if not bad and measure.initial is not row and measure.exceeds_bound(row):
                bad = True
                row["diverged_reason"] = (f"test mse above {spec.divergence_factor:g} x "
                                          "initial")
            row["diverged"] = bad
            self.members[p].append_rows([row])
            if bad:
                agent.freeze(q)
                agent.diverged_at[q] = steps

    def _mark_finished(self, schedule: Schedule, chunk: int) -> None:
        """``done`` for members whose last row is committed: diverged, or at the budget."""
        for p, member in enumerate(self.members):
            if member.is_done:
                continue
            rows = member.rows()
            if not rows:
                continue
            last = rows[-1]
            if last.get("diverged"):
                status = STATUS_DIVERGED
            elif chunk >= schedule.n_chunks:
                status = STATUS_DONE
            else:
                continue
            member.mark_done({**done_record(self.specs[p].run_id, last, status),
                              "job": self.job.job_id})


def _has_final_row(member: RunFolder) -> bool:
    rows = member.rows()
    return bool(rows) and bool(rows[-1].get("diverged"))


def _groups_of(specs: Sequence[RunSpec]) -> list[int]:
    order: dict[int, int] = {}
    return [order.setdefault(s.seed, len(order)) for s in specs]


def _agent_class(name: str) -> type:
    from agents import resolve_agent

    return resolve_agent(name)


def _teacher_error(agent: Any, p: int, teacher: np.ndarray) -> float:
    import torch

    product = agent.weights[0][p].detach().double()
    for w in agent.weights[1:]:
        product = w[p].detach().double() @ product
    diff = product - torch.as_tensor(teacher, dtype=torch.float64)
    ly, lx = diff.shape
    return float(diff.pow(2).sum()) / (lx * ly)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def run_population_job(specs: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """Run (or resume, or skip) one population job; importable for spawn and Ray."""
    return PopulationRunner([RunSpec.from_dict(s) for s in specs], root).run()
