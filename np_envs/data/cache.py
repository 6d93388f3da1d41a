"""Getting data files into place: pooch downloads, and messages that say what to do when that fails.

Loading downloads missing files only into the user cache (no ``NP_ENVS_DATA``); an
``NP_ENVS_DATA`` folder may be read-only, so loading never writes there and reports what is missing
instead. Only the explicit ``np-envs data fetch`` writes into it, and only if it is writable.

Downloads go to a private staging folder next to the destination, are validated there and only
then moved into place with one atomic rename; the staging folder is removed whatever happens, so a
failed or interrupted download never leaves a half-written or unchecked file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pooch

from . import integrity
from .errors import DataCorruptError, DataMissingError
from .locations import (
    ENV_CACHE,
    ENV_DATA,
    FETCH_COMMAND,
    cache_dir,
    data_dir,
    data_dir_is_override,
    path_for,
    write_problem,
)
from .registry import DataFile

DOWNLOAD_TIMEOUT_S = 30.0

Validator = Callable[[DataFile, Path], object]


def _download(url: str, dest: Path, progressbar: bool = False) -> None:
    """Fetch ``url`` into ``dest`` with pooch (tests replace this to simulate being offline)."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch's "use this known_hash" advice would only confuse
    try:
        pooch.retrieve(
            url,
            known_hash=None,
            fname=dest.name,
            path=dest.parent,
            downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT_S, progressbar=progressbar),
        )
    finally:
        logger.setLevel(level)


def try_download(
    file: DataFile,
    validate: Validator,
    folder: Path | None = None,
    progressbar: bool = False,
) -> tuple[Path | None, list[str]]:
    """Download ``file`` into ``folder`` (default :func:`data_dir`), trying each mirror in turn.

    The copy is validated before it replaces anything at the destination. Returns the path (None
    if no mirror gave a valid copy) and one line per failed attempt.
    """
    dest = path_for(file, folder)
    problem = write_problem(dest.parent)
    if problem is not None:
        return None, [f"{problem}: nothing is written there"]
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".np-envs-download-", dir=dest.parent))
    except OSError as exc:
        return None, [f"cannot write into {dest.parent}: {exc}"]
    failures: list[str] = []
    try:
        for url in file.urls:
            tmp = staging / file.name
            try:
                _download(url, tmp, progressbar=progressbar)
            except Exception as exc:  # noqa: BLE001 - any failure means: try the next mirror
                failures.append(f"{url}: {_describe(exc)}")
                continue
            try:
                validate(file, tmp)
            except DataCorruptError as exc:
                first_line = str(exc).splitlines()[0]
                failures.append(f"{url}: the downloaded copy failed its checks: {first_line}")
                continue
            os.replace(tmp, dest)
            integrity.forget_recorded(dest)  # a fresh copy: record its checksum anew
            return dest, failures
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for folder_made in created:  # leave no trace of a failed download (empty folders only)
        with contextlib.suppress(OSError):
            folder_made.rmdir()
    return None, failures


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed download (requests' messages run to several hundred chars)."""
    text = str(exc)
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "cannot resolve the host name (no network?)"
    if "timed out" in text.lower():
        return f"timed out after {DOWNLOAD_TIMEOUT_S:.0f} s"
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def missing_message(
    files: Sequence[DataFile],
    failures: dict[DataFile, list[str]] | None = None,
    hint: str = "",
) -> str:
    """Say which files are missing, where each belongs, where to get it, and how to fetch it."""
    folder = data_dir()
    failures = failures or {}
    lines = ["Missing data file(s):"]
    for f in files:
        lines.append(f"  - {f.name}")
        lines.append(f"      put it at:     {path_for(f, folder)}")
        lines.append(f"      download from: {' or '.join(f.urls)}")
        for failure in failures.get(f, []):
            lines.append(f"      download failed: {failure}")
    datasets = sorted({f.dataset for f in files})
    dataset_arg = datasets[0] if len(datasets) == 1 else "all"
    source = f"{ENV_DATA}={folder}" if data_dir_is_override() else "the user cache"
    lines.append(f"Data folder: {folder} ({source}).")
    lines.append("What to do:")
    problem = write_problem(folder)
    if data_dir_is_override() and problem is not None:
        if problem.not_a_folder:
            lines.append(
                f"  - {ENV_DATA}={folder} cannot hold the files ({problem}): point {ENV_DATA} to a "
                f"folder laid out as <folder>/{datasets[0]}/<file name>, or unset {ENV_DATA} and "
                f"run `{FETCH_COMMAND} --dataset {dataset_arg}` to download them into the user "
                f"cache {cache_dir()}."
            )
        else:
            lines.append(
                f"  - {ENV_DATA} points to a read-only folder ({problem}), which np-envs never "
                f"writes into: copy the files there, or unset {ENV_DATA} and run `{FETCH_COMMAND} "
                f"--dataset {dataset_arg}` to download them into the user cache {cache_dir()}."
            )
    elif problem is not None:
        lines.append(
            f"  - the user cache cannot hold downloads ({problem}): set {ENV_CACHE} to a writable "
            f"folder (or fix that path), then run `{FETCH_COMMAND} --dataset {dataset_arg}`."
        )
        lines.append(
            f"  - or set {ENV_DATA} to a folder that holds the files, laid out as "
            f"<folder>/{datasets[0]}/<file name>."
        )
    else:
        lines.append(
            f"  - with a network: run `{FETCH_COMMAND} --dataset {dataset_arg}` (downloads into "
            f"{folder} and verifies the checksums)."
        )
        lines.append(
            f"  - without one: download the files elsewhere and copy them into the folder above, "
            f"or set {ENV_DATA} to a folder laid out as <folder>/{datasets[0]}/<file name>."
        )
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def require(
    files: Iterable[DataFile],
    validate: Validator,
    hint: str = "",
) -> dict[DataFile, Path]:
    """Paths of ``files``, downloading missing ones into the user cache where that is allowed.

    Never downloads into an ``NP_ENVS_DATA`` folder. Raises :class:`DataMissingError` naming every
    file still missing (with ``hint`` appended). Does not check present files: callers validate
    what they read.
    """
    files = tuple(files)
    paths = {f: path_for(f) for f in files}
    missing = [f for f in files if not paths[f].is_file()]
    failures: dict[DataFile, list[str]] = {}
    if missing and not data_dir_is_override():
        for f in missing:
            failures[f] = try_download(f, validate)[1]
        missing = [f for f in missing if not paths[f].is_file()]
    if missing:
        raise DataMissingError(missing_message(missing, failures, hint))
    return paths
