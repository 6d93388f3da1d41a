"""Population engine against today's path: member-updates per second, P=1 overhead, hand-over.

What is measured (issue 11), every number through ``agent.learn`` so every overhead is in it:

(a) A grid of 16 NP learners (4 learning rates x 4 seeds) on SARCOS width 100 (B=100; synthetic
    data of the GPML training file's shape, passed with the env's ``arrays=`` hook) and on the
    linear task (Lx=100, Lh=1000, Ly=10, one sample per step, float64, linear hidden layer, no
    bias, sigma=1e-6, rates 0.1-0.5 x the critical rate). "Today" is what ``np-envs sweep
    --jobs 2`` does: 16 single agents, one run after another in each of two spawned worker
    processes (8 runs each, torch 1 thread each), run at the same time. The population path is
    measured three ways, all on both cores: one population of 16 with torch on 2 threads
    (``num_threads=2``), one population of 16 left to its automatic thread choice, and two
    processes with a population of 8 each (1 thread each). Every member gets the same number
    of updates in every path; a path's time is the wall time from the first worker's start to
    the last worker's end (the workers wait on a barrier, so building and warm-up are not
    timed). Result: member-updates per second; target: best population path >= 3x today.
    Beside it, the ceiling: the two pop8 processes running the rule's hooks alone (no env, no
    loop), against today; where even that is under 3x, only faster products or noise can reach
    the target. And the bound: the two pop8 processes computing only every member's clean-pass
    products (each member's weights read once per update, no noise, no update, one batched
    product per layer), which any implementation must compute: how far the arithmetic itself
    is from the target (a rough bound: a different batching of the same products may be
    faster).
(b) The same comparison on MNIST (B=1000) at widths 100 and 800: target population >= today
    per member (ratio >= 1).
(c) A population of one against today's single agent, one process, torch's default threads:
    ms per update at SARCOS widths 100 / 800 / 3200 (B=100) and MNIST 800 / 3200 (B=1000);
    target: P=1 / today <= 1.05 at widths 800 and 3200. At SARCOS width 100 the per-update
    overhead is reported: the arithmetic alone (the rule's ``pop_clean``, ``pop_perturbed`` and
    ``pop_update`` called in a loop with fixed rewards, no environment) against the whole update.
(d) NP / SGD time per update at equal width and batch (current code, as bench_agents.py).
(e) GPU (only when ``torch.cuda.is_available()``): member-epochs per second for a population of
    64 on MNIST width 800 (B=1000) against a population of one.
(h) Data hand-over: MNIST width 100, B=1000, P=16 (4 rates x 4 seeds): the share of the update
    spent handing data over -- drawing the next batch of every group into one (G, B, obs)
    array (the env's ``_start``, inside ``step``) and the obs / action conversions
    (``to_groups``, which decodes MNIST's bytes since the agents' population envs hand them
    over as stored, and ``to_numpy``) -- timed around those calls inside ``learn``; target
    <= 5 %.
    Scoring the P x B answers (the rest of ``step``) is reported beside it, and the whole
    environment share (``step`` + conversions) too.

"Today" is the code before the population engine: the tree of ``--today-ref`` (default: the
parent of the commit that added agents/population.py), unpacked with ``git archive`` into a
temporary folder and imported by the worker processes in place of the working tree's agents/
and np_envs/ (so the baseline includes that commit's environments too). ``--today-ref current``
uses the working tree's single agents (populations of one) instead.

How to read the results: every case runs in worker processes (spawn), the cases that are
compared alternate repeat by repeat so that load drifts hit them alike, and the best repeat is
kept. The machine may be shared: every row carries the 1-minute load average measured right
after its best repeat. A ratio is only as good as that load is low; ratios of cases measured
side by side are more trustworthy than the absolute numbers.

Run: ``python benchmarks/bench_population.py`` (all parts), ``--only a,c,d`` to choose parts,
``--quick`` for a smoke run with few updates and repeats.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# torch, agents and np_envs are imported inside functions only: a worker process may import the
# baseline's copy of agents/ and np_envs/ (see --today-ref), which must come first on sys.path.

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SARCOS_ROWS, SARCOS_IN, SARCOS_OUT = 44_484, 21, 7
SEEDS = (0, 1, 2, 3)
RATES = {  # 4 learning rates per task, small enough that no member diverges while timed
    "sarcos": (1e-6, 3e-6, 1e-5, 3e-5),
    "mnist": (1e-5, 3e-5, 1e-4, 3e-4),
    "linear": (0.1, 0.2, 0.3, 0.5),  # x theory.critical_learning_rate(100, 1000, 10)
}


# ---------------------------------------------------------------------------- worker side
def _synthetic_sarcos() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((SARCOS_ROWS, SARCOS_IN)).astype(np.float32)
    torques = inputs @ rng.standard_normal((SARCOS_IN, SARCOS_OUT)) * 0.3
    return inputs, torques


def _make_env(task: str, batch: int, rule: str) -> Any:
    import gymnasium as gym

    evals = 1 if rule == "sgd" else 2
    reveal = rule == "sgd"
    if task == "sarcos":
        return gym.make_vec("NPSarcos-v0", num_envs=batch, evals_per_input=evals,
                            reveal_target=reveal, arrays=_synthetic_sarcos())
    if task == "mnist":
        return gym.make_vec("NPMNIST-v0", num_envs=batch, evals_per_input=evals,
                            reveal_target=reveal)
    if task == "linear":
        return gym.make_vec("NPLinearTeacher-v0", num_envs=batch, Lx=100, Ly=10,
                            dtype="float64", evals_per_input=evals, reveal_target=reveal)
    raise ValueError(f"unknown task {task!r}")


def _agent_kwargs(task: str, width: int, rule: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"hidden_sizes": (width,)}
    if task == "linear":
        kw.update(activation="linear", bias=False, dtype="float64")
    if rule != "sgd":
        kw["sigma"] = 1e-6 if task == "linear" else 1e-4
    return kw


def _rates(task: str, rates: list[float]) -> list[float]:
    if task != "linear":
        return rates
    from np_envs import theory

    critical = theory.critical_learning_rate(100, 1000, 10)
    return [r * critical for r in rates]


@dataclass
class Run:
    """One ``learn`` call's worth of learners: a single agent (one member) or a population."""

    agent: Any
    env: Any
    steps_per_update: int


