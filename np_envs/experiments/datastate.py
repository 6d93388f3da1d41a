"""Data-only state files (JSON plus ``.npz``): what checkpoints store instead of pickles.

Why: run folders and checkpoints are shared between researchers, and unpickling a file runs
whatever code it names. Stream positions and random generator states are plain data (dicts,
lists, numbers -- 128-bit ones included -- and numpy arrays), so they are written as JSON with
every array moved to an ``.npz`` file beside it, and read back with ``allow_pickle=False``: a
file carrying a pickle payload is refused, never executed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments.results import atomic_write_bytes

ARRAY_KEY = "__array__"


class StateFileError(ValueError):
    """A state file that is not plain data (or not one of ours)."""


def _split(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise StateFileError("object arrays cannot be stored as data")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {ARRAY_KEY: key}
    if isinstance(value, dict):
        if ARRAY_KEY in value:
            raise StateFileError(f"the key {ARRAY_KEY!r} is reserved")
        return {str(k): _split(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StateFileError(f"{type(value).__name__} is not plain data")


def _join(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {ARRAY_KEY}:
            return np.array(arrays[value[ARRAY_KEY]])
        return {k: _join(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, arrays) for v in value]
    return value


def write_data_state(base: str | Path, state: dict[str, Any]) -> list[Path]:
    """``base.json`` and ``base.npz`` (atomic, arrays first); returns the two paths."""
    base = Path(base)
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz, js = base.with_suffix(".npz"), base.with_suffix(".json")
    atomic_write_bytes(npz, buffer.getvalue())
    atomic_write_bytes(js, json.dumps(tree).encode())
    return [js, npz]


def read_data_state(base: str | Path) -> dict[str, Any]:
    """The state :func:`write_data_state` wrote; StateFileError for anything but plain data."""
    base = Path(base)
    try:
        tree = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        with np.load(base.with_suffix(".npz"), allow_pickle=False) as arrays:
            return _join(tree, arrays)
    except (ValueError, OSError, KeyError) as err:
        raise StateFileError(f"{base}: not an np-envs state file ({err})") from None
