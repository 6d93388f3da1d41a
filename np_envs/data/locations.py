"""Where data files live: the data folder, the user cache, and each file's path in them.

- ``NP_ENVS_DATA`` set: files are read from ``$NP_ENVS_DATA/<dataset>/<name>`` (for example
  ``mnist/train-images-idx3-ubyte.gz``, ``sarcos/sarcos_inv_test.mat``). That folder may be
  read-only (shared data, CI); np-envs never writes into it while loading.
- otherwise: the same layout under the user cache, where missing files are downloaded on first use.

The user cache is ``NP_ENVS_CACHE`` if set (tests, sandboxes), else ``pooch.os_cache("np-envs")``;
it also holds the checksums recorded for files without a published one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pooch

from .registry import DataFile

ENV_DATA = "NP_ENVS_DATA"
ENV_CACHE = "NP_ENVS_CACHE"
FETCH_COMMAND = "np-envs data fetch"
NOT_A_FOLDER, READ_ONLY = "not a folder", "read-only"

def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """The user cache: downloads (without ``NP_ENVS_DATA``) and recorded checksums.

    ``NP_ENVS_CACHE`` overrides it (tests, sandboxes); else ``pooch.os_cache("np-envs")``.
    """
    return _env_path(ENV_CACHE) or Path(pooch.os_cache("np-envs")).resolve()


def data_dir() -> Path:
    """The folder data files are read from: ``NP_ENVS_DATA`` if set, else :func:`cache_dir`."""
    return _env_path(ENV_DATA) or cache_dir()


def data_dir_is_override() -> bool:
    """True when ``NP_ENVS_DATA`` chooses the folder (which loaders must never write into)."""
    return _env_path(ENV_DATA) is not None


def path_for(file: DataFile, folder: Path | None = None) -> Path:
    """Where ``file`` is expected: ``<folder>/<dataset>/<name>``."""
    return (folder or data_dir()) / file.dataset / file.name


@dataclass(frozen=True)
class WriteProblem:
    """Why nothing can be written at ``path``: ``kind`` is ``"not a folder"`` or ``"read-only"``.

    The two get different advice: a file where a folder is expected means the setting is wrong;
    a read-only folder means asking for access or choosing another folder.
    """

    kind: str
    path: Path

    @property
    def not_a_folder(self) -> bool:
        return self.kind == NOT_A_FOLDER

    def __str__(self) -> str:
        if self.not_a_folder:
            return f"{self.path} is a file, not a folder"
        return f"{self.path} is read-only"


def write_problem(folder: Path) -> WriteProblem | None:
    """Why files cannot be created in ``folder`` (or its nearest existing parent); None if they can.

    A folder whose mode grants nobody write access counts as read-only even for root, who could
    write anyway: such a folder (shared data) is meant to stay untouched.
    """
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return WriteProblem(NOT_A_FOLDER, probe)
    if not (probe.stat().st_mode & 0o222) or not os.access(probe, os.W_OK | os.X_OK):
        return WriteProblem(READ_ONLY, probe)
    return None


def is_writable(folder: Path) -> bool:
    """Whether files may be created in ``folder`` (see :func:`write_problem` for why not)."""
    return write_problem(folder) is None