@dataclass
class Case:
    """What a worker builds: ``runs`` (each a list of (seed, rate) members) on one task."""

    task: str
    width: int
    batch: int
    runs: list[list[tuple[int, float]]]
    torch_threads: int | None = None  # torch.set_num_threads in the worker (None: default)
    num_threads: int | None = None  # the agents' num_threads keyword
    rule: str = "np"
    warmup: int = 2  # updates per run before timing
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


def _build(case: Case) -> list[Run]:
    import torch

    from agents import make_agent

    if case.torch_threads is not None:
        torch.set_num_threads(case.torch_threads)
    runs = []
    for members in case.runs:
        env = _make_env(case.task, case.batch, case.rule)
        seeds = [s for s, _ in members]
        rates = _rates(case.task, [r for _, r in members])
        kw = _agent_kwargs(case.task, case.width, case.rule)
        if case.num_threads is not None:
            kw["num_threads"] = case.num_threads
        if case.device != "cpu":
            kw["device"] = case.device
        kw.update(case.extra)
        if len(members) == 1:
            agent = make_agent(case.rule, env, learning_rate=rates[0], seed=seeds[0], **kw)
        else:
            agent = make_agent(case.rule, env, learning_rate=rates, seed=seeds, **kw)
        steps = (1 if case.rule == "sgd" else 2) * case.batch
        run = Run(agent, env, steps)
        if case.warmup:
            agent.learn(case.warmup * steps)
        runs.append(run)
    return runs


def _train(runs: list[Run], updates: int) -> None:
    for run in runs:
        run.agent.learn(updates * run.steps_per_update, reset_num_timesteps=False)


def _arithmetic_time(run: Run, updates: int) -> float:
    """Seconds per update of the rule's hooks alone (current code): no env, no conversion."""
    import torch

    agent = run.agent
    obs, _ = agent._pop_env.reset(seed=list(agent.layout.group_seeds))
    x = agent.to_groups(obs)
    members, batch = agent.num_members, x.shape[1]
    rng = np.random.default_rng(0)
    clean = -rng.random((members, batch))
    perturbed = clean[None] - 1e-6 * rng.standard_normal((1, members, batch))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(agent.learn_threads(batch))
    agent.start_learning()
    try:
        with torch.no_grad():
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(updates):
                    agent.pop_clean(x)
                    agent.pop_perturbed(x, 0)
                    agent.pop_update(clean, perturbed)
                best = min(best, time.perf_counter() - start)
    finally:
        agent.teardown()
        torch.set_num_threads(threads_before)
    return best / updates


