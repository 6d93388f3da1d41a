"""SARCOS inverse dynamics: read the GPML ``.mat`` files, verify them, split them by scheme.

Each row has 28 float64 columns: 21 inputs (7 joint positions, velocities, accelerations) then the
7 joint torques. Data are returned raw (no standardisation), as the paper used them. Rows are in
trajectory order, so neighbouring rows are near-duplicates: held-out rows are always taken as one
contiguous block, with a guard gap of discarded rows between it and the training rows.

Split schemes (:data:`SARCOS_SCHEMES`), with their exact row counts (row indices are 0-based,
ranges half-open):

``"gpml"`` (default; the paper's published split)
    train = ``sarcos_inv.mat``, all 44,484 rows; test = ``sarcos_inv_test.mat``, all 4,449 rows.
    The test file is reported to be every 10th row of the training trajectory, so this test set
    leaks; :func:`sarcos_overlap_report` measures by how much.

``"leak-free"`` (training file only)
    test = the last :data:`LEAKFREE_TEST_ROWS` = 4,449 rows, ``[40035, 44484)`` (as many as the
    GPML test set); guard = the :data:`LEAKFREE_GUARD_ROWS` = 100 rows before it, ``[39935,
    40035)``; train = ``[0, 39935)``, 39,935 rows, minus any row equal (all 28 columns, bit for bit)
    to a test row. Never reads the published test file, so it is leak-free however much that
    file overlaps the training file.

``"test-file"`` (test file only, for machines without the training file)
    test = the last :data:`TEST_FILE_TEST_ROWS` = 890 rows (20 %), ``[3559, 4449)``; guard = the
    :data:`TEST_FILE_GUARD_ROWS` = 10 rows before it, ``[3549, 3559)`` (the same stretch of
    trajectory as 100 training-file rows if the test file is every 10th row); train =
    ``[0, 3549)``, 3,549 rows, minus any row equal to a test row (none in the real file).

A scheme that needs a missing file raises :class:`~np_envs.data.errors.DataError`; nothing falls
back to another scheme silently.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from . import integrity
from .cache import require
from .errors import DataError, DataWarning
from .integrity import corrupt_error
from .locations import data_dir, path_for
from .registry import SARCOS_TEST, SARCOS_TRAIN, DataFile

SARCOS_SCHEMES: tuple[str, ...] = ("gpml", "leak-free", "test-file")
SARCOS_SPLITS: tuple[str, ...] = ("train", "test")
N_INPUTS = 21
N_OUTPUTS = 7

LEAKFREE_TEST_ROWS = 4_449
LEAKFREE_GUARD_ROWS = 100
TEST_FILE_TEST_ROWS = 890
TEST_FILE_GUARD_ROWS = 10

MISSING_TRAIN_HINT = (
    'The SARCOS training file sarcos_inv.mat is needed by split_scheme="gpml" (the paper\'s split) '
    'and split_scheme="leak-free". Nothing falls back silently: without it you may choose '
    'split_scheme="test-file" explicitly (e.g. gym.make("NPSarcos-v0", split_scheme="test-file") '
    'or load_sarcos(split, scheme="test-file")), which splits the 4,449-row test file '
    "sarcos_inv_test.mat into contiguous train/test blocks; its results are not comparable to "
    "the paper's."
)


def read_mat(file: DataFile, path: Path, record: bool = True) -> np.ndarray:
    """The verified ``(rows, 28)`` float64 C-contiguous matrix of a SARCOS ``.mat`` file.

    The test file must match its published SHA-256. The training file must have the right variable
    and shape, and then match the GPML copy's git blob id or the SHA-256 recorded on its first use
    (recorded now if there is none and ``record`` is true). Raises ``DataCorruptError`` otherwise.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise corrupt_error(file, path, f"it cannot be read ({exc})") from exc
    sha256 = integrity.sha256_hex(data)
    if file.sha256 is not None and sha256 != file.sha256:
        raise corrupt_error(
            file, path, "checksum mismatch", f"SHA-256 {file.sha256}", f"SHA-256 {sha256}"
        )
    matrix = _parse_mat(file, path, data)
    if file.sha256 is None:
        _check_unpublished(file, path, data, sha256, record)
    return matrix


