"""Checksums: hashing, the checksums recorded on first use, and the 'corrupt file' message.

The SARCOS training file has no published SHA-256, so its SHA-256 is recorded the first time a copy
passes the format checks, and later loads must match it (trust on first use). Records live in
``<user cache>/recorded-sha256.json``, keyed by the file's absolute path, and never inside an
``NP_ENVS_DATA`` folder (which may be read-only or shared); where the user cache cannot be written
they are kept in memory for the life of the process.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from .errors import DataCorruptError
from .locations import (
    ENV_CACHE,
    ENV_DATA,
    FETCH_COMMAND,
    cache_dir,
    data_dir_is_override,
    write_problem,
)
from .registry import DataFile

RECORD_FILE_NAME = "recorded-sha256.json"

_memory_records: dict[str, dict[str, object]] = {}


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The object id git gives a file with content ``data`` (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def record_file() -> Path:
    """The JSON file holding recorded checksums."""
    return cache_dir() / RECORD_FILE_NAME


def persist_problem() -> str | None:
    """Why recorded checksums cannot be saved for later processes (None when they can).

    Records go to the user cache only if it can be written and does not lie inside
    ``NP_ENVS_DATA``.
    """
    store = record_file().parent
    if data_dir_is_override():
        data_root = Path(os.environ[ENV_DATA]).expanduser().resolve()
        if store == data_root or data_root in store.parents:
            return f"the user cache {store} lies inside {ENV_DATA}, which np-envs never writes to"
    problem = write_problem(store)
    return None if problem is None else f"the user cache cannot be written: {problem}"


def _read_records() -> dict[str, dict[str, object]]:
    try:
        records = json.loads(record_file().read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _write_records(records: dict[str, dict[str, object]]) -> bool:
    """Write atomically (temp file + rename) so that a crash never leaves half a JSON file.

    Returns whether the records are on disk.
    """
    if persist_problem() is not None:
        return False
    store = record_file()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".recorded-", suffix=".json", dir=store.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(records, fh, indent=2, sort_keys=True)
        os.replace(tmp, store)
    except OSError:
        return False  # the in-memory record still protects this process
    return True


def recorded_sha256(path: Path) -> str | None:
    """The SHA-256 recorded for the file at ``path``, if any."""
    key = str(path.resolve())
    entry = _memory_records.get(key) or _read_records().get(key)
    return str(entry["sha256"]) if entry and "sha256" in entry else None


def record_sha256(path: Path, sha256: str) -> bool:
    """Remember ``sha256`` as the checksum the file at ``path`` must keep.

    Returns True if the record was saved for later processes, False if it is kept in memory
    only (see :func:`persist_problem`).
    """
    key = str(path.resolve())
    entry: dict[str, object] = {
        "file": path.name,
        "sha256": sha256,
        "size": path.stat().st_size,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _memory_records[key] = entry
    records = _read_records()
    records[key] = entry
    return _write_records(records)


def recorded_on_disk(path: Path) -> bool:
    """Whether a later process will find the checksum recorded for ``path``."""
    return str(path.resolve()) in _read_records()


def where_recorded(path: Path) -> str:
    """Where the checksum of ``path`` is kept, in words, for messages."""
    if recorded_on_disk(path):
        return f"recorded in {record_file()}"
    reason = persist_problem() or f"{record_file()} could not be written"
    return (
        f"kept in memory for this process only ({reason}), so a later process cannot check the "
        f"file against it; set {ENV_CACHE} to a writable folder to keep it"
    )


def forget_recorded(path: Path) -> None:
    """Drop the record for ``path`` (a fresh copy was installed there)."""
    key = str(path.resolve())
    _memory_records.pop(key, None)
    records = _read_records()
    if records.pop(key, None) is not None:
        _write_records(records)


def clear_memory_records() -> None:
    """Forget the in-memory records (the JSON file is kept)."""
    _memory_records.clear()


def corrupt_error(
    file: DataFile,
    path: Path,
    problem: str,
    expected: str | None = None,
    actual: str | None = None,
    advice: str = "",
) -> DataCorruptError:
    """A :class:`DataCorruptError` naming the file, its path, the check that failed and the fix."""
    lines = [f"Corrupt data file {file.name}: {problem}. It was not used.", f"  path:     {path}"]
    if expected is not None:
        lines.append(f"  expected: {expected}")
    if actual is not None:
        lines.append(f"  actual:   {actual}")
    lines.append(
        f"What to do: delete {path} and run `{FETCH_COMMAND} --dataset {file.dataset}`, or replace "
        f"it with a good copy from {file.urls[0]}."
    )
    problem = write_problem(path.parent)
    if data_dir_is_override() and problem is not None:
        lines.append(
            f"  ({ENV_DATA}: {problem}: ask its owner to replace the file, or unset "
            f"{ENV_DATA} to download into the user cache {cache_dir()}.)"
        )
    if advice:
        lines.append(advice)
    return DataCorruptError("\n".join(lines))
