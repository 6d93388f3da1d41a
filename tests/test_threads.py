"""numpy work split by rows over threads (np_envs/threads.py) must give the serial numbers.

The population env scores its P x B answers and decodes each group's MNIST batch in blocks of
rows on several threads when the work is big. These tests force the split on any machine (a
core share of 4, no minimum block cost) and compare with the same env run serially (a core
share of 1), bit for bit, including diverged members (NaN, inf) whose scoring warns nowhere.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import warnings

import numpy as np
import pytest
from conftest import needs_mnist

import np_envs  # noqa: F401  (registers the ids)
from np_envs import threads
from np_envs.envs.population import make_population_env
from np_envs.threads import CORES_PER_PROCESS_ENV, for_row_blocks, row_blocks


@pytest.fixture
def four_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every row loop in 4 blocks, whatever the machine and the work's size."""
    monkeypatch.setattr(threads, "_machine_cores", lambda: 4)
    monkeypatch.setenv(CORES_PER_PROCESS_ENV, "4")
    monkeypatch.setattr(threads, "BLOCK_MIN_NS", 1)


def test_row_blocks_cover_the_rows_within_the_core_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_machine_cores", lambda: 8)
    monkeypatch.setenv(CORES_PER_PROCESS_ENV, "3")
    big = 100 * threads.BLOCK_MIN_NS
    for rows in (1, 2, 3, 10, 1000):
        blocks = row_blocks(rows, big)
        assert blocks[0][0] == 0 and blocks[-1][1] == rows
        assert all(lo < hi for lo, hi in blocks)
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
        assert len(blocks) == min(3, rows)
    assert row_blocks(1000, threads.BLOCK_MIN_NS * 2.5) == [(0, 500), (500, 1000)]
    assert row_blocks(1000, threads.BLOCK_MIN_NS / 2) == [(0, 1000)]  # not worth a thread
    monkeypatch.setenv(CORES_PER_PROCESS_ENV, "1")  # a sweep worker with one core
    assert row_blocks(1000, big) == [(0, 1000)]


def test_every_block_is_done_before_an_error_is_raised(four_threads: None) -> None:
    done: list[int] = []
    lock = threading.Lock()

    def work(lo: int, hi: int) -> None:
        if lo == 0:
            raise ValueError("block 0 failed")
        with lock:
            done.append(lo)

    with pytest.raises(ValueError, match="block 0 failed"):
        for_row_blocks(work, 8, 1e9)
    assert sorted(done) == [2, 4, 6]

    def late_failure(lo: int, hi: int) -> None:
        if lo == 6:
            raise RuntimeError("block 3 failed")

    with pytest.raises(RuntimeError, match="block 3 failed"):
        for_row_blocks(late_failure, 8, 1e9)


def _run_population(member_groups: list[int], steps: int = 4) -> list[np.ndarray]:
    """Every array a population env hands out over a few trials, for fixed answers."""
    env = make_population_env("NPMNIST-v0", 64, member_groups, evals_per_input=2)
    groups = max(member_groups) + 1
    obs, _ = env.reset(seed=list(range(groups)))
    seen = [obs.copy()]
    rng = np.random.default_rng(5)
    for t in range(steps):
        actions = 3.0 * rng.standard_normal((len(member_groups), 64, 10))
        actions[1, 7, 3] = np.nan  # a diverged member: NaN rewards, the others scored
        if t == 2:
            actions[2, 9, 0] = np.inf  # inf - inf in the softmax: silenced, member flagged
        obs, rewards, _, _, info = env.step(actions if t == 2 else actions.astype(np.float32))
        seen += [obs.copy(), rewards, info["mse"], info["correct"], info["finite"]]
    return seen


@needs_mnist
@pytest.mark.parametrize("member_groups", [[0, 0, 0, 1, 1, 1], [0, 1, 1, 2, 0, 2]],
                         ids=["grid", "irregular"])
def test_population_scores_and_draws_the_same_on_threads(
    member_groups: list[int], four_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a worker thread's overflow must be silenced too
        split = _run_population(member_groups)
        monkeypatch.setenv(CORES_PER_PROCESS_ENV, "1")
        serial = _run_population(member_groups)
    assert len(split) == len(serial)
    for a, b in zip(split, serial, strict=True):
        np.testing.assert_array_equal(a, b)
    # each step adds obs, rewards, mse, correct, finite
    assert split[5].tolist() == [True, False, True, True, True, True]
    assert split[15].tolist() == [True, False, False, True, True, True]
    assert np.isnan(split[12][2]).all() and np.isfinite(split[12][3:]).all()


def _child(conn: mp.connection.Connection) -> None:
    out = np.zeros(8)

    def work(lo: int, hi: int) -> None:
        out[lo:hi] = np.arange(lo, hi)

    for_row_blocks(work, 8, 1e9)
    conn.send(out.tolist())


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_makes_its_own_threads(four_threads: None) -> None:
    """The parent's threads do not exist in a forked child: reusing its pool would hang."""
    for_row_blocks(lambda lo, hi: None, 8, 1e9)  # the parent's pool exists
    parent, child = mp.get_context("fork").Pipe()
    proc = mp.get_context("fork").Process(target=_child, args=(child,))
    proc.start()
    assert parent.poll(60), "the forked child hung on the parent's thread pool"
    assert parent.recv() == list(range(8))
    proc.join(10)
    assert proc.exitcode == 0
