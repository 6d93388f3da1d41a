"""Run many specs: in this process, on a local process pool, or as Ray tasks; skip finished ones.

Why three backends with one job function: a comparison on a laptop and a sweep on a cluster run
the very same :func:`~np_envs.experiments.runner.run_job`, so their results agree (each job runs
with one torch thread and seeds everything from its spec).

- ``local`` with ``jobs=1``: in this process, one job after another.
- ``local`` with ``jobs>1``: a ``ProcessPoolExecutor`` with the ``spawn`` start method (no
  forked torch state). Each worker exits when its parent dies, so a killed sweep leaves no
  orphan writing into the run folders (and the folders are locked besides).
- ``ray``: ``ray.init(address=...)`` (an existing cluster) or a local instance with ``jobs``
  CPUs; one task (``num_cpus=1``) per run. On a cluster the output folder must be on a file
  system every node sees (the run folders are written by the workers); results also travel back
  with the task, so the driver's tables never depend on that.

Finished runs (``done`` marker) are not submitted at all.

Progress (:class:`JobProgress`, off with ``--no-progress``): on a terminal one bar per running
job, no nesting; otherwise (a file, a pipe, CI) one plain line per finished chunk of a job and
one per finished job, never bar redraws. Pool workers and Ray tasks draw nothing: the driver
reads each running job's committed checkpoint (``state.json``, an atomic file) for its chunk.

Ctrl-C and SIGTERM (``stop_on_signals`` of np_envs/experiments/stopping.py, installed by the
``compare``, ``sweep`` and ``theory`` commands): the first signal raises ``Interrupted`` in the
driver; :func:`execute` then submits nothing more, cancels what is queued, kills the workers
(pool) or cancels the tasks and shuts down the local Ray it started, and returns what finished
plus an ``interrupted`` result (no rows) per unfinished run, so the tables are written for what
finished and list the rest.
A worker killed mid-chunk loses only that chunk: its job resumes from its last committed
checkpoint on the next run. A second signal exits at once. Pool workers ignore SIGINT (a
terminal's Ctrl-C reaches the whole process group; the driver alone decides) and die with the
driver (``PR_SET_PDEATHSIG``), so nothing of ours outlives a killed driver.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from np_envs.experiments.population_job import (
    Job,
    PopulationRunner,
    plan_jobs,
    run_population_job,
)
from np_envs.experiments.results import RunFolder
from np_envs.experiments.runner import STATUS_BUSY, STATUS_FAILED, Runner, run_job
from np_envs.experiments.spec import BACKENDS, RunSpec
from np_envs.experiments.stopping import STOP, check_stop, install_handlers, process_pool

OnResult = Callable[[dict[str, Any]], None]


STATUS_INTERRUPTED = "interrupted"


def finished_result(spec: RunSpec, root: Path) -> dict[str, Any] | None:
    """The stored result of a finished run, or None if it still has work to do."""
    folder = RunFolder(root / "runs" / spec.run_id)
    record = folder.done_record()
    if record is None:
        return None
    return {"run_id": spec.run_id, "spec": spec.to_dict(), "status": record["status"],
            "done": record, "rows": folder.rows(), "computed": False}


#: how often the pool and Ray drivers read the running jobs' checkpoints for progress
_PROGRESS_POLL_S = 0.5
#: a job's name on its bar is cut to this many characters (plain lines keep it whole)
_BAR_NAME_CHARS = 40


def job_chunks(job: Job) -> int:
    """How many chunks a job trains: the runner's schedule (budget / eval_every, rounded up),
    known without building the env, so the driver can size a bar for a job in a worker."""
    spec = job.specs[0]
    return max(1, math.ceil(spec.budget / spec.eval_every - 1e-9))


def job_state_file(job: Job, root: Path) -> Path:
    """The job's commit point; its ``chunk`` is the last chunk the job finished."""
    if job.population:
        return root / "populations" / job.job_id / "checkpoint" / "state.json"
    return root / "runs" / job.specs[0].run_id / "checkpoint" / "state.json"


