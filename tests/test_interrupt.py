"""Ctrl-C and SIGTERM stop ``compare``/``sweep`` cleanly: no new run starts, the workers are
gone, the tables list what did not finish, the last line says how to resume, exit code 130
(143 for SIGTERM), no traceback; a rerun finishes with the uninterrupted table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import alive, committed_chunk, descendants, population_jobs

from np_envs.cli.main import main
from np_envs.experiments.stopping import INTERRUPTED_LINE

ROOT = Path(__file__).resolve().parents[1]
LINEAR = "NPLinearTeacher-v0"
SWEEP = ["sweep", "--env", LINEAR, "--agents", "np", "--hidden", "32",
         "--lrs", "0.3eta*,0.6eta*", "--seeds", "2", "--target", "1.0",
         "--budget-trials", "600", "--eval-every", "50", "--num-envs", "8", "--no-progress",
         "--no-plots"]
STOP_WITHIN_S = 10.0
GONE_WITHIN_S = 5.0


def _tables(out: Path) -> dict:
    data = json.loads((out / "sweep.json").read_text())
    for run in data["runs"]:
        run.pop("wall_time")
    return data


def _signal_once(cmd: list[str], ready: Callable[[], bool], sig: int,
                 group: bool = False) -> tuple[subprocess.CompletedProcess, float, set[int]]:
    """Start the command, send ``sig`` once ``ready()`` (to its whole process group with
    ``group``, as a terminal's Ctrl-C); (result, seconds from the signal to the exit, every
    process the driver had started)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=group)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, "the command finished before it could be stopped"
            assert time.monotonic() < deadline, "the command never got midway"
            seen |= descendants(proc.pid)
            time.sleep(0.02)
        seen |= descendants(proc.pid)
        t0 = time.monotonic()
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, output, ""), took, seen


def _stop_midway(out: Path, sig: int, extra: list[str]) -> tuple[subprocess.CompletedProcess,
                                                                  float, set[int]]:
    """The sweep, stopped by ``sig`` once a job has committed a chunk."""
    cmd = [sys.executable, "-m", "np_envs.cli.main", *SWEEP, "--out", str(out), *extra]
    return _signal_once(cmd, lambda: any(1 <= committed_chunk(job) <= 6
                                         for job in population_jobs(out)), sig)


def _assert_all_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    assert not left, f"processes left {GONE_WITHIN_S} s after the driver exited: {left}"


def test_sigint_stops_the_sweep_and_a_rerun_finishes_it(tmp_path):
    ref = tmp_path / "ref"
    assert main([*SWEEP, "--out", str(ref), "--jobs", "1"]) == 0

    out = tmp_path / "stopped"
    result, took, workers = _stop_midway(out, signal.SIGINT, ["--jobs", "2"])
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert result.returncode == 130, result.stdout[-2000:]
    assert took < STOP_WITHIN_S
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    assert lines[-1] == INTERRUPTED_LINE
    assert workers, "the sweep started no worker process"
    _assert_all_gone(workers)
    # what did not finish is listed, never summarised from its rows so far
    data = json.loads((out / "sweep.json").read_text())
    unfinished = data.get("unfinished")
    assert unfinished, "sweep.json does not say which runs did not finish"
    assert {u["status"] for u in unfinished} == {"interrupted"}
    assert not ({r["run_id"] for r in data["runs"]} & {u["run_id"] for u in unfinished})

    cmd = [sys.executable, "-m", "np_envs.cli.main", *SWEEP, "--out", str(out), "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]  # the same command resumes
    resumed = [json.loads(line) for f in (out / "runs").glob("*/attempts.jsonl")
               for line in f.read_text().splitlines() if line.strip()]
    assert any(a.get("resumed") and a.get("start_chunk", 0) > 1 for a in resumed)
    assert _tables(out) == _tables(ref)


def test_sigterm_stops_an_inline_sweep_with_143(tmp_path):
    result, took, _ = _stop_midway(tmp_path / "out", signal.SIGTERM, ["--jobs", "1"])
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert result.returncode == 143, result.stdout[-2000:]
    assert took < STOP_WITHIN_S
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    assert lines[-1] == INTERRUPTED_LINE


@pytest.mark.slow
def test_sigint_stops_a_ray_sweep_and_leaves_no_ray_process(tmp_path):
    pytest.importorskip("ray")
    result, took, started = _stop_midway(tmp_path / "out", signal.SIGINT,
                                         ["--backend", "ray", "--jobs", "2"])
    assert result.returncode == 130, result.stdout[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    assert [ln for ln in result.stdout.splitlines() if ln.strip()][-1] == INTERRUPTED_LINE
    assert took < STOP_WITHIN_S
    _assert_all_gone(started)


THEORY = ["theory", "--Lx", "20", "--Lh", "200", "--Ly", "5", "--lr-ratio", "0.3,0.5,0.7",
          "--steps", "4000", "--simulate", "--seeds", "2", "--jobs", "2"]


def test_ctrl_c_stops_theory_simulate_and_a_rerun_keeps_the_finished_rates(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) once a rate is
    cached: exit 130, no traceback, the workers gone; the rerun simulates only the rest."""
    out = tmp_path / "theory"
    cmd = [sys.executable, "-m", "np_envs.cli.main", *THEORY, "--out", str(out)]
    cache = out / "sim_cache"
    result, took, seen = _signal_once(  # once one rate (two seeds) is cached
        cmd, lambda: len(list(cache.glob("*.npz"))) >= 2, signal.SIGINT, group=True)
    output = result.stdout
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert result.returncode == 130, output[-2000:]
    assert took < STOP_WITHIN_S
    assert "Traceback" not in output, output[-3000:]
    assert lines[-1] == INTERRUPTED_LINE
    assert seen, "theory started no worker process"
    _assert_all_gone(seen)
    finished = len(list(cache.glob("*.npz")))
    assert finished in (2, 4)  # whole rates only

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.count("seeds as one population") == 3 - finished // 2
    assert len(list(cache.glob("*.npz"))) == 6
