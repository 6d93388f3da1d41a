"""MNIST: read the four IDX ``.gz`` files, verify them, and return ready-to-use arrays.

Verification is the SHA-256 of the uncompressed content, computed on the very bytes that are parsed.
It costs little beside the decompression that parsing needs anyway (about 80 ms for the 47 MB of
training images), accepts every mirror's copy (they differ only in the gzip header's timestamp) and
catches any change to the data, including truncation (the gzip stream then ends early or fails its
CRC).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from .cache import missing_message, require
from .errors import DataMissingError
from .integrity import corrupt_error
from .locations import data_dir, data_dir_is_override, path_for
from .registry import MNIST_SPLITS, DataFile

IDX_MAGIC_IMAGES = 2051  # unsigned byte, 3 dimensions
IDX_MAGIC_LABELS = 2049  # unsigned byte, 1 dimension
N_PIXELS = 28 * 28
N_CLASSES = 10


def read_idx(file: DataFile, path: Path) -> np.ndarray:
    """The verified uint8 array of an IDX ``.gz`` file, shaped as its header says.

    Raises :class:`~np_envs.data.errors.DataCorruptError` if the file cannot be decompressed,
    its content's SHA-256 is not the known one, or its header does not match.
    """
    expected = (
        f"SHA-256 of the uncompressed content {file.content_sha256} "
        f"(canonical MD5 {file.content_md5})"
    )
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise corrupt_error(
            file, path, f"it cannot be decompressed ({type(exc).__name__}: {exc}; "
            "truncated or damaged)", expected, "not computable: the gzip stream is damaged",
        ) from exc
    sha256 = hashlib.sha256(raw).hexdigest()
    if sha256 != file.content_sha256:
        raise corrupt_error(
            file, path, "checksum mismatch", expected,
            f"SHA-256 of the uncompressed content {sha256} "
            f"(MD5 {hashlib.md5(raw).hexdigest()})",
        )
    return _parse_idx(file, path, raw)


def _parse_idx(file: DataFile, path: Path, raw: bytes) -> np.ndarray:
    """Check the IDX header (magic number, dimensions, length) and view the payload."""
    magic = IDX_MAGIC_IMAGES if len(file.shape or ()) == 3 else IDX_MAGIC_LABELS
    ndim = magic & 0xFF
    header_len = 4 * (1 + ndim)
    header = np.frombuffer(raw[:header_len], dtype=">u4") if len(raw) >= header_len else None
    if header is None or int(header[0]) != magic:
        found = "none" if header is None else int(header[0])
        raise corrupt_error(file, path, "bad IDX magic number", str(magic), str(found))
    shape = tuple(int(d) for d in header[1:])
    if shape != file.shape or len(raw) != header_len + int(np.prod(shape)):
        raise corrupt_error(
            file, path, "IDX header does not match the content",
            f"shape {file.shape}, {header_len + int(np.prod(file.shape))} bytes",
            f"shape {shape}, {len(raw)} bytes",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def validate(file: DataFile, path: Path) -> None:
    """Raise if the file at ``path`` is not a good copy of ``file`` (used on downloads)."""
    read_idx(file, path)


def load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` ("train": 60,000, "test": 10,000) as read-only arrays.

    Returns images float32 ``(N, 784)`` (pixels / 255, flattened row-major, C-contiguous) and
    labels int64 ``(N,)`` in 0..9. Loaded once per process and data folder.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; valid splits: {sorted(MNIST_SPLITS)}")
    return _load(str(data_dir()), split)


def load_mnist_pixels(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` as stored: pixel bytes uint8 ``(N, 784)`` (0..255, flattened row-major)
    and labels int64 ``(N,)``, read-only. :func:`load_mnist`'s images are these / 255 in
    float32; the environments keep the bytes (47 MB for the training set instead of 188 MB)
    and divide each batch as they draw it."""
    if split not in MNIST_SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; valid splits: {sorted(MNIST_SPLITS)}")
    return _load_pixels(str(data_dir()), split)


@functools.lru_cache(maxsize=4)  # 2 splits x 2 folders
def _load_pixels(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    del folder  # part of the cache key only: the paths come from data_dir()
    image_file, label_file = MNIST_SPLITS[split]
    try:
        paths = require((image_file, label_file), validate)
    except DataMissingError:
        if not data_dir_is_override():
            raise
        # a folder the user gave: name every MNIST file it lacks at once (runs are scored on
        # the test split, so it is needed too), not the training files now and the rest later
        every = [f for pair in MNIST_SPLITS.values() for f in pair]
        raise DataMissingError(missing_message(
            [f for f in every if not path_for(f).is_file()], {})) from None
    pixels = read_idx(image_file, paths[image_file])
    labels = read_idx(label_file, paths[label_file])
    pixels = np.ascontiguousarray(pixels.reshape(len(pixels), N_PIXELS))
    targets = labels.astype(np.int64)
    for array in (pixels, targets):
        array.flags.writeable = False
    return pixels, targets


@functools.lru_cache(maxsize=4)  # 2 splits x 2 folders; bounded: MNIST train is 188 MB
def _load(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    pixels, targets = _load_pixels(folder, split)
    images = pixels.astype(np.float32)
    images /= np.float32(255.0)
    images.flags.writeable = False
    return images, targets


def clear_cache() -> None:
    """Forget the loaded arrays (the next call reads and verifies the files again)."""
    _load.cache_clear()
    _load_pixels.cache_clear()
