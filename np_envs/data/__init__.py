"""Data sets behind the environments: MNIST and SARCOS, fetched once, verified, cached in memory.

Files are read from ``$NP_ENVS_DATA/<dataset>/<name>`` when ``NP_ENVS_DATA`` is set (never written
to), else from the user cache, where they are downloaded on first use. Every file is verified
(checksums, format) before use; every problem raises :class:`DataError` with a message that says
what to do. Loaded arrays are read-only and shared between callers.
"""

from __future__ import annotations

from . import integrity, mnist, sarcos
from .errors import DataCorruptError, DataError, DataMissingError, DataWarning
from .locations import cache_dir, data_dir
from .mnist import load_mnist, load_mnist_pixels
from .sarcos import SARCOS_SCHEMES, load_sarcos, sarcos_overlap_report


def clear_cache() -> None:
    """Forget every loaded array and in-memory checksum record (tests; changed files)."""
    mnist.clear_cache()
    sarcos.clear_cache()
    integrity.clear_memory_records()


__all__ = [
    "SARCOS_SCHEMES",
    "DataCorruptError",
    "DataError",
    "DataMissingError",
    "DataWarning",
    "cache_dir",
    "clear_cache",
    "data_dir",
    "load_mnist",
    "load_mnist_pixels",
    "load_sarcos",
    "sarcos_overlap_report",
]
