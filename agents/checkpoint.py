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
import pickle
import zipfile
import zlib
from typing import Any

import torch


class CheckpointError(ValueError):
    """The file is not an np-envs checkpoint of the expected kind."""


#: what a truncated, empty, foreign or tampered file raises on the way in (zip, JSON, torch)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError, OSError,
                KeyError, pickle.UnpicklingError)
#: ``agent.json`` entries every np-envs agent file has, and their types
_META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "hyperparameters": dict, "obs_dim": int, "act_dim": int, "num_timesteps": int,
    "n_updates": int,
}


def not_this_kind(path: Any, reason: str) -> CheckpointError:
    """The one message for every file ``load`` cannot use, whoever's loader refuses it."""
    return CheckpointError(f"{path} is not an np-envs checkpoint of this kind: {reason}")


def read_agent_file(path: str | pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, tensors)`` of a saved agent, or CheckpointError saying what is wrong.

    ``tensors.pt`` is read with ``weights_only=True``: a pickled object (code) in it is refused
    by torch before anything runs, and reported here like any other foreign file.
    """
    path = pathlib.Path(path)
    if not path.exists() and path.suffix == "":
        path = path.with_suffix(".zip")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {"agent.json", "tensors.pt"} <= names:
                hint = ("; a Stable-Baselines3 file: load it with agents.sb3_bridge.SB3Agent.load"
                        if "data" in names and "policy.pth" in names else "")
                raise not_this_kind(path, f"it has no agent.json/tensors.pt (found "
                                          f"{sorted(names)[:5]}){hint}")
            meta = json.loads(zf.read("agent.json"))
            state = torch.load(io.BytesIO(zf.read("tensors.pt")), weights_only=True)
    except FileNotFoundError:
        raise
    except CheckpointError:
        raise
    except _READ_ERRORS as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise not_this_kind(path, f"{type(err).__name__}: {text}"[:300]) from None
    if not isinstance(meta, dict):
        raise not_this_kind(path, "agent.json is not an object")
    for field, kind in _META_FIELDS.items():
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            raise not_this_kind(path, f"agent.json has no valid {field!r}")
    network = state.get("network") if isinstance(state, dict) else None
    if not isinstance(network, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in network.items()):
        raise not_this_kind(path, "tensors.pt holds no network tensors")
    return meta, state


def shape_mismatch(path: Any, meta: dict[str, Any], agent: Any,
                   err: Exception) -> CheckpointError:
    """A file saved for other observation/action sizes (or another architecture) than the
    agent rebuilt on the given env."""
    saved = f"observations of {meta.get('obs_dim')} and actions of {meta.get('act_dim')}"
    here = (f"observations of {getattr(agent, 'obs_dim', '?')} and actions of "
            f"{getattr(agent, 'act_dim', '?')}")
    return not_this_kind(path, f"its shapes do not fit: saved for {saved}, the env has {here} "
                               f"({err})")


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


#: ``BaseAlgorithm.load`` keywords with no meaning here (no pickled objects, no system info to
#: print, and a loaded agent always continues the env where it stands): accepted and ignored,
#: so SB3 code that passes them keeps working
SB3_ONLY_LOAD_KEYWORDS = ("custom_objects", "print_system_info", "force_reset")


def drop_sb3_only_load_keywords(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in SB3_ONLY_LOAD_KEYWORDS}


def zip_path_for_save(path: str | pathlib.Path) -> pathlib.Path:
    """Where ``save(path)`` writes: ``.zip`` added when ``path`` has no suffix, its folder made."""
    path = pathlib.Path(path)
    if path.suffix == "":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def policy_state(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict inside ``get_parameters()`` output: ``{"policy": ...}`` (SB3's layout)
    or np-envs 0.1's ``{"network": ...}``."""
    state = params.get("policy", params.get("network"))
    if not isinstance(state, dict):
        raise ValueError(f"expected get_parameters() output, {{'policy': state_dict}}; got the "
                         f"keys {sorted(params)}")
    return state


def copy_parameters(mine: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                    exact_match: bool, owner: str) -> None:
    """Copy ``state`` into the tensors ``mine`` (``set_parameters``' rule, as SB3's):
    ``exact_match`` requires the same names; otherwise names ``mine`` lacks are skipped (as
    torch's ``strict=False``; one must match). Every shape is checked before the first copy,
    so a bad state changes nothing."""
    unknown = sorted(set(state) - set(mine))
    missing = sorted(set(mine) - set(state))
    if (exact_match and (unknown or missing)) or not set(state) & set(mine):
        raise ValueError(f"parameter names do not match the {owner}'s {sorted(mine)}: "
                         f"missing {missing}, unknown {unknown}")
    state = {name: value for name, value in state.items() if name in mine}
    for name, value in state.items():
        if tuple(value.shape) != tuple(mine[name].shape):
            raise ValueError(f"{name} has shape {tuple(value.shape)}, the {owner}'s is "
                             f"{tuple(mine[name].shape)}")
    with torch.no_grad():
        for name, value in state.items():
            mine[name].copy_(value)
