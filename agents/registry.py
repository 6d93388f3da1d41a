"""Agents by name: built-ins, registered plug-ins, entry points, ``module:Class`` strings, SB3.

Resolution order for ``make_agent(name, env, **kwargs)``:

1. names registered with ``register_agent`` (the built-ins ``np``, ``wn-np``, ``reinforce``,
   ``sgd``, ``wp`` are registered this way);
2. the Stable-Baselines3 / sb3-contrib names (``ppo``, ``a2c``, ``sac``, ``td3``, ``ddpg``,
   ``ars``), built by ``agents.sb3_bridge.make_sb3_agent`` (imported only when asked for);
3. plug-ins advertised by installed packages in the ``np_envs.agents`` entry-point group, e.g.
   in a plug-in's pyproject.toml: ``[project.entry-points."np_envs.agents"] wp = "pkg.mod:WP"``;
4. ``"package.module:ClassName"``, imported on the spot.

A name that is none of these raises ValueError listing the known names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "np_envs.agents"
SB3_NAMES: tuple[str, ...] = ("ppo", "a2c", "sac", "td3", "ddpg", "ars")

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_agent(name: str, cls: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make ``make_agent(name, env, **kw)`` call ``cls(env, **kw)``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"agent name must be a non-empty string, got {name!r}")
    if name in SB3_NAMES:
        raise ValueError(f"{name!r} is reserved for the Stable-Baselines3 algorithm")
    if not callable(cls):
        raise TypeError(f"register_agent({name!r}, ...) needs a class or callable, got {cls!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls and not overwrite:
        raise ValueError(f"agent {name!r} is already registered ({_REGISTRY[name]!r}); "
                         "pass overwrite=True to replace it")
    _REGISTRY[name] = cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_agents() -> list[str]:
    """Every name ``make_agent`` accepts (besides ``module:Class`` strings)."""
    return sorted(set(_REGISTRY) | set(SB3_NAMES) | set(_entry_points()))


def _import_object(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"expected 'package.module:ClassName', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_agent(name: str) -> Callable[..., Any]:
    """The class (or factory) behind ``name``; SB3 names resolve to a factory."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in SB3_NAMES:
        from agents.sb3_bridge import make_sb3_agent

        def factory(env: Any, **kwargs: Any) -> Any:
            return make_sb3_agent(name, env, **kwargs)

        return factory
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    if ":" in name:
        try:
            return _import_object(name)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot import agent {name!r}: {err}") from err
    raise ValueError(
        f"unknown agent {name!r}; known: {', '.join(available_agents())}, or "
        "'package.module:ClassName'"
    )


def make_agent(name: str, env: Any, **kwargs: Any) -> Any:
    """Build the agent called ``name`` on ``env`` (a gymnasium Env or VectorEnv)."""
    return resolve_agent(name)(env, **kwargs)


def _register_builtins() -> None:
    from agents.node_perturbation import NodePerturbation
    from agents.reinforce import BackpropReinforce
    from agents.sgd import SGDOracle
    from agents.weight_normalised import WeightNormalisedNP
    from agents.weight_perturbation import WeightPerturbation

    for cls in (NodePerturbation, WeightNormalisedNP, BackpropReinforce, SGDOracle,
                WeightPerturbation):
        register_agent(cls.name, cls)


_register_builtins()
