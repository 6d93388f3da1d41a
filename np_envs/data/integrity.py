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
from .locations import ENV_DATA, FETCH_COMMAND, cache_dir, data_dir_is_override, is_writable
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


def _can_persist() -> bool:
    """Records go to the user cache only if writable and not inside ``NP_ENVS_DATA``."""
    store = record_file().parent
    if data_dir_is_override():
        data_root = Path(os.environ[ENV_DATA]).expanduser().resolve()
        if store == data_root or data_root in store.parents:
            return False
    return is_writable(store)


def _read_records() -> dict[str, dict[str, object]]:
    try:
        records = json.loads(record_file().read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _write_records(records: dict[str, dict[str, object]]) -> None:
    """Write atomically (temp file + rename) so that a crash never leaves half a JSON file."""
    if not _can_persist():
        return
    store = record_file()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".recorded-", suffix=".json", dir=store.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(records, fh, indent=2, sort_keys=True)
        os.replace(tmp, store)
    except OSError:
        pass  # the in-memory record still protects this process


def recorded_sha256(path: Path) -> str | None:
    """The SHA-256 recorded for the file at ``path``, if any."""
    key = str(path.resolve())
    entry = _memory_records.get(key) or _read_records().get(key)
    return str(entry["sha256"]) if entry and "sha256" in entry else None


def record_sha256(path: Path, sha256: str) -> None:
    """Remember ``sha256`` as the checksum the file at ``path`` must keep."""
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
    _write_records(records)


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
    if data_dir_is_override() and not is_writable(path.parent):
        lines.append(
            f"  ({ENV_DATA} is read-only here: ask its owner to replace the file, or unset "
            f"{ENV_DATA} to download into the user cache {cache_dir()}.)"
        )
    if advice:
        lines.append(advice)
    return DataCorruptError("\n".join(lines))
