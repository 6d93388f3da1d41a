"""From what a user types (flags, a YAML file) to fully resolved run specs.

Why one place: ``compare`` and ``sweep`` must resolve settings the same way, in one documented
order (later wins): task defaults (:mod:`np_envs.experiments.defaults`) < the YAML config's
``defaults`` < its entry for the agent < command-line flags (``--hidden``, ``--lr``, ``--lrs``).
The command line checks everything first (:mod:`np_envs.experiments.settings`); the functions
here raise ``ValueError`` with a message a user can act on.

A ``--config`` file has one of two layouts. RL Zoo's (the shipped tuned defaults,
``np_envs/hyperparams/tuned.yml``, are written this way): env id, then agent::

    NPSarcos-v0:
      np:
        n_envs: 100                # inputs per trial (--num-envs)
        epochs: 30.0               # budget when the command gives none (or n_timesteps)
        hidden_sizes: [800]
        learning_rate: 1.0e-4
        sigma: 1.0e-4
      reinforce-hn:                # an alias: the same rule with other settings
        agent: reinforce
        hidden_noise: true
      ppo:
        policy_kwargs: {net_arch: [800]}   # SB3: the architecture, as SB3 users write it

or one task's settings (all keys optional)::

    num_envs: 100
    env_kwargs: {split_scheme: test-file}
    defaults:                  # make_agent keywords, for each agent that takes them
      hidden_sizes: [800]
    agents:
      np: {learning_rate: 1.0e-4, sigma: 1.0e-4}
      wn-np-all: {agent: wn-np, normalize: all}

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


#: top-level keys of the one-task layout
TASK_KEYS = ("num_envs", "env_kwargs", "defaults", "agents")
#: keys of an agent entry that set the command, not the agent (they must agree across agents)
COMMAND_KEYS = ("n_envs", "num_envs", "epochs", "trials", "n_timesteps", "env_kwargs")
_ENV_ID = re.compile(r"^[A-Za-z0-9_./:-]+-v\d+$")


def _yaml_text(path: Path) -> Any:
    """Parse ``path``; a syntax error names its line and column."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err})") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: {where}{problem} (not valid YAML)") from err


def _normal_entry(path: Path, where: str, label: str, entry: Any) -> dict[str, Any]:
    """An agent entry with SB3's ``policy_kwargs.net_arch`` (a list of widths) read as
    ``hidden_sizes``, so that ``--hidden`` still wins over it."""
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {where}{label} must map settings to values, got {entry!r}")
    entry = dict(entry)
    policy = entry.get("policy_kwargs")
    if isinstance(policy, dict) and isinstance(policy.get("net_arch"), list):
        policy = dict(policy)
        entry.setdefault("hidden_sizes", policy.pop("net_arch"))
        if policy:
            entry["policy_kwargs"] = policy
        else:
            entry.pop("policy_kwargs")
    return entry


