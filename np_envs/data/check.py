"""Check and fetch whole data sets, file by file: what ``np-envs data verify/fetch`` report.

Unlike the loaders, these never use cached results: every call reads and verifies the files again.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from . import integrity, mnist, sarcos
from .cache import Validator, try_download
from .errors import DataCorruptError, DataWarning
from .locations import ENV_CACHE, ENV_DATA, data_dir, data_dir_is_override, path_for, write_problem
from .registry import SARCOS_TRAIN, DataFile

OK, CORRUPT, MISSING = "OK", "CORRUPT", "MISSING"


@dataclass(frozen=True)
class FileStatus:
    """The state of one data file: ``OK``, ``CORRUPT`` or ``MISSING``, and why."""

    file: DataFile
    path: Path
    status: str
    detail: str


def validator_for(file: DataFile) -> Validator:
    """The function that validates a copy of ``file``."""
    return mnist.validate if file.dataset == "mnist" else sarcos.validate


def check_file(file: DataFile) -> FileStatus:
    """Read and verify ``file`` where the loaders would find it (records a first-use checksum)."""
    path = path_for(file)
    if not path.is_file():
        return FileStatus(file, path, MISSING, "not present")
    recorded_before = integrity.recorded_sha256(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # said in the detail below instead
            if file.dataset == "mnist":
                mnist.read_idx(file, path)
            else:
                sarcos.read_mat(file, path)
    except DataCorruptError as exc:
        return FileStatus(file, path, CORRUPT, str(exc))
    return FileStatus(file, path, OK, _ok_detail(file, path, recorded_before))


def _ok_detail(file: DataFile, path: Path, recorded_before: str | None) -> str:
    if file.content_sha256:
        return "SHA-256 of the uncompressed content matches"
    if file.sha256:
        return "SHA-256 matches"
    blob = integrity.git_blob_sha1(path.read_bytes())
    if blob == file.git_blob_sha1:
        return "byte-identical to the GPML copy (git blob id matches)"
    if recorded_before:
        return "format checks pass; SHA-256 matches the one recorded on first use"
    return (
        f"format checks pass; first use, SHA-256 {integrity.where_recorded(path)}; note: not "
        f"byte-identical to the GPML copy (git blob id {blob}, published {file.git_blob_sha1})"
    )


def check_all(files: tuple[DataFile, ...]) -> list[FileStatus]:
    """:func:`check_file` for each of ``files``."""
    return [check_file(f) for f in files]


def fetch_file(file: DataFile, progressbar: bool = False) -> FileStatus:
    """Make sure a good copy of ``file`` is in the data folder, downloading it if needed.

    A present good copy is kept; a missing or corrupt one is downloaded (validated before it
    replaces anything). ``MISSING`` with the reasons if that is impossible.
    """
    current = check_file(file)
    if current.status == OK:
        return FileStatus(file, current.path, OK, f"present ({current.detail})")
    folder = data_dir()
    problem = write_problem(current.path.parent)
    if problem is not None:
        if data_dir_is_override():
            what = (
                f"point {ENV_DATA} to a folder" if problem.not_a_folder
                else f"copy {file.urls[0]} to {current.path}"
            )
            advice = f"{what}, or unset {ENV_DATA} to use the user cache"
        else:
            advice = f"set {ENV_CACHE} to a writable folder (or fix that path)"
        return FileStatus(
            file, current.path, current.status,
            f"nothing can be downloaded into {folder} ({problem}): {advice}",
        )
    path, failures = try_download(file, validator_for(file), folder, progressbar)
    if path is None:
        reasons = "; ".join(failures) or "no mirror"
        return FileStatus(
            file, current.path, current.status,
            f"download failed ({reasons}). Without a network, download {file.urls[0]} "
            f"elsewhere and copy it to {current.path}",
        )
    after = check_file(file)
    return FileStatus(file, path, after.status, f"downloaded ({after.detail})")


def train_file_present() -> bool:
    """Whether the SARCOS training file is in the data folder (overlap can be measured)."""
    return path_for(SARCOS_TRAIN).is_file()
