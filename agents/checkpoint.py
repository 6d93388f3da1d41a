"""Reading a saved agent safely: data only, and no module named inside a file is imported.

A saved agent is a zip of ``agent.json`` and ``tensors.pt`` (plain tensors, read with
``torch.load(weights_only=True)``, which refuses pickled objects). The class that rebuilds it is
found by the rule's registered name, never by importing the module a file names: a file from
someone else cannot make ``load`` run code.
"""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from typing import Any

import torch


class CheckpointError(ValueError):
    """The file is not an np-envs checkpoint of the expected kind."""


def read_agent_file(path: str | pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, tensors)`` of a saved agent, or CheckpointError saying what is wrong."""
    path = pathlib.Path(path)
    if not path.exists() and path.suffix == "":
        path = path.with_suffix(".zip")
    what = f"{path} is not an np-envs checkpoint of this kind"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {"agent.json", "tensors.pt"} <= names:
                raise CheckpointError(f"{what}: it has no agent.json/tensors.pt "
                                      f"(found {sorted(names)[:5]})")
            meta = json.loads(zf.read("agent.json"))
            state = torch.load(io.BytesIO(zf.read("tensors.pt")), weights_only=True)
    except FileNotFoundError:
        raise
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, EOFError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{what}: {type(err).__name__}: {err}") from None
    if not isinstance(meta, dict) or "hyperparameters" not in meta:
        raise CheckpointError(f"{what}: agent.json has no hyperparameters")
    return meta, state


def resolve_saved_class(meta: dict[str, Any], expected: type) -> type:
    """The class a checkpoint belongs to, through the registry (or ``expected`` itself).

    The saved ``class`` string is compared, never imported: it must name ``expected`` or the
    class registered under the saved ``name``.
    """
    from agents.registry import _REGISTRY

    saved = meta.get("class", "")
    name = meta.get("name", "")
    candidates = [expected]
    if name in _REGISTRY and isinstance(_REGISTRY[name], type):
        candidates.insert(0, _REGISTRY[name])
    for cls in candidates:
        if f"{cls.__module__}:{cls.__qualname__}" == saved or (
            saved.endswith(f":{cls.__qualname__}") and cls.name == name and name
        ):
            if not issubclass(cls, expected):
                raise CheckpointError(f"the file holds a {cls.__name__}, not a "
                                      f"{expected.__name__}")
            return cls
    raise CheckpointError(
        f"the file holds {saved or 'an unknown class'} (rule {name!r}), which is neither "
        f"{expected.__name__} nor registered: register the rule (agents.register_agent) or "
        "load it with its own class"
    )
