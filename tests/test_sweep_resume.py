"""Sweeps lose nothing: SIGKILL of a population sweep midway and rerun gives the uninterrupted
table; divergence is recorded while the others finish; Ray gives the local backend's table."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import alive, children, committed_chunk, population_jobs

from np_envs.cli.main import main
from np_envs.experiments.config import Settings
from np_envs.experiments.results import RunFolder, read_jsonl
from np_envs.experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
LINEAR = "NPLinearTeacher-v0"
SWEEP = ["sweep", "--env", LINEAR, "--agents", "np", "--hidden", "32",
         "--lrs", "0.3eta*,0.6eta*,60eta*", "--seeds", "2", "--target", "1.0",
         "--budget-trials", "600", "--eval-every", "50", "--num-envs", "8", "--no-progress",
         "--no-plots"]
MIDWAY_MAX_CHUNK = 6  # of 600 / 50 = 12 chunks per run


def _tables(out: Path) -> dict:
    """sweep.json and every row, without wall times (the only thing allowed to differ)."""
    data = json.loads((out / "sweep.json").read_text())
    for run in data["runs"]:
        run.pop("wall_time")
    rows = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_jsonl(
        out / "rows.jsonl")]
    data["rows"] = sorted(rows, key=lambda r: (r["run_id"], r["chunk"]))
    return data


def _runs(out: Path) -> list[RunFolder]:
    return [RunFolder(p) for p in sorted((out / "runs").glob("*")) if p.is_dir()]


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path, capsys):
    ref = tmp_path / "ref"
    assert main([*SWEEP, "--out", str(ref), "--jobs", "1"]) == 0  # in process, sequential

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "np_envs.cli.main", *SWEEP, "--out", str(out), "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    workers: set[int] = set()
    try:
        while True:  # kill once a population job is midway
            assert proc.poll() is None, "the sweep finished before it could be killed"
            assert time.monotonic() < deadline, "no job got midway"
            workers.update(children(proc.pid))
            # midway: a chunk committed and half the job still to go, so that it cannot
            # finish between this check and the kill
            if any(1 <= committed_chunk(job) <= MIDWAY_MAX_CHUNK for job in population_jobs(out)):
                break
            time.sleep(0.02)
        workers.update(children(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its workers must not live on
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    t_end = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < t_end:
        time.sleep(0.05)
    assert workers and not any(alive(w) for w in workers), "orphan workers kept running"

    before = {f.path.name: (f.done_file.stat().st_mtime_ns, len(f.attempts()))
              for f in _runs(out) if f.is_done}
    committed = {job.name: committed_chunk(job) for job in population_jobs(out)}

    def final_row_committed(f: RunFolder) -> bool:
        """Its diverged row is in its job's last checkpoint: the kill came between the commit
        and the ``done`` marker, so the run is finished, only not yet marked."""
        rows = f.rows()
        return bool(rows) and bool(rows[-1].get("diverged")) and \
            rows[-1]["chunk"] <= committed.get(f.attempts()[-1]["job"], -1)

    unmarked = {f.path.name: len(f.attempts()) for f in _runs(out)
                if not f.is_done and f.attempts() and final_row_committed(f)}
    midway = {f.path.name for f in _runs(out) if not f.is_done and f.attempts()
              and committed.get(f.attempts()[-1]["job"], -1) >= 1
              and not final_row_committed(f)}
    assert midway

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = {f.path.name: f for f in _runs(out)}
    for name, (mtime, attempts) in before.items():  # finished runs are never recomputed
        assert after[name].done_file.stat().st_mtime_ns == mtime
        assert len(after[name].attempts()) == attempts
    for name, attempts in unmarked.items():  # marked done on resume, never recomputed
        assert after[name].is_done and len(after[name].attempts()) == attempts
    for name in midway:  # unfinished ones resumed from their job's checkpoint
        assert any(a["resumed"] and a["start_chunk"] > 1 for a in after[name].attempts())
    assert "population job" in rerun.stderr
    assert all(f.is_done for f in after.values()) and len(after) == 6
    for job in population_jobs(out):  # the 60 eta* member left each job when it diverged
        state = json.loads((job / "checkpoint" / "state.json").read_text())
        assert len(state["members"]) == 2
    assert _tables(out) == _tables(ref)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_diverging_rate_is_recorded_and_the_others_finish(tmp_path):
    settings = Settings(LINEAR, budget=100, unit="trials", eval_every=20, num_envs=8,
                        target=3.0)
    result = run_sweep(settings, ["np"], [(16,)], ["0.5eta*", "60eta*"], [0, 1], tmp_path,
                       progress=False, quiet=True)
    by_lr = sorted(result["per_lr"], key=lambda r: r["lr"])
    assert by_lr[0]["diverged"] == 0 and by_lr[0]["final_mean"] is not None
    assert by_lr[1]["diverged"] == 2 and by_lr[1]["diverged_at_mean"] is not None
    assert by_lr[1]["diverged_at_mean"] < 100 * 8
    statuses = sorted(r["status"] for r in result["results"])
    assert statuses == ["diverged", "diverged", "done", "done"]
    (best,) = result["best"]
    assert best["best_lr"] == by_lr[0]["lr"] and best["diverged_lrs"] == 1
    for name in ("sweep.csv", "sweep_lr.csv", "sweep_runs.csv", "sweep_time_to_target.png",
                 "sweep_learning_rates.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_ray_backend_gives_the_local_table(tmp_path):
    pytest.importorskip("ray")
    settings = Settings(LINEAR, budget=60, unit="trials", eval_every=20, num_envs=8,
                        target=2.0)
    grid = (["np", "sgd"], [(16,)], ["0.5eta*", "0.9eta*"], [0])
    local = run_sweep(settings, *grid, tmp_path / "local", progress=False, quiet=True)
    ray_run = run_sweep(settings, *grid, tmp_path / "ray", backend="ray", jobs=2,
                        progress=False, quiet=True)
    assert all(r["computed"] for r in ray_run["results"])
    assert _tables(tmp_path / "ray") == _tables(tmp_path / "local")
    assert local["best"] == ray_run["best"]


def _member_rows(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in read_jsonl(out / "rows.jsonl"):
        rows.setdefault(row["run_id"], []).append(
            {k: v for k, v in row.items() if k != "wall_time"})
    return {run: sorted(r, key=lambda row: row["chunk"]) for run, r in rows.items()}


def _close(a: dict, b: dict) -> bool:
    """The same keys and values, floats to 1e-9 relative."""
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(b[k], float) else a[k] == b[k]
        for k in b)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_job_drops_its_diverged_members_and_the_others_do_not_notice(tmp_path):
    """The diverging rate's members leave the population at their last row; the other
    members' rows equal those of a sweep that never had them (to 1e-9: a population of 4 and
    one of 2 batch their products differently, which rounds differently in the last bits),
    and the job's last checkpoint holds only the members still learning."""
    settings = Settings(LINEAR, budget=100, unit="trials", eval_every=20, num_envs=8,
                        target=3.0)
    both = run_sweep(settings, ["np"], [(16,)], ["0.5eta*", "60eta*"], [0, 1],
                     tmp_path / "both", progress=False, quiet=True)
    run_sweep(settings, ["np"], [(16,)], ["0.5eta*"], [0, 1], tmp_path / "alone",
              progress=False, quiet=True)
    diverged = {r["run_id"] for r in both["results"] if r["status"] == "diverged"}
    assert len(diverged) == 2
    with_them, without = _member_rows(tmp_path / "both"), _member_rows(tmp_path / "alone")
    assert set(without) == set(with_them) - diverged
    for run, rows in without.items():  # equal up to the rounding of a different layout
        assert len(with_them[run]) == len(rows)
        assert all(_close(a, b) for a, b in zip(with_them[run], rows, strict=True))
    (job,) = population_jobs(tmp_path / "both")
    state = json.loads((job / "checkpoint" / "state.json").read_text())
    assert len(state["members"]) == 2  # of 4: the diverged pair was dropped
