"""Stopping a command on Ctrl-C / SIGTERM, and the local process pool that stops with it.

Why a module of its own: every long command (``compare``, ``sweep``, ``theory --simulate``)
stops the same way, and this must not import torch or the agents, so that a command that never
trains (``np-envs theory`` without ``--simulate``) starts in a fraction of a second.

The first SIGINT/SIGTERM raises :class:`Interrupted` in the driver (within
:func:`stop_on_signals`); a second exits at once. :func:`process_pool` gives ``spawn`` workers
that ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; the driver alone
decides), die with the driver (``PR_SET_PDEATHSIG``, else a watcher thread) and are killed at
once when the driver leaves the pool by an error or a signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

#: the line a stopped command prints last
INTERRUPTED_LINE = "interrupted: rerun the same command to resume"
#: the signals that stop a command, and the exit code of each (128 + the signal number)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: seconds a killed pool worker gets to be gone before we move on
_STOP_WAIT_S = 5.0


class Interrupted(KeyboardInterrupt):
    """Raised in the driver by the first SIGINT/SIGTERM (a KeyboardInterrupt, so no
    ``except Exception`` in a run can swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class StopState:
    """What :func:`stop_on_signals` saw: the first signal's number, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(self.signum or signal.SIGINT)


#: the state of the active :func:`stop_on_signals` (one per process; the driver's main thread)
STOP = StopState()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if STOP.signum is None:
        STOP.signum = signum
        if STOP.armed:
            raise Interrupted(signum)
        return
    # a second signal while we stop: leave now (workers die with us; files are atomic)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.write(f"\n{INTERRUPTED_LINE}\n")
        sys.stderr.flush()
    os._exit(STOP.exit_code)


def install_handlers() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopState]:
    """Within: the first SIGINT/SIGTERM raises :class:`Interrupted` where the driver is; a
    second exits at once. Outside the main thread (where handlers cannot be set) it does
    nothing. Yields the state, whose ``signum`` says whether a signal came."""
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    STOP.signum, STOP.armed = None, True
    install_handlers()
    try:
        yield STOP
    finally:
        STOP.armed = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_stop() -> None:
    """Raise now if a signal came while :class:`Interrupted` could not be raised."""
    if STOP.armed and STOP.signum is not None:
        raise Interrupted(STOP.signum)


#: prctl(2) option: a signal the kernel sends this process when its parent dies (Linux)
_PR_SET_PDEATHSIG = 1
#: how often a worker checks for its parent where the kernel cannot tell it (not Linux)
_PARENT_POLL_S = 0.1


def _kill_me_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker the moment its parent dies.

    Why not only poll: a run of a small network finishes in well under a poll interval, so a
    polling orphan can still complete runs (and mark them done) after the sweep was killed.
    Where prctl is missing or fails, the polling watcher is all there is.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(_PARENT_POLL_S)


def _worker_init(parent: int, sys_path: list[str], cores: int = 1) -> None:
    """Pool worker set-up: one torch thread, ``cores`` cores to itself (the rules' automatic
    noise threads look at it), the parent's import path, die with the parent, ignore SIGINT
    (the driver stops the pool; a worker's KeyboardInterrupt would only print a traceback).
    The driver starts workers with SIGINT/SIGTERM blocked; unblocked here."""
    _kill_me_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # first thing after prctl: its first check catches a parent that died before prctl
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    for p in reversed(sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    import torch

    from np_envs.threads import CORES_PER_PROCESS_ENV

    torch.set_num_threads(1)
    os.environ[CORES_PER_PROCESS_ENV] = str(cores)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[Callable[..., Any]]:
    """A ``spawn`` process pool of ``workers`` set up by :func:`_worker_init` (one torch thread,
    its share of the cores, SIGINT ignored, dying with this process); yields ``submit(fn,
    *args) -> Future``. Leaving it normally waits for the workers; leaving it by an error or a
    signal (:class:`Interrupted`) cancels what is queued and kills the workers at once."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
        initargs=(os.getpid(), list(sys.path), max(1, (os.cpu_count() or 1) // workers)),
    )

    def submit(fn: Callable[..., Any], *args: Any) -> Any:
        with _signals_blocked():  # a worker spawned now starts with them blocked
            return pool.submit(fn, *args)

    stopped = False
    try:
        yield submit
    except BaseException:  # Interrupted, or the consumer closed us: stop the workers now
        stopped = True
        _stop_pool(pool)
        raise
    finally:
        pool.shutdown(wait=not stopped, cancel_futures=True)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """SIGINT/SIGTERM held back (not lost) while pool workers are spawned: a spawned worker
    inherits the mask, so a Ctrl-C during its start-up cannot make it print a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_pool(pool: Any) -> None:
    """Cancel what is queued and kill the workers (a chunk in progress is recomputed on
    resume; committed checkpoints are atomic), then wait until they are gone."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown drops it
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.kill()
    deadline = time.monotonic() + _STOP_WAIT_S
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
