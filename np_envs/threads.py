"""The cores a process may use, and numpy work split over them by rows.

Why: while torch waits for ``env.step``, a population's environment scores P x B answers and
draws the next batch of every group (on MNIST at P=16, B=1000: ~15 % of an update, on one core
while the other idles). numpy releases the GIL inside its loops, so independent rows can be
worked on by several threads at once; every row is computed by the same operations either way,
so the numbers do not depend on the split.

How many cores: the experiment runner tells its worker processes their share
(``NP_ENVS_CORES_PER_PROCESS``: a process pool of N workers on C cores gives each C // N, Ray
tasks 1), so a sweep that already fills every core with processes never adds threads.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: set by the experiment runner in its worker processes: the cores one worker may use
CORES_PER_PROCESS_ENV = "NP_ENVS_CORES_PER_PROCESS"
#: the least work per thread worth a thread's hand-off (~20-50 us), in estimated nanoseconds
BLOCK_MIN_NS = 300_000

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_threads() -> None:
    """In a forked child: the parent's threads (and maybe a held lock) did not come along."""
    global _lock, _pool, _pool_size
    _lock, _pool, _pool_size = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


@functools.cache
def _machine_cores() -> int:
    """``os.cpu_count()``, asked once: it reads /sys on every call (~6 us, measured), and the
    environments ask per step."""
    return os.cpu_count() or 1


def cores_per_process() -> int:
    """Cores this process may use: the runner's share for its workers, else the machine's."""
    cores = _machine_cores()
    try:
        share = int(os.environ.get(CORES_PER_PROCESS_ENV, cores))
    except ValueError:
        share = cores
    return max(1, min(cores, share))


def row_blocks(rows: int, cost_ns: float) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` blocks of ``rows`` rows: one per core this process may use, at
    most one per ``BLOCK_MIN_NS`` of the work's estimated cost, never empty."""
    if cost_ns < 2 * BLOCK_MIN_NS:  # one block whatever the cores (most steps: a small batch)
        return [(0, rows)]
    count = max(1, min(cores_per_process(), rows, int(cost_ns // BLOCK_MIN_NS)))
    size = -(-rows // count)
    return [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]


def _threads(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="np-envs-rows")
            _pool_size = workers
        return _pool


def for_row_blocks(work: Callable[[int, int], None], rows: int, cost_ns: float) -> None:
    """``work(lo, hi)`` for every block of :func:`row_blocks`; the first block in the calling
    thread, the others on threads; returns when all are done and re-raises the first error.

    ``work`` must only touch its own rows. numpy's error state (``np.errstate``) is per
    thread: a block that needs one must enter it itself.
    """
    blocks = row_blocks(rows, cost_ns)
    if len(blocks) == 1:
        work(0, rows)
        return
    pool = _threads(len(blocks) - 1)
    futures = [pool.submit(work, lo, hi) for lo, hi in blocks[1:]]
    try:
        work(*blocks[0])
    finally:
        for future in futures:
            future.exception()  # wait for every block before anything is reported or reused
    for future in futures:
        future.result()