def _floor_time(run: Run, updates: int, batch: int) -> float:
    """Seconds per update of every member's clean-pass products alone: the least any
    implementation must compute (each member's answer to fresh inputs reads all its weights).
    Inputs of the right shapes, not the env's: the values do not change the time."""
    import torch

    agent = run.agent
    members = agent.num_members
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(members, batch, agent.sizes[0], generator=generator, dtype=agent.dtype)
    outs = [torch.empty(members, batch, n, dtype=agent.dtype) for n in agent.sizes[1:]]
    weights = [w.transpose(1, 2) for w in agent.weights]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(updates):
                h = x
                for w, out in zip(weights, outs, strict=True):
                    h = torch.bmm(h, w, out=out)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads_before)
    return best / updates


def _handover(run: Run, updates: int, repeats: int) -> dict[str, float]:
    """Time env.step, to_groups and to_numpy inside learn (current code's population)."""
    agent = run.agent
    spent = {"step": 0.0, "draw": 0.0, "to_groups": 0.0, "to_numpy": 0.0, "rewards": 0.0}
    base = type(agent)

    class Timed(base):  # type: ignore[misc, valid-type]
        def to_groups(self, obs):
            start = time.perf_counter()
            out = base.to_groups(self, obs)
            spent["to_groups"] += time.perf_counter() - start
            return out

        def to_numpy(self, actions):
            start = time.perf_counter()
            out = base.to_numpy(actions)
            spent["to_numpy"] += time.perf_counter() - start
            return out

        def reward_coefficients(self, clean, perturbed):
            start = time.perf_counter()
            out = base.reward_coefficients(self, clean, perturbed)
            spent["rewards"] += time.perf_counter() - start
            return out

    class TimedEnv:
        def __init__(self, env: Any) -> None:
            self._env = env

        def __getattr__(self, name: str) -> Any:
            return getattr(self._env, name)

        def step(self, actions: Any) -> Any:
            start = time.perf_counter()
            out = self._env.step(actions)
            spent["step"] += time.perf_counter() - start
            return out

    inner = agent._pop_env
    draw = inner._start  # the batch assembly inside step: each stream's rows -> (G, B, obs)

    def timed_draw() -> Any:
        start = time.perf_counter()
        out = draw()
        spent["draw"] += time.perf_counter() - start
        return out

    inner._start = timed_draw
    agent.__class__ = Timed
    agent._pop_env = TimedEnv(inner)
    best: dict[str, float] = {}
    for _ in range(repeats):
        for key in spent:
            spent[key] = 0.0
        start = time.perf_counter()
        _train([run], updates)
        total = time.perf_counter() - start
        if not best or total < best["total"]:
            best = {"total": total, **spent}
    agent.__class__ = base
    agent._pop_env = agent._pop_env._env
    del inner._start
    return {key: value / updates for key, value in best.items()}


def _worker(code_root: str | None, data: str, barrier: Any, conn: Any, cores: int) -> None:
    """Serve requests: build a case, time it (after the barrier), measure arithmetic, quit.

    ``cores``: this worker's share of the machine, told to the code as the experiment runner
    tells its pool workers (NP_ENVS_CORES_PER_PROCESS; the code before the engine ignores it).
    """
    if code_root:
        sys.path.insert(0, code_root)
    os.environ["NP_ENVS_DATA"] = data
    os.environ["NP_ENVS_CORES_PER_PROCESS"] = str(cores)
    runs: list[Run] = []
    while True:
        request = conn.recv()
        if request is None:
            break
        kind, payload = request
        try:
            if kind == "build":
                runs = _build(payload)
                import agents
                import np_envs

                result: Any = (Path(agents.__file__).parent, Path(np_envs.__file__).parent)
            elif kind == "time":
                if barrier is not None:
                    barrier.wait()
                start = time.perf_counter()
                _train(runs, payload)
                result = (start, time.perf_counter())
            elif kind == "arith":
                result = _arithmetic_time(runs[0], payload)
            elif kind == "floor":
                result = _floor_time(runs[0], *payload)
            elif kind == "handover":
                result = _handover(runs[0], *payload)
            elif kind == "cuda":
                import torch

                result = torch.cuda.is_available()
            else:
                raise ValueError(f"unknown request {kind!r}")
            conn.send(("ok", result))
        except Exception:  # report to the parent, keep serving
            conn.send(("error", traceback.format_exc()))


