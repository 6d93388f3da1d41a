"""One output folder, one writer: a command holds ``OUT/.np-envs.lock`` while it works there.

Why: two commands on one ``--out`` folder race on its tables (the second one's summary used to
count the first one's half-trained runs as final). The lock is an OS file lock (``filelock``:
``flock`` on POSIX), so the kernel releases it when its holder dies and a killed command never
leaves a stale lock. Beside it, ``.np-envs.owner.json`` says who holds it (pid, command, start
time), so a second command can say what it is waiting for. The per-run locks of
:class:`~np_envs.experiments.results.RunFolder` stay: they guard a run folder against library
callers that bypass the commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from np_envs.experiments.results import atomic_write_json

LOCK_NAME = ".np-envs.lock"
OWNER_NAME = ".np-envs.owner.json"
#: seconds between attempts while waiting for a busy folder
POLL_S = 0.2


class OutFolderBusy(RuntimeError):
    """Another live process works on this output folder."""


def owner_of(out: str | os.PathLike) -> dict[str, Any]:
    """What the holder wrote about itself ({} if nothing readable)."""
    try:
        return json.loads((Path(out) / OWNER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_owner(out: str | os.PathLike) -> str:
    """``pid 123 (np-envs sweep ...), since 12:00:03`` or ``another process``."""
    info = owner_of(out)
    if not info.get("pid"):
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info["started"])) if info.get(
        "started") else "?"
    return (f"pid {info['pid']} on {info.get('host', '?')} ({info.get('command', '?')}), "
            f"since {since}")


@contextlib.contextmanager
def hold_out_folder(
    out: str | os.PathLike, wait: bool = False, say: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Be the only writer of ``out`` while inside (the folder is created).

    Args:
        out: the output folder.
        wait: if another process holds it, wait until it is done instead of raising.
        say: where the "waiting for ..." line goes (default: stderr).

    Raises:
        OutFolderBusy: ``out`` is held by another live process and ``wait`` is False.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_NAME), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = describe_owner(out)
        if not wait:
            raise OutFolderBusy(
                f"--out {out} is in use by {holder}; wait for it to finish, rerun with --wait "
                "to start when it does, or choose another --out") from None
        (say or _stderr)(f"--out {out} is in use by {holder}; waiting for it to finish ...")
        lock.acquire(timeout=-1, poll_interval=POLL_S)
    try:
        atomic_write_json(out / OWNER_NAME, {
            "pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": " ".join(["np-envs", *sys.argv[1:]]) if sys.argv else "np-envs"})
        yield out
    finally:
        with contextlib.suppress(OSError):
            (out / OWNER_NAME).unlink()
        lock.release()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
