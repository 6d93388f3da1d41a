"""One run (agent x seed x settings): train in chunks, evaluate, record, checkpoint, resume.

Why chunks: the evaluation cadence is also the checkpoint cadence. After each chunk of
``eval_every`` epochs (or trials) the run evaluates the test split, appends one row (fsynced) and
writes a checkpoint atomically. A killed run restarts from its last checkpoint and recomputes
only what came after it.

Resume design (the final table equals an uninterrupted run's):

- Every chunk starts from the checkpoint just written, in an uninterrupted run too: the agent is
  reloaded with ``type(agent).load`` and the global RNGs (torch, numpy, random) are reseeded from
  (seed, chunk). So an interrupted run and an uninterrupted one execute the same operations from
  the same state, whatever an agent's ``save`` keeps or forgets.
- The checkpoint also holds the data stream's state at the start of the pending trial
  (:class:`~np_envs.experiments.envstate.ExperimentEnv`): the reloaded agent's first ``reset()``
  draws the batch the run was about to train on. The stream is seeded with the run seed for every
  agent (common random numbers).
- The commit point is ``checkpoint/state.json``, written last; it names the agent file it belongs
  to. Rows past the checkpoint (written before a kill could save it) are dropped on resume and
  recomputed; a torn last row is dropped too.
- ``done`` (written atomically at the end) marks a finished run (completed or diverged): it is
  never recomputed. A run folder is locked (``flock``) while a process works on it.

Diagnostics (``spec.diagnostics``): ``cosine`` adds the mean per-layer cosine between the
rule's updates and SGD's over the chunk (``cos_l<k>``; the env reveals targets to the wrapper,
never to the rule); ``pr`` the participation ratio of each hidden layer on the test inputs
(``pr_l<k>``); ``norms`` a per-update trace of the squared weight norms in ``norms.jsonl``
(rows always hold the norms at each evaluation, ``w2_l<k>``).

Divergence: a run stops and is recorded as diverged (``done`` with ``status="diverged"`` and the
epoch) when its weights or test outputs are NaN/inf, when learning raises on NaN/inf, or when its
test mse exceeds ``divergence_factor`` (default 1e3) times its initial test mse.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments import diagnostics as diag
from np_envs.experiments.datastate import read_data_state, write_data_state
from np_envs.experiments.defaults import LINEAR
from np_envs.experiments.results import (
    RunFolder,
    append_jsonl,
    atomic_save_with,
    atomic_write_bytes,
    atomic_write_json,
    exclusive_lock,
    read_json,
    read_jsonl,
    rewrite_jsonl,
)
from np_envs.experiments.spec import RunSpec

#: points of the per-update weight-norm trace (``--diagnostics norms``) per evaluation chunk
NORM_TRACE_POINTS = 20
STATUS_DONE, STATUS_DIVERGED, STATUS_FAILED, STATUS_BUSY = "done", "diverged", "failed", "busy"


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """One thread per job: determinism (same sums in every process) and fair sharing."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def seed_globals(seed: int, chunk: int) -> None:
    """Reseed the global RNGs some agents use (SB3) from (seed, chunk)."""
    import torch

    s = int(np.random.SeedSequence([int(seed), int(chunk), 0xC4]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def make_train_env(spec: RunSpec) -> Any:
    """The training env of a run: the task, batched, wrapped for resumable data order."""
    import gymnasium as gym

    import np_envs  # noqa: F401  (registers the ids)
    from np_envs.experiments.envstate import ExperimentEnv

    kwargs = dict(spec.env_kwargs)
    if "cosine" in spec.diagnostics or _uses_targets(spec.agent):
        kwargs["reveal_target"] = True
    return ExperimentEnv(gym.make_vec(spec.env_id, num_envs=spec.num_envs, **kwargs))


def _uses_targets(agent: str) -> bool:
    """The SGD oracle (or a plug-in declaring ``uses_targets``) needs ``reveal_target=True``."""
    if agent == "sgd":
        return True
    from agents import resolve_agent

    return bool(getattr(resolve_agent(agent), "uses_targets", False))


def _test_inputs(env: Any) -> np.ndarray | None:
    from np_envs.evaluation import make_split_env

    test_env = make_split_env(env, "test")
    try:
        return np.asarray(getattr(test_env.unwrapped.stream, "inputs", None))
    finally:
        test_env.close()


def check_spec(folder: RunFolder, spec: RunSpec) -> None:
    """Write ``spec.json`` into a new run folder, or refuse a folder that holds another run."""
    if folder.spec_file.is_file():
        if RunSpec.from_dict(read_json(folder.spec_file)).digest != spec.digest:
            raise RuntimeError(f"{folder.path} holds another run's spec")
    else:
        atomic_write_json(folder.spec_file, spec.to_dict())


def commit_checkpoint(
    ckdir: Path, prefix: str, chunk: int, agent: Any, env_state: dict[str, Any],
    extra: dict[str, Any],
) -> Path:
    """Agent file first, then the env state (JSON + npz), then ``state.json``: the commit point.

    Older agent and env files are removed once the new state is committed, so a folder holds
    exactly one resumable checkpoint at any moment a kill can come.
    """
    ckdir.mkdir(parents=True, exist_ok=True)
    agent_file = ckdir / f"{prefix}-{chunk:06d}.zip"
    env_base = ckdir / f"env-{chunk:06d}"
    atomic_save_with(agent_file, agent.save)
    env_files = write_data_state(env_base, env_state)
    atomic_write_json(ckdir / "state.json", {
        "chunk": chunk, "agent_file": agent_file.name, "env_file": env_base.name,
        "num_timesteps": int(agent.num_timesteps), **extra,
    })
    keep = {agent_file.name, *(f.name for f in env_files)}
    for old in ckdir.iterdir():
        if old.name.startswith((f"{prefix}-", "env-")) and old.name not in keep:
            with contextlib.suppress(OSError):
                old.unlink()
    return agent_file


def done_record(run_id: str, row: dict[str, Any], status: str) -> dict[str, Any]:
    """The ``done`` marker of a run that ended (completed or diverged) with ``row``."""
    diverged_at = None
    if status == STATUS_DIVERGED:
        diverged_at = row.get("epoch") if row.get("epoch") is not None else row["samples"]
    return {
        "status": status, "run_id": run_id, "chunks": row["chunk"], "samples": row["samples"],
        "epoch": row.get("epoch"), "diverged_at": diverged_at,
        "wall_time": row.get("wall_time"), "finished": time.time(),
    }


class Schedule:
    """Where the chunks end, in env steps, for a spec on its env."""

    def __init__(self, spec: RunSpec, epoch_size: int | None, evals_per_input: int) -> None:
        if spec.unit == "epochs" and not epoch_size:
            raise ValueError(
                f"{spec.env_id} is an endless stream: give the budget in trials (--trials)"
            )
        self.spec = spec
        self.epoch_size = epoch_size
        self.evals_per_input = evals_per_input
        per_unit = epoch_size / spec.num_envs if spec.unit == "epochs" else 1.0
        self.trials_per_unit = per_unit
        self.n_chunks = max(1, math.ceil(spec.budget / spec.eval_every - 1e-9))

    def steps_at(self, chunk: int) -> int:
        units = min(chunk * self.spec.eval_every, self.spec.budget)
        trials = max(1, round(units * self.trials_per_unit)) if chunk > 0 else 0
        return trials * self.spec.num_envs * self.evals_per_input


# ---------------------------------------------------------------------------- the run
class Runner:
    """Executes one :class:`RunSpec` into ``root/runs/<run_id>/`` (see the module docstring)."""

    def __init__(
        self, spec: RunSpec, root: str | os.PathLike,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.folder = RunFolder(Path(root) / "runs" / spec.run_id)
        self.progress = progress

    # ------------------------------------------------------------------ public
    def run(self) -> dict[str, Any]:
        """Finish the run (or skip it if done); returns status, rows and what was computed."""
        folder = self.folder
        folder.path.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder.lock_file) as locked:
            if not locked:
                return self._result(STATUS_BUSY, computed=False)
            if folder.is_done:
                return self._result(folder.done_record()["status"], computed=False)
            check_spec(folder, self.spec)
            try:
                with torch_threads(1):
                    status = self._train()
            except Exception:  # a crash of one run must not stop a sweep
                text = traceback.format_exc()
                atomic_write_bytes(folder.error_file, text.encode())
                result = self._result(STATUS_FAILED, computed=True)
                result["error"] = text.strip().splitlines()[-1]
                return result
            return self._result(status, computed=True)

    # ------------------------------------------------------------------ internals
    def _result(self, status: str, computed: bool) -> dict[str, Any]:
        return {
            "run_id": self.spec.run_id,
            "spec": self.spec.to_dict(),
            "status": status,
            "done": self.folder.done_record(),
            "rows": self.folder.rows(),
            "computed": computed,
        }

    def _make_agent(self, env: Any) -> Any:
        from agents import make_agent

        return make_agent(self.spec.agent, env, seed=self.spec.seed, **self.spec.agent_kwargs)

    def _checkpoint(self, agent: Any, env: Any, chunk: int, extra: dict[str, Any]) -> Path:
        return commit_checkpoint(self.folder.checkpoint_dir, "agent", chunk, agent,
                                 env.checkpoint_state(), extra)

    def _load_agent(self, agent_cls: type, path: Path, env: Any, chunk: int) -> Any:
        """Continue from a checkpoint: rewind the stream to the pending trial, reload, reseed."""
        env.restore_state(env.checkpoint_state())
        agent = agent_cls.load(path, env=env)
        seed_globals(self.spec.seed, chunk)
        return agent

    def _train(self) -> str:
        env = make_train_env(self.spec)
        try:
            return self._train_on(env)
        finally:
            env.close()

    def _train_on(self, env: Any) -> str:
        spec, folder = self.spec, self.folder
        k_evals = int(env.unwrapped.evals_per_input)
        schedule = Schedule(spec, env.unwrapped.stream.size, k_evals)
        measure = Measure(spec, env, schedule)
        measure.norms_file = folder.path / "norms.jsonl"
        state_file = folder.checkpoint_dir / "state.json"
        state = read_json(state_file) if state_file.is_file() else None
        t0 = time.perf_counter()
        if state is None:
            folder.keep_rows([])
            measure.norms_file.unlink(missing_ok=True)
            env.start_stream(spec.seed)
            seed_globals(spec.seed, 0)
            agent = self._make_agent(env)
            agent_cls = type(agent)
            row = measure.row(agent, chunk=0, wall=0.0, extra={})
            folder.append_rows([row])
            start, wall0 = 1, 0.0
            if row["diverged"]:
                return self._finish(row, STATUS_DIVERGED)
            path = self._checkpoint(agent, env, 0, {"wall_time": 0.0})
            agent = self._load_agent(agent_cls, path, env, 1)
            folder.log_attempt({"start_chunk": 1, "resumed": False, "time": time.time()})
        else:
            chunk = int(state["chunk"])
            rows = [r for r in folder.rows() if r["chunk"] <= chunk]
            folder.keep_rows(rows)
            trace = measure.norms_file
            if trace.is_file():
                rewrite_jsonl(trace, [r for r in read_jsonl(trace) if r["chunk"] <= chunk])
            measure.initial = rows[0]
            env.restore_state(read_data_state(folder.checkpoint_dir / state["env_file"]))
            agent_cls = self._agent_class()
            agent = self._load_agent(
                agent_cls, folder.checkpoint_dir / state["agent_file"], env, chunk + 1
            )
            start, wall0 = chunk + 1, float(state.get("wall_time", 0.0))
            folder.log_attempt({"start_chunk": start, "resumed": True, "time": time.time()})
        row = None
        for chunk in range(start, schedule.n_chunks + 1):
            env.reset_stats()
            callbacks = measure.callbacks(agent)
            error: BaseException | None = None
            todo = schedule.steps_at(chunk) - int(agent.num_timesteps)
            if todo > 0:
                try:
                    agent.learn(todo, callback=callbacks or None, reset_num_timesteps=False)
                except (ValueError, RuntimeError, FloatingPointError, OverflowError) as exc:
                    error = exc
            wall = wall0 + time.perf_counter() - t0
            row = measure.row(agent, chunk=chunk, wall=wall,
                              extra=measure.take(callbacks, chunk))
            if error is not None:
                if not (row["diverged"] or _looks_divergent(error)):
                    raise error
                row["diverged"] = True
                row["diverged_reason"] = f"{type(error).__name__}: {error}"[:300]
            folder.append_rows([row])
            if self.progress:
                self.progress(chunk, schedule.n_chunks)
            if row["diverged"]:
                return self._finish(row, STATUS_DIVERGED)
            path = self._checkpoint(agent, env, chunk, {"wall_time": wall})
            if chunk < schedule.n_chunks:
                agent = self._load_agent(agent_cls, path, env, chunk + 1)
        final = row if row is not None else folder.rows()[-1]
        return self._finish(final, STATUS_DONE)

    def _agent_class(self) -> type:
        """The class to ``load`` checkpoints with, without building an agent."""
        from agents import resolve_agent

        cls = resolve_agent(self.spec.agent)
        if isinstance(cls, type):
            return cls
        from agents.sb3_bridge import SB3Agent

        return SB3Agent

    def _finish(self, row: dict[str, Any], status: str) -> str:
        self.folder.mark_done(done_record(self.spec.run_id, row, status))
        return status


def _looks_divergent(error: BaseException) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("nan", "inf", "overflow", "diverg"))


class Measure:
    """Builds the rows of one run: test metrics, norms, eps and theory, diagnostics."""

    def __init__(self, spec: RunSpec, env: Any, schedule: Schedule) -> None:
        self.spec = spec
        self.env = env
        self.schedule = schedule
        self.initial: dict[str, Any] | None = None
        self.teacher = getattr(env.unwrapped, "teacher", None) if spec.env_id == LINEAR else None
        self.norms_file: Path | None = None
        self._theory: np.ndarray | None = None
        self._test_inputs: np.ndarray | None = None

    # ---------------------------------------------------------------- diagnostics
    def callbacks(self, agent: Any) -> list[Any]:
        """Diagnostics for one chunk; the cosine needs an input-to-output MLP (not SB3's)."""
        cbs: list[Any] = []
        mlp = hasattr(getattr(agent, "network", None), "layers")
        if "cosine" in self.spec.diagnostics and mlp:
            cbs.append(diag.SGDCosineCallback(every=1))
        if "norms" in self.spec.diagnostics:
            per_chunk = self.spec.eval_every * self.schedule.trials_per_unit
            every = max(1, int(per_chunk // NORM_TRACE_POINTS))
            cbs.append(diag.WeightNormCallback(every=every))
        return cbs

    def take(self, callbacks: list[Any], chunk: int) -> dict[str, Any]:
        """Row columns from the chunk's callbacks; the norm trace goes to ``norms.jsonl``."""
        out: dict[str, Any] = {}
        for cb in callbacks:
            if isinstance(cb, diag.SGDCosineCallback):
                for k, v in enumerate(diag.mean_per_layer(cb.take(), "cos")):
                    out[f"cos_l{k}"] = v
            elif isinstance(cb, diag.WeightNormCallback):
                size = self.schedule.epoch_size
                trace = [{"chunk": chunk, "env_steps": r["timesteps"],
                          "samples": r["timesteps"] // self.schedule.evals_per_input,
                          "epoch": (r["timesteps"] // self.schedule.evals_per_input) / size
                          if size else None, "w2": r["w2"]} for r in cb.take()]
                append_jsonl(self.norms_file, trace)
        return out

    # ---------------------------------------------------------------- theory
    def theory_eps(self, samples: int) -> float | None:
        """The mean-field eps after ``samples`` samples (plain NP, one hidden layer only)."""
        spec = self.spec
        if spec.env_id != LINEAR or spec.agent != "np" or len(spec.hidden) != 1:
            return None
        if spec.learning_rate is None:
            return None
        if self._theory is None:
            from np_envs.theory import mean_field_trajectory

            lx = int(spec.env_kwargs.get("Lx", 100))
            ly = int(spec.env_kwargs.get("Ly", 10))
            total = self.schedule.steps_at(self.schedule.n_chunks)
            n = total // max(1, self.schedule.evals_per_input)
            reduction = getattr(self.env.unwrapped, "batch_reduction", "sum")
            lr = spec.learning_rate / (spec.num_envs if reduction == "mean" else 1)
            _, self._theory = mean_field_trajectory(
                lx, spec.hidden[0], ly, lr, n, float(spec.env_kwargs.get("sigma_t", 0.0))
            )
        return float(self._theory[min(samples, len(self._theory) - 1)])

    # ---------------------------------------------------------------- rows
    def row(self, agent: Any, chunk: int, wall: float, extra: dict[str, Any]) -> dict[str, Any]:
        import np_envs

        spec = self.spec
        steps = int(agent.num_timesteps)
        samples = steps // self.schedule.evals_per_input
        size = self.schedule.epoch_size
        network = getattr(agent, "network", None)
        norms = diag.squared_weight_norms(network) if network is not None else []
        finite = network is None or diag.weights_finite(network)
        ev = np_envs.evaluate(agent, self.env, split="test") if finite else {"diverged": True}
        row: dict[str, Any] = {
            "run_id": spec.run_id,
            "label": spec.label,
            "agent": spec.agent,
            "seed": spec.seed,
            "hidden": "x".join(str(h) for h in spec.hidden),
            "lr": spec.learning_rate,
            "chunk": chunk,
            "epoch": samples / size if size else None,
            "samples": samples,
            "trials": samples // spec.num_envs,
            "env_steps": steps,
            "test_mse": ev.get("mse"),
            "test_accuracy": None if ev.get("accuracy") is None else 100.0 * ev["accuracy"],
            **self.env.train_stats(),
        }
        for k, v in enumerate(norms):
            row[f"w2_l{k}"] = v
        if self.teacher is not None and network is not None and diag.is_linear_chain(network):
            row["eps"] = diag.teacher_error(network, self.teacher) if finite else None
            row["theory_eps"] = self.theory_eps(samples)
        if "pr" in spec.diagnostics and network is not None and finite:
            if self._test_inputs is None:
                self._test_inputs = _test_inputs(self.env)
            if self._test_inputs is not None and hasattr(network, "layers"):
                for k, v in enumerate(diag.participation_ratios(network, self._test_inputs)):
                    row[f"pr_l{k}"] = v
        row.update(extra)
        row["wall_time"] = wall
        bad = (not finite) or bool(ev.get("diverged")) or not _finite(row["test_mse"])
        if self.initial is None:
            self.initial = row
        if not bad and self.initial is not row and self.exceeds_bound(row):
            bad = True
            row["diverged_reason"] = f"test mse above {self.spec.divergence_factor:g} x initial"
        row["diverged"] = bad
        return row

    def exceeds_bound(self, row: dict[str, Any]) -> bool:
        """Test mse above divergence_factor x the initial test mse."""
        init = (self.initial or {}).get("test_mse")
        mse = row.get("test_mse")
        if not (_finite(init) and _finite(mse)):
            return False
        return mse > self.spec.divergence_factor * init


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------------- job entry point
def run_job(spec: dict[str, Any], root: str) -> dict[str, Any]:
    """Run (or resume, or skip) one spec under ``root``; importable for spawn and Ray."""
    return Runner(RunSpec.from_dict(spec), root).run()