# ---------------------------------------------------------------------------- parent side
class Workers:
    """A group of worker processes that build and run one case together (one path)."""

    def __init__(self, label: str, code_root: str | None, cases: list[Case]) -> None:
        ctx = mp.get_context("spawn")
        self.label = label
        self.cases = cases
        barrier = ctx.Barrier(len(cases)) if len(cases) > 1 else None
        data = os.environ.get("NP_ENVS_DATA", str(SHARED_DATA))
        self.conns, self.procs = [], []
        cores = max(1, (os.cpu_count() or 1) // len(cases))
        for _ in cases:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(code_root, data, barrier, child, cores),
                               daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.roots = self._ask_each([("build", case) for case in cases])
        expected = Path(code_root) if code_root else ROOT
        for package_dirs in self.roots:
            for folder in package_dirs:
                if Path(folder).parent != expected:
                    self.close()
                    raise RuntimeError(f"{label}: imported {folder}, expected {expected}")

    def _ask_each(self, requests: list[tuple[str, Any]]) -> list[Any]:
        for conn, request in zip(self.conns, requests, strict=True):
            conn.send(request)
        replies = [conn.recv() for conn in self.conns]
        for status, value in replies:
            if status != "ok":
                self.close()
                raise RuntimeError(f"{self.label}: worker failed:\n{value}")
        return [value for _, value in replies]

    def ask(self, kind: str, payload: Any) -> Any:
        return self._ask_each([(kind, payload)] * len(self.conns))

    def time(self, updates: int) -> float:
        """Wall seconds from the first worker's start to the last one's end."""
        spans = self.ask("time", updates)
        return max(end for _, end in spans) - min(start for start, _ in spans)

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()


def load() -> float:
    return os.getloadavg()[0]


def best_of(paths: list[Workers], updates: list[int], repeats: int) -> list[tuple[float, float]]:
    """(best seconds, load after it) per path; the paths alternate within every repeat."""
    best = [(float("inf"), 0.0)] * len(paths)
    for _ in range(repeats):
        for i, path in enumerate(paths):
            seconds = path.time(updates[i])
            if seconds < best[i][0]:
                best[i] = (seconds, load())
    return best


def grid(task: str, seeds: tuple[int, ...] = SEEDS) -> list[tuple[int, float]]:
    """Seed-major (seed, rate) members, as agents.make_population orders them."""
    return [(s, r) for s in seeds for r in RATES[task]]


def today_root(ref: str) -> str | None:
    """Unpack ``ref``'s agents/ and np_envs/ into a temporary folder; None for 'current'."""
    if ref == "current":
        return None
    if ref == "auto":
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "agents/population.py"],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
        if not added:
            raise SystemExit("no commit adds agents/population.py: pass --today-ref")
        ref = added[-1] + "^"
    folder = tempfile.mkdtemp(prefix="bench_population_today_")
    archive = subprocess.run(["git", "archive", "--format=tar", ref, "agents", "np_envs"],
                             cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


@dataclass
class Row:
    part: str
    case: str
    path: str
    value: float
    unit: str
    load: float
    note: str = ""


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool | None


class Bench:
    def __init__(self, args: argparse.Namespace, today: str | None) -> None:
        self.args = args
        self.quick = args.quick
        self.today = today
        self.today_name = "today" if today is not None else "today(current P=1)"
        self.rows: list[Row] = []
        self.verdicts: list[Verdict] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.part:<2} {row.case:<26} {row.path:<34} {row.value:>11.4g} {row.unit:<16} "
              f"load {row.load:4.2f} {row.note}", flush=True)

    # ------------------------------------------------------------------ (a), (b)
    def throughput(self, part: str, task: str, width: int, batch: int, updates: int,
                   repeats: int, target: float) -> None:
        members = grid(task)
        half = len(SEEDS) // 2
        split = [grid(task, SEEDS[:half]), grid(task, SEEDS[half:])]
        warm = 2 if updates > 4 else 1
        paths = {
            f"{self.today_name}: 2 procs x 8 single": Workers(
                "today", self.today,
                [Case(task, width, batch, [[m] for m in ms], torch_threads=1, warmup=warm)
                 for ms in split]),
            "pop16, 1 proc, 2 threads": Workers(
                "pop16-2t", None,
                [Case(task, width, batch, [members], torch_threads=2, num_threads=2,
                      warmup=warm)]),
            "pop16, 1 proc, auto threads": Workers(
                "pop16-auto", None,
                [Case(task, width, batch, [members], torch_threads=2, warmup=warm)]),
            "2 procs x pop8, 1 thread each": Workers(
                "pop8x2", None,
                [Case(task, width, batch, [ms], torch_threads=1, warmup=warm) for ms in split]),
        }
        try:
            names = list(paths)
            best = best_of([paths[n] for n in names], [updates] * len(names), repeats)
        finally:
            for path in paths.values():
                path.close()
        case = f"{task} w{width} B{batch} P16"
        rate = {}
        for name, (seconds, ld) in zip(names, best, strict=True):
            rate[name] = len(members) * updates / seconds
            self.add(Row(part, case, name, rate[name], "member-upd/s", ld,
                         f"({updates} upd/member, {seconds:.2f} s)"))
        base = rate[names[0]]
        winner = max(names[1:], key=lambda n: rate[n])
        ratio = rate[winner] / base
        self.add(Row(part, case, f"best population / {self.today_name}", ratio, "x", load(),
                     f"best: {winner}"))
        self.verdicts.append(Verdict(f"({part}) {case}: population >= {target:g}x today",
                                     f"{ratio:.2f}x ({winner})", ratio >= target))
        if part == "a":
            self.ceiling(case, split, task, width, batch, updates, base)

    def ceiling(self, case: str, split: list[list[tuple[int, float]]], task: str, width: int,
                batch: int, updates: int, today: float) -> None:
        """What the population path could reach with no environment and no loop at all: the
        rule's hooks alone (``_arithmetic_time``), two processes of 8 members at once. A ratio
        below the target here means the target needs faster products or noise, not less
        overhead around them."""
        path = Workers("pop8x2-hooks", None,
                       [Case(task, width, batch, [ms], torch_threads=1) for ms in split])
        try:
            seconds = max(path.ask("arith", updates))  # per update, each worker's best of 3
            floor = max(path.ask("floor", (updates, batch)))
        finally:
            path.close()
        members = sum(len(ms) for ms in split)
        rate = members / seconds
        self.add(Row("a", case, "2 procs x pop8: the hooks alone", rate, "member-upd/s", load(),
                     "no env, no loop: the products, noise and updates only"))
        self.add(Row("a", case, f"ceiling: hooks alone / {self.today_name}", rate / today, "x",
                     load(), "the most less overhead could give"))
        # the bound: every member's clean-pass products alone (no noise, no update), which any
        # implementation must compute
        self.add(Row("a", case, "2 procs x pop8: clean products alone", members / floor,
                     "member-upd/s", load(), "each member's weights read once per update"))
        self.add(Row("a", case, f"bound: clean products alone / {self.today_name}",
                     members / floor / today, "x", load(),
                     "one batched product per layer"))

    def part_a(self) -> None:
        q = self.quick
        reps = self.args.repeats or (1 if q else 3)
        self.throughput("a", "sarcos", 100, 100, 150 if q else 1500, reps, 3.0)
        self.throughput("a", "linear", 1000, 1, 150 if q else 1500, reps, 3.0)

    def part_b(self) -> None:
        q = self.quick
        reps = self.args.repeats or (1 if q else 3)
        self.throughput("b", "mnist", 100, 1000, 6 if q else 40, reps, 1.0)
        self.throughput("b", "mnist", 800, 1000, 1 if q else 4, reps, 1.0)

    # ------------------------------------------------------------------ (c)
    def part_c(self) -> None:
        q = self.quick
        reps = self.args.repeats or (2 if q else 7)
        cases = [("sarcos", 100, 100), ("sarcos", 800, 100), ("sarcos", 3200, 100),
                 ("mnist", 800, 1000), ("mnist", 3200, 1000)]
        if q:
            cases = [c for c in cases if c[1] != 3200]
        for task, width, batch in cases:
            base = {"sarcos": 100, "mnist": 6}[task] * (1 if q else 2)
            updates = max(2, base * 800 // width)
            member = [[(0, RATES[task][2])]]
            new = Workers("P=1", None, [Case(task, width, batch, member)])
            old = Workers("today", self.today, [Case(task, width, batch, member)])
            try:
                (t_new, l_new), (t_old, l_old) = best_of([new, old], [updates] * 2, reps)
                arith = new.ask("arith", updates)[0] if (task, width) == ("sarcos", 100) else None
            finally:
                new.close()
                old.close()
            case = f"{task} w{width} B{batch}"
            self.add(Row("c", case, "P=1 (population of one)", t_new / updates * 1e3,
                         "ms/update", l_new, f"({updates} upd, best of {reps})"))
            self.add(Row("c", case, f"{self.today_name} single agent", t_old / updates * 1e3,
                         "ms/update", l_old))
            ratio = t_new / t_old
            self.add(Row("c", case, f"P=1 / {self.today_name}", ratio, "x", load()))
            if width >= 800:
                self.verdicts.append(Verdict(f"(c) {case}: P=1 <= 1.05 x today",
                                             f"{ratio:.3f}", ratio <= 1.05))
            if arith is not None:
                per = t_new / updates
                self.add(Row("c", case, "P=1 arithmetic only (hooks)", arith * 1e3, "ms/update",
                             load()))
                self.add(Row("c", case, "P=1 overhead (update - arith)",
                             (per - arith) * 1e3, "ms/update", load(),
                             f"today's whole update {t_old / updates * 1e3:.3f} ms"))
                self.verdicts.append(Verdict(
                    f"(c) {case}: per-update time (report; issue: today 0.67 ms, <0.1 arith)",
                    f"P=1 {per * 1e3:.3f} ms (arith {arith * 1e3:.3f}), today "
                    f"{t_old / updates * 1e3:.3f} ms", None))

    # ------------------------------------------------------------------ (d)
    def part_d(self) -> None:
        q = self.quick
        reps = self.args.repeats or (2 if q else 7)
        cases = [("sarcos", 100, 100), ("sarcos", 800, 100), ("sarcos", 3200, 100),
                 ("mnist", 100, 1000), ("mnist", 800, 1000)]
        if q:
            cases = [c for c in cases if c[1] != 3200]
        for task, width, batch in cases:
            base = {"sarcos": 100, "mnist": 6}[task] * (1 if q else 2)
            updates = max(2, base * 800 // width)
            member = [[(0, RATES[task][0])]]
            np_path = Workers("np", None, [Case(task, width, batch, member)])
            sgd_path = Workers("sgd", None, [Case(task, width, batch, member, rule="sgd")])
            try:
                (t_np, l_np), (t_sgd, _) = best_of([np_path, sgd_path], [updates] * 2, reps)
            finally:
                np_path.close()
                sgd_path.close()
            case = f"{task} w{width} B{batch}"
            self.add(Row("d", case, "NP / SGD per update", t_np / t_sgd, "x", l_np,
                         f"NP {t_np / updates * 1e3:.3f} ms, SGD {t_sgd / updates * 1e3:.3f} ms"))
            self.verdicts.append(Verdict(f"(d) {case}: NP/SGD (report)",
                                         f"{t_np / t_sgd:.2f}", None))

    # ------------------------------------------------------------------ (e)
    def part_e(self) -> None:
        probe = Workers("probe", None, [Case("sarcos", 10, 10, [[(0, 1e-6)]], warmup=0)])
        try:
            cuda = probe.ask("cuda", None)[0]
        finally:
            probe.close()
        if not cuda:
            print("  e  skipped: torch.cuda.is_available() is False on this machine", flush=True)
            self.verdicts.append(Verdict("(e) GPU P=64 vs P=1", "skipped (no CUDA)", None))
            return
        updates = 3 if self.quick else 12
        reps = self.args.repeats or (2 if self.quick else 3)
        rates = np.geomspace(1e-5, 3e-4, 16).tolist()
        pop = [(s, r) for s in range(4) for r in rates]
        p64 = Workers("P=64", None, [Case("mnist", 800, 1000, [pop], device="cuda")])
        p1 = Workers("P=1", None, [Case("mnist", 800, 1000, [[pop[0]]], device="cuda")])
        try:
            (t64, l64), (t1, l1) = best_of([p64, p1], [updates] * 2, reps)
        finally:
            p64.close()
            p1.close()
        epochs = updates * 1000 / 60_000
        r64, r1 = 64 * epochs / t64, epochs / t1
        self.add(Row("e", "mnist w800 B1000 cuda", "P=64", r64, "member-epochs/s", l64))
        self.add(Row("e", "mnist w800 B1000 cuda", "P=1", r1, "member-epochs/s", l1))
        self.verdicts.append(Verdict("(e) GPU P=64 / P=1 member-epochs/s", f"{r64 / r1:.1f}x",
                                     None))

    # ------------------------------------------------------------------ hand-over
    def part_h(self) -> None:
        updates = 10 if self.quick else 60
        reps = self.args.repeats or (2 if self.quick else 5)
        path = Workers("handover", None, [Case("mnist", 100, 1000, [grid("mnist")])])
        try:
            t = path.ask("handover", (updates, reps))[0]
        finally:
            path.close()
        case = "mnist w100 B1000 P16"
        ld = load()
        total = t["total"]
        t["scoring"] = t["step"] - t["draw"]
        for key, label in (("step", "env.step (x2 per update)"),
                           ("draw", "  of which: next batch (G, B, obs)"),
                           ("scoring", "  of which: scoring P x B answers"),
                           ("to_groups", "to_groups (obs)"),
                           ("to_numpy", "to_numpy (actions, x2)"),
                           ("rewards", "reward_coefficients")):
            self.add(Row("h", case, label, t[key] * 1e3, "ms/update", ld,
                         f"{100 * t[key] / total:.1f} % of {total * 1e3:.2f} ms"))
        # the hand-over: the batch drawn and passed to the learners, the answers passed back;
        # scoring the answers (the rewards) is the task's own work, reported beside it
        share = (t["draw"] + t["to_groups"] + t["to_numpy"]) / total
        whole = (t["step"] + t["to_groups"] + t["to_numpy"]) / total
        self.add(Row("h", case, "hand-over share", 100 * share, "%", ld,
                     "next batch + to_groups + to_numpy"))
        self.add(Row("h", case, "env share (with scoring)", 100 * whole, "%", ld,
                     "env.step + to_groups + to_numpy"))
        self.verdicts.append(Verdict(f"(h) {case}: data hand-over <= 5 %",
                                     f"{100 * share:.1f} %", share <= 0.05))
        self.verdicts.append(Verdict(f"(h) {case}: env step incl. scoring + conversions "
                                     "(report)", f"{100 * whole:.1f} %", None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c,d,e,h",
                        help="comma-separated parts: a,b,c,d,e,h (default all)")
    parser.add_argument("--quick", action="store_true", help="few updates and repeats (smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best kept)")
    parser.add_argument("--today-ref", default="auto",
                        help="git ref of today's code ('auto': before agents/population.py; "
                             "'current': the working tree's single agents)")
    args = parser.parse_args()
    os.environ.setdefault("NP_ENVS_DATA", str(SHARED_DATA))
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set("abcdeh")
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    needs_today = bool({"a", "b", "c"} & set(parts))
    today = today_root(args.today_ref) if needs_today else None
    bench = Bench(args, today)
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; today = "
          f"{args.today_ref if today else 'current working tree'}"
          f"{f' ({today})' if today else ''}; {'quick' if args.quick else 'full'} mode",
          flush=True)
    start = time.perf_counter()
    try:
        for part in parts:
            print(f"part {part} (load {load():.2f})", flush=True)
            getattr(bench, f"part_{part}")()
    finally:
        if today is not None:
            shutil.rmtree(today, ignore_errors=True)
    print(f"\nresults ({time.perf_counter() - start:.0f} s, load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    print(f"{'part':<4} {'case':<26} {'path':<34} {'value':>11} {'unit':<16} {'load':>5}  note")
    for r in bench.rows:
        print(f"{r.part:<4} {r.case:<26} {r.path:<34} {r.value:>11.4g} {r.unit:<16} "
              f"{r.load:>5.2f}  {r.note}")
    print("\ntargets")
    for v in bench.verdicts:
        mark = {True: "MET", False: "NOT MET", None: "report"}[v.met]
        print(f"  {mark:<8} {v.target}: {v.measured}")


if __name__ == "__main__":
    main()