def _parse_mat(file: DataFile, path: Path, data: bytes) -> np.ndarray:
    """Load the variable and check its name, shape, type and finiteness."""
    try:
        contents = scipy.io.loadmat(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on damaged files
        raise corrupt_error(
            file, path, f"it is not a readable MATLAB file ({type(exc).__name__}: {exc})",
            f"MATLAB v5 file with variable {file.mat_variable!r} of shape {file.shape}",
        ) from exc
    matrix = contents.get(file.mat_variable or "")
    expected = f"variable {file.mat_variable!r}, float64 array of shape {file.shape}"
    if not isinstance(matrix, np.ndarray) or matrix.shape != file.shape:
        names = sorted(k for k in contents if not k.startswith("__"))
        found = f"variables {names}" if not isinstance(matrix, np.ndarray) else (
            f"shape {matrix.shape}"
        )
        raise corrupt_error(file, path, "unexpected content", expected, found)
    if matrix.dtype != np.float64:
        raise corrupt_error(file, path, "unexpected type", expected, f"dtype {matrix.dtype}")
    if not np.isfinite(matrix).all():
        bad = int((~np.isfinite(matrix)).sum())
        raise corrupt_error(
            file, path, "unexpected values", f"{expected}, all finite", f"{bad} NaN/inf values"
        )
    return np.ascontiguousarray(matrix)


def _check_unpublished(file: DataFile, path: Path, data: bytes, sha256: str, record: bool) -> None:
    """Checksum rule for a file without a published SHA-256 (the training file)."""
    recorded = integrity.recorded_sha256(path)
    blob = integrity.git_blob_sha1(data)
    if blob == file.git_blob_sha1:
        if record and recorded != sha256:
            integrity.record_sha256(path, sha256)  # the published copy: trust it over any record
        return
    if recorded is not None and recorded != sha256:
        raise corrupt_error(
            file, path, "its SHA-256 differs from the one recorded when it was first used",
            f"SHA-256 {recorded} (recorded)", f"SHA-256 {sha256}",
            advice=(
                "If you replaced it on purpose with a good copy, delete its entry in "
                f"{integrity.record_file()} (or that whole file) and load it again."
            ),
        )
    if recorded is None and record:
        integrity.record_sha256(path, sha256)
        warnings.warn(
            f"{path} passed the format checks but is not byte-identical to the GPML copy "
            f"(git blob id {blob}, published {file.git_blob_sha1}); it is used, and its SHA-256 "
            f"{sha256} is {integrity.where_recorded(path)}, so that later changes are caught.",
            DataWarning,
            stacklevel=4,
        )


def validate(file: DataFile, path: Path) -> None:
    """Raise if the file at ``path`` is not a good copy of ``file`` (used on downloads)."""
    read_mat(file, path, record=False)


@functools.lru_cache(maxsize=4)
def _matrix_cached(name: str, path: str, size: int, mtime_ns: int) -> np.ndarray:
    del size, mtime_ns  # cache key only: a changed file is read and verified again
    file = SARCOS_TRAIN if name == SARCOS_TRAIN.name else SARCOS_TEST
    matrix = read_mat(file, Path(path))
    matrix.flags.writeable = False
    return matrix


def _matrix(file: DataFile) -> np.ndarray:
    """The verified matrix of ``file``, read once per process (fetched where allowed)."""
    hint = MISSING_TRAIN_HINT if file is SARCOS_TRAIN else ""
    path = require((file,), validate, hint=hint)[file]
    stat = path.stat()
    return _matrix_cached(file.name, str(path), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class BlockSplit:
    """Row indices of a contiguous-block split; together they cover every row exactly once."""

    train: np.ndarray
    guard: np.ndarray
    test: np.ndarray
    dropped: np.ndarray  # rows before the guard that equal a test row

    def counts(self) -> dict[str, int]:
        """Number of rows in each part."""
        return {k: len(getattr(self, k)) for k in ("train", "guard", "test", "dropped")}


def _row_keys(rows: np.ndarray) -> list[bytes]:
    """Each row's float64 bytes: equal keys mean verbatim equal rows."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    return [row.tobytes() for row in rows]


def block_split(matrix: np.ndarray, n_test: int, n_guard: int) -> BlockSplit:
    """Test = the last ``n_test`` rows; guard = the ``n_guard`` before; train = the rest, minus
    rows equal to a test row."""
    n = len(matrix)
    if not (0 < n_test and n_test + n_guard < n):
        raise ValueError(f"cannot take {n_test} test + {n_guard} guard rows from {n} rows")
    start_guard, start_test = n - n_test - n_guard, n - n_test
    test = np.arange(start_test, n)
    test_keys = set(_row_keys(matrix[test]))
    head = np.arange(start_guard)
    leaks = np.fromiter((k in test_keys for k in _row_keys(matrix[head])), bool, len(head))
    return BlockSplit(
        train=head[~leaks], guard=np.arange(start_guard, start_test), test=test,
        dropped=head[leaks],
    )


def scheme_split(scheme: str) -> BlockSplit | None:
    """The block split of a derived scheme (None for ``"gpml"``, which uses whole files)."""
    _check_scheme(scheme)
    if scheme == "gpml":
        return None
    file, n_test, n_guard = (
        (SARCOS_TRAIN, LEAKFREE_TEST_ROWS, LEAKFREE_GUARD_ROWS) if scheme == "leak-free"
        else (SARCOS_TEST, TEST_FILE_TEST_ROWS, TEST_FILE_GUARD_ROWS)
    )
    parts = block_split(_matrix(file), n_test, n_guard)
    if len(parts.train) == 0:
        head = len(parts.dropped)
        raise DataError(
            f'split_scheme="{scheme}" leaves no training rows: each of the {head:,} rows of '
            f"{file.name} before the guard block equals (all {N_INPUTS + N_OUTPUTS} values, bit "
            f"for bit) one of its last {n_test:,} rows, the held-out test block, and rows equal "
            "to a test row are dropped so that no test row is trained on. The real SARCOS "
            f"trajectory has no such repeats: check the file at {path_for(file)} (`np-envs data "
            f"verify --dataset sarcos`) and replace it with a good copy from {file.urls[0]}."
        )
    return parts


def _check_scheme(scheme: str) -> None:
    if scheme not in SARCOS_SCHEMES:
        raise ValueError(
            f"unknown SARCOS split scheme {scheme!r}; valid schemes: {list(SARCOS_SCHEMES)}"
        )


def load_sarcos(split: str, scheme: str = "gpml") -> tuple[np.ndarray, np.ndarray]:
    """SARCOS ``split`` ("train"/"test") under ``scheme`` as read-only C-contiguous arrays.

    Returns inputs float64 ``(N, 21)`` and torques float64 ``(N, 7)``, raw. Only the files the
    request needs are read (``"gpml"`` test needs only the test file). Cached per process.
    """
    if split not in SARCOS_SPLITS:
        raise ValueError(f"unknown SARCOS split {split!r}; valid splits: {list(SARCOS_SPLITS)}")
    _check_scheme(scheme)
    return _load(str(data_dir()), split, scheme)


@functools.lru_cache(maxsize=12)  # 2 splits x 3 schemes x 2 folders
def _load(folder: str, split: str, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    del folder  # part of the cache key only: the paths come from data_dir()
    if scheme == "gpml":
        rows = _matrix(SARCOS_TRAIN if split == "train" else SARCOS_TEST)
    else:
        source = _matrix(SARCOS_TRAIN if scheme == "leak-free" else SARCOS_TEST)
        parts = scheme_split(scheme)
        assert parts is not None
        rows = source[parts.train if split == "train" else parts.test]
    inputs = np.array(rows[:, :N_INPUTS], dtype=np.float64, order="C")  # copies: own memory
    torques = np.array(rows[:, N_INPUTS:], dtype=np.float64, order="C")
    for array in (inputs, torques):
        array.flags.writeable = False
    return inputs, torques


def sarcos_overlap_report() -> dict[str, float | int]:
    """How many test-file rows occur verbatim (all 28 float64 values) in the training file.

    Needs both files (raises ``DataError`` otherwise). Informative only: overlap never makes a
    file invalid. Returns ``{"test_rows", "train_rows", "rows_in_train", "fraction"}``.
    """
    train = _matrix(SARCOS_TRAIN)
    test = _matrix(SARCOS_TEST)
    train_keys = set(_row_keys(train))
    hits = sum(key in train_keys for key in _row_keys(test))
    return {
        "test_rows": len(test),
        "train_rows": len(train),
        "rows_in_train": hits,
        "fraction": hits / len(test),
    }


def clear_cache() -> None:
    """Forget the loaded matrices and splits (the next call reads and verifies files again)."""
    _load.cache_clear()
    _matrix_cached.cache_clear()