def load_config(path: str | Path | None, env_id: str | None = None) -> dict[str, Any]:
    """Read a YAML (or JSON) config in either layout of the module docstring.

    Returns the one-task layout plus ``per_agent`` (label -> the entry's command keys, see
    ``COMMAND_KEYS``). An unknown top-level key is an error, not ignored; an RL Zoo file needs
    ``env_id`` and must have an entry for it.
    """
    if path is None:
        return {}
    path = Path(path)
    data = _yaml_text(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    data = _coerce(data)
    keys = set(map(str, data))
    if keys and not keys <= set(TASK_KEYS):
        if not all(_ENV_ID.match(k) for k in keys):
            raise ValueError(
                f"{path}: unknown keys {sorted(keys - set(TASK_KEYS))}; the top level holds "
                f"either {list(TASK_KEYS)} or env ids (RL Zoo layout, e.g. NPSarcos-v0:)")
        if env_id is None or env_id not in data:
            raise ValueError(f"{path}: no entry for {env_id}; the file has {sorted(keys)}")
        block = data[env_id] or {}
        if not isinstance(block, dict):
            raise ValueError(f"{path}: {env_id} must map agent names to settings")
        data = {"agents": block}
        where = f"{env_id}."
    else:
        where = "agents."
    agents = data.get("agents") or {}
    if not isinstance(agents, dict):
        raise ValueError(f"{path}: 'agents' must map names to settings")
    normal: dict[str, dict[str, Any]] = {}
    per_agent: dict[str, dict[str, Any]] = {}
    for label, entry in agents.items():
        entry = _normal_entry(path, where, str(label), entry)
        per_agent[str(label)] = {k: entry.pop(k) for k in COMMAND_KEYS if k in entry}
        normal[str(label)] = entry
    for key in ("defaults", "env_kwargs"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"{path}: '{key}' must be a mapping, got {data[key]!r}")
    return {**data, "agents": normal, "per_agent": per_agent}


def parse_rate(text: str | float, eta_star: float | None = None) -> float:
    """``1e-4`` or ``0.5eta*`` (a fraction of the linear task's critical rate)."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().replace(" ", "")
    if s.endswith("eta*"):
        if eta_star is None:
            raise ValueError(f"{text!r}: 'eta*' rates need the linear task (NPLinearTeacher-v0)")
        factor = s[: -len("eta*")].rstrip("*x") or "1"
        return _number(factor, text) * eta_star
    return _number(s, text)


def _number(s: str, text: Any) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (e.g. 1e-4, or 0.5eta* on the linear "
                         "task)") from None


def parse_rates(text: str, eta_star: float | None = None) -> list[float]:
    """``LO:HI:N`` (N log-spaced values from LO to HI) or a comma list; ``eta*`` allowed."""
    text = text.strip()
    if text.count(":") == 2:
        lo, hi, n = text.split(":")
        if not n.strip().isdigit():
            raise ValueError(f"{text!r}: N in LO:HI:N must be a whole number >= 1")
        a, b, count = parse_rate(lo, eta_star), parse_rate(hi, eta_star), int(n)
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)) or count < 1:
            raise ValueError(f"{text!r}: need finite LO > 0, HI > 0 and N >= 1")
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
    """``800`` -> [(800,)]; ``50,100`` -> [(50,), (100,)]; ``400x400`` -> [(400, 400)].

    A width must be a positive whole number as typed: ``2.7`` is refused, never truncated.
    """
    if not text:
        return []
    archs = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        widths = item.strip().lower().split("x")
        if not all(w.strip().isdigit() and int(w) > 0 for w in widths):
            raise ValueError(f"{item.strip()!r} is not a list of positive whole widths")
        archs.append(tuple(int(w) for w in widths))
    if not archs:
        raise ValueError("no width given")
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
        num_envs = next(n for n in (self.num_envs, self.config.get("num_envs"),
                                    task["num_envs"]) if n is not None)
        env_kwargs = {**(self.config.get("env_kwargs") or {}), **self.env_kwargs}
        eval_every = self.budget / 20 if self.eval_every is None else self.eval_every
        if self.unit == "trials" and self.eval_every is None:
            eval_every = max(1.0, float(math.floor(eval_every)))  # the default: whole trials
        if not (int(num_envs) >= 1 and eval_every > 0 and self.budget > 0):
            raise ValueError(f"need num_envs >= 1, eval_every > 0 and budget > 0, got "
                             f"{num_envs}, {eval_every}, {self.budget}")
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


def rule_keywords(rule: str) -> set[str]:
    """The ``make_agent`` keywords rule ``rule`` (a built-in or plug-in RewardAgent) takes."""
    from agents.population import accepted_keywords
    from agents.registry import resolve_agent

    return set(accepted_keywords(resolve_agent(rule)))


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
    else:  # shared defaults go to the rules that take them (sgd has no sigma)
        base = {k: v for k, v in base.items() if k in rule_keywords(rule)}
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
