"""Shared test set-up: real data from ``../shared/data`` unless ``NP_ENVS_DATA`` says otherwise."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if "NP_ENVS_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["NP_ENVS_DATA"] = str(SHARED_DATA)
# downloads and recorded checksums go to a throw-away cache, never the user's
os.environ["NP_ENVS_CACHE"] = tempfile.mkdtemp(prefix="np-envs-test-cache-")


def _data_present(*relative: str) -> bool:
    root = Path(os.environ.get("NP_ENVS_DATA", SHARED_DATA))
    return all((root / name).is_file() for name in relative)


needs_mnist = pytest.mark.skipif(
    not _data_present(
        "mnist/train-images-idx3-ubyte.gz",
        "mnist/train-labels-idx1-ubyte.gz",
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
    ),
    reason="MNIST files not found under NP_ENVS_DATA (set it to a folder with mnist/*.gz)",
)
needs_sarcos_test_file = pytest.mark.skipif(
    not _data_present("sarcos/sarcos_inv_test.mat"),
    reason="sarcos/sarcos_inv_test.mat not found under NP_ENVS_DATA",
)
