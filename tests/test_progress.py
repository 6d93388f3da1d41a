"""Progress output: one line per job, never nested bars; plain lines (one per finished chunk and
one per finished job) when stderr is not a terminal, so a log file holds no bar frames; nothing
at all with ``--no-progress``."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from np_envs.experiments.executor import JobProgress
from np_envs.experiments.population_job import Job
from np_envs.experiments.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
# 2 agents x 2 seeds: 2 population jobs of 6 chunks (600 trials, evaluated every 100)
COMPARE = ["compare", "--env", "NPLinearTeacher-v0", "--agents", "np,sgd", "--hidden", "16",
           "--seeds", "2", "--trials", "600", "--eval-every", "100", "--num-envs", "8",
           "--no-plots"]
CHUNKS = 6
CHUNK_LINE = re.compile(r"^\[job (\d+)/(\d+)\] (\S+) chunk (\d+)/(\d+)$")
DONE_LINE = re.compile(r"^\[job (\d+)/(\d+)\] (\S+) done: .* in \d+s$")
#: lines outside the jobs' own: the plan
MAX_FIXED_LINES = 3


def _compare_stderr(out: Path, extra: list[str]) -> str:
    """Run ``compare`` with stderr redirected to a file (not a terminal); its stderr."""
    err = out.with_suffix(".err")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(err, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "np_envs.cli.main", *COMPARE, "--out",
                               str(out), *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=fh, timeout=300)
    text = err.read_text()
    assert proc.returncode == 0, text
    return text


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_redirected_compare_writes_plain_lines(tmp_path: Path, jobs: str) -> None:
    """In this process (jobs 1) and from pool workers (jobs 2, polled checkpoints): no bar
    frames, at most one line per chunk per job, exactly one closing line per job."""
    text = _compare_stderr(tmp_path / "cmp", ["--jobs", jobs])
    assert "\r" not in text and "\x1b" not in text, text
    lines = text.splitlines()
    chunks: dict[str, list[int]] = {}
    done: dict[str, int] = {}
    fixed = []
    for line in lines:
        if m := CHUNK_LINE.match(line):
            assert int(m[2]) == 2 and int(m[5]) == CHUNKS, line
            chunks.setdefault(m[3], []).append(int(m[4]))
        elif m := DONE_LINE.match(line):
            done[m[3]] = done.get(m[3], 0) + 1
        else:
            fixed.append(line)
    assert len(fixed) <= MAX_FIXED_LINES, text
    assert len(done) == 2 and set(done.values()) == {1}, text
    assert set(chunks) <= set(done), text
    for job, seen in chunks.items():
        assert seen == sorted(set(seen)) and all(1 <= c <= CHUNKS for c in seen), (job, text)
    if jobs == "1":  # in process every chunk is reported, in order, before the job's end
        assert all(seen == list(range(1, CHUNKS + 1)) for seen in chunks.values()), text
        assert len(chunks) == 2
    # rerun: every job is finished, so no job line at all
    again = _compare_stderr(tmp_path / "cmp", ["--jobs", jobs])
    assert "[job " not in again and len(again.splitlines()) <= MAX_FIXED_LINES, again


def test_no_progress_prints_no_job_lines(tmp_path: Path) -> None:
    text = _compare_stderr(tmp_path / "cmp", ["--no-progress"])
    assert "[job " not in text and "\r" not in text, text


def _jobs(n: int) -> list[Job]:
    return [Job((RunSpec("NPLinearTeacher-v0", "np", s, 600, 100, unit="trials"),), False)
            for s in range(n)]


def test_plain_lines_once_per_chunk() -> None:
    """A chunk seen twice (a poll) is one line; chunk 0 (the evaluation before training) and a
    resumed job's committed chunks are none."""
    buf = io.StringIO()
    progress = JobProgress(_jobs(2), stream=buf, terminal=False)
    assert progress.mode == "lines"
    progress.start(0)
    for chunk in (0, 1, 1, 3, 2, 6):
        progress.chunk(0, chunk)
    progress.finish(0, [{"status": "done"}])
    progress.start(1, chunk=4)  # resumed after chunk 4
    progress.chunk(1, 4)
    progress.chunk(1, 5, 6)
    progress.finish(1, [{"status": "diverged"}])
    progress.close()
    name0, name1 = (f"[job {i + 1}/2] {j.job_id}" for i, j in enumerate(_jobs(2)))
    lines = buf.getvalue().splitlines()
    assert lines[:3] == [f"{name0} chunk 1/6", f"{name0} chunk 3/6", f"{name0} chunk 6/6"]
    assert re.fullmatch(re.escape(name0) + r" done: 1 run \(1 done\) in \d+s", lines[3])
    assert lines[4] == f"{name1} chunk 5/6"
    assert re.fullmatch(re.escape(name1) + r" done: 1 run \(1 diverged\) in \d+s", lines[5])
    assert len(lines) == 6


def test_a_job_that_ends_before_it_was_seen_took_0s() -> None:
    """A pool job can finish before any poll saw it start: its line says 0 s, never -0 s."""
    buf = io.StringIO()
    progress = JobProgress(_jobs(1), stream=buf, terminal=False)
    progress.finish(0, [{"status": "done"}])
    assert buf.getvalue().rstrip("\n").endswith(" in 0s"), buf.getvalue()


def test_terminal_bars_one_per_running_job() -> None:
    """On a terminal: a bar per running job, none for a queued one, no nested "runs" bar; a
    finished job's bar becomes its closing line."""
    buf = io.StringIO()
    progress = JobProgress(_jobs(3), stream=buf, terminal=True)
    assert progress.mode == "bars"
    progress.start(0)
    progress.chunk(1, 0)  # a polled job that wrote its first checkpoint
    progress.chunk(0, 2, 6)
    bars = progress._progress()
    assert [t.description.split()[1] for t in bars.tasks] == ["1/3]", "2/3]"]
    assert [t.completed for t in bars.tasks] == [2, 0]
    progress.finish(0, [{"status": "done"}])
    assert [t.description.split()[1] for t in bars.tasks] == ["2/3]"]
    progress.close()
    text = buf.getvalue()
    assert "runs" not in text.replace("1 run ", "")
    assert re.search(r"\[job 1/3\] \S+ done: 1 run \(1 done\) in \d+s\n", text), text
    assert "[job 3/3]" not in text


def test_disabled_is_silent() -> None:
    buf = io.StringIO()
    progress = JobProgress(_jobs(1), enabled=False, stream=buf, terminal=True)
    progress.start(0)
    progress.chunk(0, 3, 6)
    progress.finish(0, [{"status": "done"}])
    progress.close()
    assert progress.mode == "off" and buf.getvalue() == ""
