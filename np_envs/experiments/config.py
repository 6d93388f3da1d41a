"""From what a user types (flags, a YAML file) to fully resolved run specs.

Why one place: ``compare`` and ``sweep`` must resolve settings the same way, in one documented
order (later wins): task defaults (:mod:`np_envs.experiments.defaults`) < the YAML config's
``defaults`` < its entry for the agent < command-line flags (``--hidden``, ``--lr``, ``--lrs``).

YAML config (all keys optional)::

    num_envs: 100              # inputs per trial
    env_kwargs: {split_scheme: test-file}
    defaults:                  # keyword arguments of make_agent for every agent
      hidden_sizes: [800]
    agents:
      np: {learning_rate: 1.0e-4, sigma: 1.0e-4}
      wn-np-all:               # an alias: the same rule with other settings
        agent: wn-np
        normalize: all
      ppo: {learning_rate: 3.0e-4, n_epochs: 5}

A learning rate may be written relative to the linear task's critical rate, e.g. ``0.5eta*``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments import defaults as dflt

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(value: Any) -> Any:
    """YAML reads ``1e-4`` (no dot) as a string: turn number-like strings into floats."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    return value


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML (or JSON) config; an unknown top-level key is an error, not ignored."""
    if path is None:
        return {}
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    allowed = {"num_envs", "env_kwargs", "defaults", "agents"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    agents = data.get("agents") or {}
    if not isinstance(agents, dict):
        raise ValueError(f"{path}: 'agents' must map names to settings")
    return _coerce(data)


def parse_rate(text: str | float, eta_star: float | None = None) -> float:
    """``1e-4`` or ``0.5eta*`` (a fraction of the linear task's critical rate)."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().replace(" ", "")
    if s.endswith("eta*"):
        if eta_star is None:
            raise ValueError(f"{text!r}: 'eta*' rates need the linear task (NPLinearTeacher-v0)")
        factor = s[: -len("eta*")].rstrip("*x") or "1"
        return float(factor) * eta_star
    return float(s)


def parse_rates(text: str, eta_star: float | None = None) -> list[float]:
    """``LO:HI:N`` (N log-spaced values from LO to HI) or a comma list; ``eta*`` allowed."""
    text = text.strip()
    if text.count(":") == 2:
        lo, hi, n = text.split(":")
        a, b, count = parse_rate(lo, eta_star), parse_rate(hi, eta_star), int(n)
        if a <= 0 or b <= 0 or count < 1:
            raise ValueError(f"{text!r}: need positive LO and HI and N >= 1")
        if count == 1:
            return [a]
        return [float(v) for v in np.geomspace(a, b, count)]
    return [parse_rate(t, eta_star) for t in text.split(",") if t.strip()]


def parse_overrides(text: str | None) -> dict[str, str]:
    """``np=1e-4,sgd=0.5eta*`` -> {label: rate text}; rates resolve per width in make_spec."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"--lr expects name=value pairs, got {item!r}")
        name, value = item.split("=", 1)
        parse_rate(value, eta_star=1.0)  # fail early on a malformed number
        out[name.strip()] = value.strip()
    return out


def parse_architectures(text: str | None) -> list[tuple[int, ...]]:
    """``800`` -> [(800,)]; ``50,100`` -> [(50,), (100,)]; ``400x400`` -> [(400, 400)]."""
    if not text:
        return []
    archs = []
    for item in str(text).split(","):
        if item.strip():
            archs.append(tuple(int(w) for w in item.strip().lower().split("x")))
    if any(w < 1 for a in archs for w in a):
        raise ValueError(f"widths must be positive, got {text!r}")
    return archs


def parse_json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {text!r}")
    return value


@dataclass
class Settings:
    """What every run of one invocation shares."""

    env_id: str
    budget: float
    unit: str
    eval_every: float | None = None
    num_envs: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    target: float | None = None
    divergence_factor: float = 1e3
    diagnostics: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> Settings:
        """Fill in the task's defaults (batch size, metric, cadence: 20 evaluations)."""
        task = dflt.task_defaults(self.env_id)
        if self.env_id == dflt.LINEAR and self.unit == "epochs":
            raise ValueError(f"{self.env_id} is an endless stream: give the budget in trials")
        num_envs = self.num_envs or self.config.get("num_envs") or task["num_envs"]
        env_kwargs = {**(self.config.get("env_kwargs") or {}), **self.env_kwargs}
        eval_every = self.eval_every or self.budget / 20
        if self.unit == "trials":
            eval_every = max(1.0, float(math.floor(eval_every)))
        return Settings(
            env_id=self.env_id, budget=self.budget, unit=self.unit, eval_every=eval_every,
            num_envs=int(num_envs), env_kwargs=env_kwargs,
            metric=self.metric or task["metric"], target=self.target,
            divergence_factor=self.divergence_factor, diagnostics=tuple(self.diagnostics),
            config=self.config,
        )

    def eta_star(self, hidden: tuple[int, ...]) -> float | None:
        if self.env_id != dflt.LINEAR or not hidden:
            return None
        return dflt.critical_rate(self.env_kwargs, hidden)


def agent_entry(config: dict[str, Any], label: str) -> tuple[str, dict[str, Any]]:
    """(rule name, settings) of ``label``: a config entry (``agent:`` names the rule) or a
    built-in name."""
    entry = dict((config.get("agents") or {}).get(label) or {})
    rule = str(entry.pop("agent", label))
    return rule, entry


def make_spec(
    settings: Settings, label: str, seed: int, hidden: tuple[int, ...] | None,
    learning_rate: float | str | None = None,
) -> Any:
    """One fully resolved RunSpec for ``label`` (see the module docstring for the order)."""
    from np_envs.experiments.spec import RunSpec

    s = settings
    rule, entry = agent_entry(s.config, label)
    task = dflt.task_defaults(s.env_id)
    base = dict(s.config.get("defaults") or {})
    entry_hidden = entry.pop("hidden_sizes", None) or base.pop("hidden_sizes", None)
    base.pop("hidden_sizes", None)
    arch = tuple(hidden or entry_hidden or task["hidden"])
    kwargs: dict[str, Any] = dflt.agent_kwargs(s.env_id, rule, arch)
    if rule in dflt.SB3_NAMES:
        base = {k: v for k, v in base.items() if k in dflt.SB3_KEYS}
    kwargs.update(base)
    kwargs.update(entry)
    kwargs["hidden_sizes"] = [int(h) for h in arch]
    eta = s.eta_star(arch)
    if learning_rate is not None:
        kwargs["learning_rate"] = parse_rate(learning_rate, eta)
    elif "learning_rate" in kwargs:
        kwargs["learning_rate"] = parse_rate(kwargs["learning_rate"], eta)
    else:
        lr = dflt.default_learning_rate(s.env_id, rule, arch, int(s.num_envs or 1), s.env_kwargs)
        if lr is not None:
            kwargs["learning_rate"] = lr
    kwargs.pop("seed", None)
    env_kwargs = dict(s.env_kwargs)
    env_kwargs.setdefault("evals_per_input", int(kwargs.pop("evals_per_input", 0))
                          or dflt.evals_per_input(rule))
    return RunSpec(
        env_id=s.env_id, agent=rule, seed=int(seed), budget=float(s.budget),
        eval_every=float(s.eval_every or s.budget), unit=s.unit, num_envs=int(s.num_envs or 1),
        env_kwargs=env_kwargs, agent_kwargs=kwargs, metric=str(s.metric or "mse"),
        target=s.target, divergence_factor=s.divergence_factor,
        diagnostics=tuple(s.diagnostics), label=label,
    )
