"""Files that survive a kill: atomic writes, append-only rows, one folder per run.

Why: a sweep runs for hours; a killed process must leave every file either as it was or as it
was meant to be, never half written. Whole files are written to a temporary file in the same
folder, flushed, fsynced and moved over the target with ``os.replace`` (atomic on POSIX). Rows are
appended one JSON line at a time and fsynced, so a kill loses at most the line being written,
which :func:`read_jsonl` drops.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


def clean_value(value: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, non-finite floats to None (strict JSON)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [clean_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): clean_value(v) for k, v in value.items()}
    return value


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the folder that holds it (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(clean_value(obj), indent=2, sort_keys=True) + "\n")


def atomic_save_with(path: str | os.PathLike, save: Any) -> None:
    """Atomically write a file that a library writes itself: ``save(tmp_path)`` then rename.

    The temporary name keeps the target's suffix, so savers that append one (``.zip``) do not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        save(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows as JSON lines, flushed and fsynced before returning."""
    text = "".join(json.dumps(clean_value(r), sort_keys=True) + "\n" for r in rows)
    if not text:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete row of a JSON-lines file; a torn last line (killed mid-write) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn write
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def rewrite_jsonl(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Replace a JSON-lines file by ``rows`` atomically (used to drop rows past a checkpoint)."""
    text = "".join(json.dumps(clean_value(r), sort_keys=True) + "\n" for r in rows)
    atomic_write_text(path, text)


def column_order(rows: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """``first`` (those present), then every other key in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    head = [k for k in first if k in seen]
    return head + [k for k in seen if k not in head]


def _csv_cell(value: Any) -> Any:
    value = clean_value(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], first: Sequence[str] = ()):
    """Write a whole CSV atomically; columns are the union of the rows' keys."""
    atomic_write_text(path, csv_text(rows, column_order(rows, first)))


def append_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Append rows to a CSV whose header is the first row's keys (written on first use).

    A row with a key the header lacks makes the file be rewritten with the wider header; the
    JSON-lines file is the record, the CSV a convenience view of it.
    """
    path = Path(path)
    if not rows:
        return
    if not path.is_file() or path.stat().st_size == 0:
        write_csv(path, rows)
        return
    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    if any(k not in header for row in rows for k in row):
        old = _read_csv_rows(path)
        write_csv(path, old + list(rows), first=header)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in header])
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def _read_csv_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Hold an advisory ``flock`` on ``path`` while inside; yields False if another holds it.

    The kernel drops the lock when its holder dies, so a killed run never leaves a stale lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class RunFolder:
    """The files of one run: ``spec.json``, ``rows.jsonl``/``rows.csv``, ``checkpoint/``, ``done``.

    ``done`` is written last and atomically: its presence means the run is finished (completed
    or diverged) and will never be recomputed. ``attempts.jsonl`` gets one line per start, so
    tests and users can see what was resumed and what was skipped.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    spec_file = property(lambda self: self.path / "spec.json")
    rows_file = property(lambda self: self.path / "rows.jsonl")
    csv_file = property(lambda self: self.path / "rows.csv")
    done_file = property(lambda self: self.path / "done")
    attempts_file = property(lambda self: self.path / "attempts.jsonl")
    error_file = property(lambda self: self.path / "error.txt")
    lock_file = property(lambda self: self.path / ".lock")
    checkpoint_dir = property(lambda self: self.path / "checkpoint")

    @property
    def is_done(self) -> bool:
        return self.done_file.is_file()

    def done_record(self) -> dict[str, Any] | None:
        if not self.is_done:
            return None
        return read_json(self.done_file)

    def rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.rows_file)

    def append_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        append_jsonl(self.rows_file, rows)
        append_csv(self.csv_file, rows)

    def keep_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rewrite the row files to exactly ``rows`` (a resume drops rows past its checkpoint)."""
        rewrite_jsonl(self.rows_file, rows)
        if rows:
            write_csv(self.csv_file, rows)
        elif self.csv_file.exists():
            self.csv_file.unlink()

    def mark_done(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.done_file, record)

    def log_attempt(self, record: dict[str, Any]) -> None:
        append_jsonl(self.attempts_file, [record])

    def attempts(self) -> list[dict[str, Any]]:
        return read_jsonl(self.attempts_file)