def committed_chunk(job: Job, root: Path) -> int:
    """The job's last committed chunk, or -1 before its first checkpoint."""
    try:
        return int(json.loads(job_state_file(job, root).read_text())["chunk"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


class JobProgress:
    """Progress of the jobs of one :func:`execute`, one line per job, never nested bars.

    Why two modes: bar redraws are for eyes on a terminal; in a log file each redraw is a line
    of noise (a redirected compare once wrote 278 of them). On a terminal (``stream.isatty()``)
    each running job has its own bar, which becomes one plain line when the job ends. Anywhere
    else: ``[job 2/4] <job> chunk 3/10`` per finished chunk and ``[job 2/4] <job> done ...``
    per finished job, nothing more. Disabled: silent.
    """

    def __init__(self, todo: Sequence[Job], enabled: bool = True, stream: TextIO | None = None,
                 terminal: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.jobs = list(todo)
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty and isatty())
        self.mode = "off" if not enabled else ("bars" if terminal else "lines")
        self._shown: dict[int, int] = {}  # job index -> last chunk reported
        self._started: dict[int, float] = {}
        self._tasks: dict[int, Any] = {}
        self._bars: Any = None

    def name(self, i: int) -> str:
        return f"[job {i + 1}/{len(self.jobs)}] {self.jobs[i].job_id}"

    def start(self, i: int, chunk: int = -1) -> None:
        """Job ``i`` begins at committed ``chunk`` (-1: new); on a terminal its bar appears."""
        self._started.setdefault(i, time.monotonic())
        self._shown[i] = max(self._shown.get(i, -1), chunk)
        if self.mode == "bars" and i not in self._tasks:
            total = job_chunks(self.jobs[i])
            name = self.name(i)
            if len(name) > _BAR_NAME_CHARS:
                name = name[: _BAR_NAME_CHARS - 1] + "~"
            self._tasks[i] = self._progress().add_task(name, total=total,
                                                       completed=max(0, chunk))

    def chunk(self, i: int, chunk: int, total: int | None = None) -> None:
        """Job ``i`` committed ``chunk`` of ``total``; reported once per chunk (chunk 0, the
        evaluation before training, only starts the bar)."""
        if i not in self._started:
            self.start(i, chunk if chunk < 1 else -1)
        if chunk <= self._shown.get(i, -1) or self.mode == "off":
            return
        self._shown[i] = chunk
        total = total or job_chunks(self.jobs[i])
        if self.mode == "bars":
            self._progress().update(self._tasks[i], completed=chunk, total=total)
        elif chunk >= 1:
            self._line(f"{self.name(i)} chunk {chunk}/{total}")

    def finish(self, i: int, results: Sequence[dict[str, Any]]) -> None:
        """Job ``i`` returned ``results``: one line with its runs' statuses and its time."""
        if self.mode == "off":
            return
        counts: dict[str, int] = {}
        for result in results:
            status = str(result.get("status") or "done")
            counts[status] = counts.get(status, 0) + 1
        runs = f"{len(results)} run{'s' if len(results) != 1 else ''}"
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        started = self._started.get(i)  # None: it ended before its first poll showed it
        took = 0.0 if started is None else time.monotonic() - started
        line = f"{self.name(i)} done: {runs} ({statuses}) in {took:.0f}s"
        if self.mode == "bars":
            task = self._tasks.pop(i, None)
            if task is not None:
                self._progress().remove_task(task)
                self._progress().refresh()  # else the line is printed above the stale bar
            self._progress().console.print(line, markup=False, highlight=False)
        else:
            self._line(line)

    def close(self) -> None:
        """Stop the live display (bars), leaving the cursor below it."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _progress(self) -> Any:
        if self._bars is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            console = Console(file=self.stream, force_terminal=True)
            self._bars = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(),
                MofNCompleteColumn(), TextColumn("chunks"), TimeElapsedColumn(),
                console=console, redirect_stdout=False, transient=False,
            )
            self._bars.start()
        return self._bars


def execute(
    specs: Sequence[RunSpec], root: str | os.PathLike, backend: str = "local", jobs: int = 1,
    address: str | None = None, progress: bool = True, on_result: OnResult | None = None,
) -> list[dict[str, Any]]:
    """Run every spec not yet finished under ``root``; return all results in spec order.

    Specs that can train together are grouped into population jobs (see
    :mod:`np_envs.experiments.population_job`); the plan is printed before any work starts.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    plan = plan_jobs(specs, workers=max(1, jobs))
    todo: list[Job] = []
    for job in plan:
        done = [finished_result(spec, root) for spec in job.specs]
        if all(d is not None for d in done):
            for result in done:
                results[result["run_id"]] = result  # type: ignore[index]
                if on_result:
                    on_result(result)  # type: ignore[arg-type]
        else:
            todo.append(job)
    if progress or todo:
        print(describe_plan(plan, todo), file=sys.stderr, flush=True)
    if todo:
        if backend == "ray":
            run = _run_ray
        elif jobs <= 1:
            run = _run_inline
        else:
            run = _run_pool
        bars = JobProgress(todo, enabled=progress)
        try:
            with contextlib.closing(run(todo, root, jobs, address, bars)) as stream:
                for job_results in stream:
                    for result in job_results:
                        results[result["run_id"]] = result
                        if on_result:
                            on_result(result)
        except KeyboardInterrupt:  # the jobs are stopped (the generator's cleanup ran)
            if not STOP.armed or STOP.signum is None:
                raise  # a KeyboardInterrupt of someone else's (no handler of ours ran)
            # Ray turns our Interrupted into a plain KeyboardInterrupt: the state says which
            return _after_interrupt(specs, root, results, STOP.signum)
        finally:
            bars.close()
    return [results[s.run_id] for s in specs if s.run_id in results]


def _after_interrupt(specs: Sequence[RunSpec], root: Path, results: dict[str, dict[str, Any]],
                     signum: int) -> list[dict[str, Any]]:
    """Results of what finished (on disk too: members a stopped job had already finished) and
    an ``interrupted`` result without rows for the rest, which the tables list as unfinished."""
    for spec in specs:
        if spec.run_id in results:
            continue
        done = finished_result(spec, root)
        results[spec.run_id] = done if done is not None else {
            "run_id": spec.run_id, "spec": spec.to_dict(), "status": STATUS_INTERRUPTED,
            "done": None, "rows": [], "computed": False,
            "error": f"stopped by {signal.Signals(signum).name}",
        }
    return [results[s.run_id] for s in specs]


def plan_summary(plan: Sequence[Job], todo: Sequence[Job]) -> dict[str, int]:
    populations = [j for j in plan if j.population]
    return {
        "runs": sum(len(j.specs) for j in plan),
        "population_jobs": len(populations),
        "population_members": sum(len(j.specs) for j in populations),
        "single_jobs": len(plan) - len(populations),
        "jobs_to_run": len(todo),
    }


def describe_plan(plan: Sequence[Job], todo: Sequence[Job]) -> str:
    """One line: how the runs were grouped, and how many jobs still have work."""
    s = plan_summary(plan, todo)
    parts = []
    if s["population_jobs"]:
        parts.append(f"{s['population_jobs']} population job"
                     f"{'s' if s['population_jobs'] != 1 else ''} "
                     f"({s['population_members']} runs)")
    if s["single_jobs"]:
        parts.append(f"{s['single_jobs']} single-run job{'s' if s['single_jobs'] != 1 else ''}")
    line = f"{s['runs']} runs as " + " + ".join(parts)
    if s["jobs_to_run"] < len(plan):
        line += f"; {len(plan) - s['jobs_to_run']} job(s) already finished"
    return line


def _job_call(job: Job) -> tuple[Callable[..., Any], Any]:
    if job.population:
        return run_population_job, [s.to_dict() for s in job.specs]
    return run_job, job.specs[0].to_dict()


def _as_list(result: Any) -> list[dict[str, Any]]:
    return result if isinstance(result, list) else [result]


def _report_failure(result: dict[str, Any]) -> None:
    if result.get("status") == STATUS_FAILED:
        print(f"run {result['run_id']} failed: {result.get('error')} (see its error.txt; "
              "rerun the same command to retry)", file=sys.stderr)
    elif result.get("status") == STATUS_BUSY:
        print(f"run {result['run_id']} is being computed by another process (its folder is "
              "locked); its rows so far are included; rerun later", file=sys.stderr)


def _run_inline(todo: Sequence[Job], root: Path, jobs: int, address: str | None,
                bars: JobProgress) -> Iterator[list[dict[str, Any]]]:
    for i, job in enumerate(todo):
        bars.start(i, committed_chunk(job, root))

        def tick(chunk: int, total: int, i: int = i) -> None:
            bars.chunk(i, chunk, total)

        if job.population:
            results = PopulationRunner(job.specs, root, progress=tick).run()
        else:
            results = [Runner(job.specs[0], root, progress=tick).run()]
        for result in results:
            _report_failure(result)
        bars.finish(i, results)
        yield results


def _poll_chunks(bars: JobProgress, todo: Sequence[Job], root: Path, indices: Iterable[int],
                 baseline: Sequence[int]) -> None:
    """Report the committed chunk of each job in ``indices`` (read from its checkpoint) once
    it differs from the chunk the job had before this command: a queued job shows nothing."""
    if bars.mode == "off":
        return
    for i in indices:
        chunk = committed_chunk(todo[i], root)
        if chunk >= 0 and chunk != baseline[i]:
            bars.chunk(i, chunk)


def _run_pool(todo: Sequence[Job], root: Path, jobs: int, address: str | None,
              bars: JobProgress) -> Iterator[list[dict[str, Any]]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    with process_pool(min(jobs, len(todo))) as submit:
        futures = {}
        baseline = [committed_chunk(job, root) for job in todo]  # a resumed job's chunk
        for i, job in enumerate(todo):
            fn, arg = _job_call(job)
            futures[submit(fn, arg, str(root))] = i
        check_stop()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
            _poll_chunks(bars, todo, root, (futures[f] for f in pending if f.running()),
                         baseline)
            for fut in done:
                results = _as_list(fut.result())
                for result in results:
                    _report_failure(result)
                bars.finish(futures[fut], results)
                yield results


def _ray_runtime_env() -> dict[str, Any]:
    """Workers import np_envs and agents from where this process does; data from the same
    folder."""
    import agents
    import np_envs

    paths = []
    for mod in (np_envs, agents):
        locations = getattr(mod, "__path__", None) or [os.path.dirname(mod.__file__)]
        for loc in locations:
            parent = str(Path(loc).resolve().parent)
            if parent not in paths:
                paths.append(parent)
    env_vars = {"PYTHONPATH": os.pathsep.join(
        paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    if os.environ.get("NP_ENVS_DATA"):
        env_vars["NP_ENVS_DATA"] = os.environ["NP_ENVS_DATA"]
    from np_envs.threads import CORES_PER_PROCESS_ENV

    env_vars[CORES_PER_PROCESS_ENV] = "1"  # every job is a task with num_cpus=1
    return {"env_vars": env_vars}


#: where a local Ray started by np-envs listens: this machine only (``--address`` for more)
RAY_LOCAL_IP = "127.0.0.1"
#: how often the driver wakes from ``ray.wait`` (so a signal is handled promptly)
_RAY_POLL_S = 0.5


def start_local_ray(jobs: int) -> None:
    """A new local Ray instance (``address="local"``: never an existing cluster found by
    auto-detection or ``RAY_ADDRESS``) with ``jobs`` CPUs, no dashboard, listening on the
    loopback address only.

    Why the switch: Ray (2.60) replaces a loopback ``_node_ip_address`` by the host's address
    unless its multi-node support is off (``ray_constants.ENABLE_RAY_CLUSTER``, read from
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when ray is imported); with the address kept at
    127.0.0.1, its gRPC servers and agents bind to 127.0.0.1 rather than to every interface. The
    switch is turned off for this call only, so a later ``--address`` connection is unaffected.
    """
    import ray
    from ray._private import ray_constants

    cluster_switch = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if cluster_switch is not None:  # absent in a Ray without the switch: nothing to turn off
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=max(1, jobs), include_dashboard=False,
                 _node_ip_address=RAY_LOCAL_IP, runtime_env=_ray_runtime_env(),
                 log_to_driver=False)
    finally:
        if cluster_switch is not None:
            ray_constants.ENABLE_RAY_CLUSTER = cluster_switch


def _run_ray(todo: Sequence[Job], root: Path, jobs: int, address: str | None,
             bars: JobProgress) -> Iterator[list[dict[str, Any]]]:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError("--backend ray needs Ray: pip install 'np-envs[ray]'") from err
    started = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, runtime_env=_ray_runtime_env(), log_to_driver=False)
            else:
                start_local_ray(jobs)
        finally:
            if STOP.armed:  # ray.init replaces the driver's SIGTERM handler with its own
                install_handlers()
        started = True
    check_stop()
    pending: list[Any] = []
    index: dict[Any, int] = {}
    baseline = [committed_chunk(job, root) for job in todo]  # a resumed job's chunk
    try:
        for i, job in enumerate(todo):
            fn, arg = _job_call(job)
            remote = ray.remote(num_cpus=1, max_retries=0)(fn)
            ref = remote.remote(arg, str(Path(root).resolve()))
            pending.append(ref)
            index[ref] = i
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=_RAY_POLL_S)
            # the driver sees the run folders where they are shared (a cluster needs that)
            _poll_chunks(bars, todo, root, (index[r] for r in pending), baseline)
            if not ready:
                continue
            results = _as_list(ray.get(ready[0]))
            for result in results:
                _report_failure(result)
            bars.finish(index[ready[0]], results)
            yield results
    except BaseException:  # Interrupted, or the consumer closed us: stop the tasks now
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
