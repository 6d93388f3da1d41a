"""One output folder, one writer: a second command on a busy --out exits 3 at once (or waits
with --wait), and tables never count a partial run as finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from np_envs.cli.main import main
from np_envs.experiments.compare import write_compare_outputs
from np_envs.experiments.outlock import OWNER_NAME, hold_out_folder
from np_envs.experiments.sweep import write_sweep_outputs

ROOT = Path(__file__).resolve().parents[1]
LINEAR = "NPLinearTeacher-v0"
SMALL = ["compare", "--env", LINEAR, "--agents", "sgd", "--trials", "20", "--seeds", "1",
         "--hidden", "8", "--num-envs", "4", "--no-progress", "--no-plots"]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _wait_for_owner(out: Path, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while not (out / OWNER_NAME).is_file():
        assert proc.poll() is None, "the first command ended before it held the folder"
        assert time.monotonic() < deadline, "the first command never took the folder"
        time.sleep(0.05)
    return json.loads((out / OWNER_NAME).read_text())


def test_a_second_command_on_a_busy_out_exits_3_and_computes_nothing(tmp_path, capsys):
    out = tmp_path / "busy"
    first = _start(["-m", "np_envs.cli.main", "compare", "--env", LINEAR, "--agents", "np",
                    "--trials", "1000000", "--seeds", "1", "--hidden", "8", "--num-envs", "4",
                    "--no-progress", "--no-plots", "--out", str(out)])
    try:
        owner = _wait_for_owner(out, first)
        assert owner["pid"] == first.pid
        assert main([*SMALL, "--out", str(out)]) == 3
        err = capsys.readouterr().err
        assert f"--out {out} is in use by pid {first.pid}" in err and "--wait" in err
        runs = [p.name for p in (out / "runs").glob("*")] if (out / "runs").is_dir() else []
        assert not any(name.startswith("sgd") for name in runs)  # never started
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the kernel released the dead holder's lock: the folder is free at once
    with hold_out_folder(out):
        pass


def test_wait_starts_when_the_holder_is_done(tmp_path, capsys):
    out = tmp_path / "queued"
    holder = _start(["-c", "import sys, time\n"
                           "from np_envs.experiments.outlock import hold_out_folder\n"
                           "with hold_out_folder(sys.argv[1]):\n"
                           "    print('held', flush=True); time.sleep(3)\n", str(out)])
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*SMALL, "--out", str(out), "--wait"]) == 0
        assert holder.poll() is not None, "the second command did not wait for the first"
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "in use by pid" in err and "waiting for it to finish" in err
    assert (out / "summary.csv").is_file() and not (out / OWNER_NAME).exists()


def _result(run_id: str, accuracies: list[float], status: str) -> dict:
    rows = [{"run_id": run_id, "label": "np", "agent": "np", "seed": int(run_id[-1]),
             "chunk": i, "epoch": float(i), "samples": 100 * i, "test_accuracy": acc,
             "test_mse": 0.1, "diverged": False, "hidden": "100", "lr": 1e-4}
            for i, acc in enumerate(accuracies)]
    return {"run_id": run_id, "rows": rows, "status": status}


def test_tables_count_finished_runs_only_and_list_the_others(tmp_path):
    """A run another process still computes (62.9 % so far) must not enter the table as final;
    the finished one (91.6 %) alone makes it, and the other is listed as unfinished."""
    results = [_result("np-s0", [10.0, 80.0, 91.6], "done"),
               _result("np-s1", [10.0, 62.9], "busy"),
               _result("np-s2", [10.0, 50.0], "failed")]
    summary = write_compare_outputs(tmp_path, results, "accuracy", None, draw=False)
    data = json.loads((tmp_path / "summary.json").read_text())
    (group,) = data["groups"]
    assert group["seeds"] == 1 and group["final_mean"] == 91.6
    assert [u["run_id"] for u in data["unfinished"]] == ["np-s1", "np-s2"]
    assert summary["unfinished"][0]["status"] == "busy"
    assert "np-s1 (busy)" in (tmp_path / "summary.md").read_text()
    assert "62.9" not in (tmp_path / "runs.csv").read_text()

    sweep = write_sweep_outputs(tmp_path / "sweep", results, "accuracy", 90.0, draw=False)
    assert [r["run_id"] for r in sweep["runs"]] == ["np-s0"]
    assert len(sweep["unfinished"]) == 2
