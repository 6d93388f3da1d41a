"""One validated settings object per ``compare`` / ``sweep`` command, checked before any run.

Why: a typo must fail in a second, not inside a run an hour later, and must leave nothing
behind. Every flag and the ``--config`` file are parsed here, once, into a frozen
:class:`CommandSettings` (a pydantic model: each field states what it allows).
:meth:`CommandSettings.check` then resolves every agent, builds the env once and checks
``--out``; :meth:`CommandSettings.specs` gives the fully resolved run specs (learning rates and
sigma checked in them). A bad value raises :class:`UsageError`: one line naming the flag, the
value and what is allowed; the commands print it and exit 2. Nothing is written before all of
this passes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from np_envs.experiments import config as cfg
from np_envs.experiments import defaults as dflt
from np_envs.experiments.spec import BACKENDS, DIAGNOSTICS, METRICS, UNITS, RunSpec
from np_envs.experiments.summary import CLIMB_FACTOR

Command = Literal["compare", "sweep"]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Width = Annotated[int, Field(ge=1, strict=True)]
#: names ``--config`` accepts for the files shipped in ``np_envs/hyperparams``
SHIPPED_CONFIGS = ("tuned",)


class UsageError(ValueError):
    """A bad command: names the flag, the bad value and what is allowed (exit code 2)."""

    def __init__(self, flag: str, value: Any, allowed: str) -> None:
        self.flag, self.value, self.allowed = flag, value, allowed
        if value is None:
            super().__init__(f"{flag}: {allowed}")
            return
        shown = value if isinstance(value, str) and value and " " not in value else repr(value)
        super().__init__(f"{flag} {shown}: {allowed}")


def shipped_config(name: str = "tuned") -> Path:
    """Path of a YAML file shipped with the package (``np_envs/hyperparams/<name>.yml``)."""
    return Path(str(resources.files("np_envs") / "hyperparams" / f"{name}.yml"))


#: what each field allows, as the error message says it
ALLOWED: dict[str, str] = {
    "env_id": "an environment id, e.g. NPLinearTeacher-v0",
    "labels": "one or more agent names, comma-separated, each once",
    "budget": "a finite number > 0",
    "unit": f"one of {UNITS}",
    "seeds": "a whole number >= 1 (seeds OFFSET .. OFFSET+K-1)",
    "seed_offset": "a whole number >= 0",
    "num_envs": "a whole number >= 1 (inputs per trial)",
    "eval_every": "a finite number > 0",
    "metric": f"one of {METRICS}",
    "target": "a finite number",
    "divergence_factor": "a finite number > 1 (a run is diverged when its test error passes "
                         "this x its initial error)",
    "diagnostics": f"a comma-separated list of {', '.join(DIAGNOSTICS)}",
    "archs": "positive whole widths: 800, 50,100 or 400x400",
    "climb_factor": "a finite number >= 1",
    "backend": f"one of {BACKENDS}",
    "jobs": "a whole number >= 1",
}


class CommandSettings(BaseModel):
    """Everything one ``compare`` or ``sweep`` command asked for, each value checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: Command
    env_id: str = Field(min_length=1)
    labels: tuple[str, ...] = Field(min_length=1)
    budget: PositiveFinite
    unit: Literal["epochs", "trials"]
    seeds: Annotated[int, Field(ge=1)]
    seed_offset: Annotated[int, Field(ge=0)] = 0
    num_envs: Annotated[int, Field(ge=1)] | None = None
    eval_every: PositiveFinite | None = None
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    metric: Literal["mse", "accuracy"] | None = None
    target: Annotated[float, Field(allow_inf_nan=False)] | None = None
    divergence_factor: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 1e3
    diagnostics: tuple[Literal["cosine", "norms", "pr"], ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)
    archs: tuple[tuple[Width, ...], ...] = ()
    lr_overrides: dict[str, str] = Field(default_factory=dict)
    lrs: tuple[str, ...] | None = None
    climb_factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = CLIMB_FACTOR
    out: Path
    backend: Literal["local", "ray"] = "local"
    jobs: Annotated[int, Field(ge=1)] = 1
    address: str | None = None
    progress: bool = True
    draw: bool = True
    wait: bool = False

    # ------------------------------------------------------------------ from the command line
    @classmethod
    def from_args(cls, args: argparse.Namespace, command: Command) -> CommandSettings:
        """Parse and check every flag of ``args`` (and the ``--config`` file).

        Raises:
            UsageError: the first bad value, named by its flag.
        """
        flags = _flags(command, args)
        config = _read_config(args.config, args.env)
        labels = _labels(args.agents)
        per_agent = {lab: (config.get("per_agent") or {}).get(lab, {}) for lab in labels}
        num_envs = args.num_envs
        if num_envs is None:
            num_envs = _agreed(per_agent, ("n_envs", "num_envs"), "--num-envs")
        budget, unit = _budget(args, flags, per_agent, args.env, config)
        env_kwargs = _json_object(args.env_kwargs)
        shared_kwargs = _agreed(per_agent, ("env_kwargs",), "--env-kwargs")
        if shared_kwargs:
            config = {**config, "env_kwargs": {**(config.get("env_kwargs") or {}),
                                               **shared_kwargs}}
        try:
            archs = tuple(cfg.parse_architectures(args.hidden))
        except ValueError as err:
            raise UsageError("--hidden", args.hidden, f"{ALLOWED['archs']} ({err})") from None
        if command == "compare" and len(archs) > 1:
            raise UsageError("--hidden", args.hidden, "compare takes one architecture (800 or "
                             "400x400); use sweep for several widths")
        linear = args.env == dflt.LINEAR
        data: dict[str, Any] = {
            "command": command, "env_id": args.env, "labels": labels, "budget": budget,
            "unit": unit, "seeds": args.seeds, "seed_offset": args.seed_offset,
            "num_envs": num_envs, "eval_every": args.eval_every, "env_kwargs": env_kwargs,
            "metric": args.metric, "target": args.target,
            "divergence_factor": args.divergence_factor,
            "diagnostics": tuple(d.strip() for d in (args.diagnostics or "").split(",")
                                 if d.strip()),
            "config": config, "archs": archs, "out": args.out, "backend": args.backend,
            "jobs": args.jobs, "address": args.address, "progress": not args.no_progress,
            "draw": not args.no_plots, "wait": bool(getattr(args, "wait", False)),
        }
        if command == "compare":
            data["lr_overrides"] = _overrides(args.lr, labels, linear)
        else:
            data["lrs"] = _rate_list(args.lrs, linear)
            data["climb_factor"] = args.climb_factor
        try:
            settings = cls.model_validate(data)
        except ValidationError as err:
            raise _usage_error(err, data, flags) from None
        settings._cross_check(flags)
        return settings

    def _cross_check(self, flags: dict[str, str]) -> None:
        """Rules that tie two values together."""
        if self.env_id == dflt.LINEAR and self.unit == "epochs":
            raise UsageError(flags["budget"], self.budget, f"{self.env_id} is an endless "
                             f"stream: give the budget in trials ({flags['trials']})")
        if self.unit == "trials" and not float(self.budget).is_integer():
            raise UsageError(flags["budget"], self.budget, "a whole number of trials >= 1")
        if (self.unit == "trials" and self.eval_every is not None
                and not float(self.eval_every).is_integer()):
            raise UsageError("--eval-every", self.eval_every, "a whole number of trials >= 1 "
                             "(the budget is in trials)")
        if self.command == "sweep" and self.target is None:
            raise UsageError("--target", None, "sweep needs a target (the error, or accuracy "
                             "in percent, to reach)")
        metric = self.metric or dflt.task_defaults(self.env_id)["metric"]
        if metric == "accuracy" and self.target is not None and not 0 < self.target <= 100:
            raise UsageError("--target", self.target, "an accuracy in percent, in (0, 100]")
        if metric != "accuracy" and self.target is not None and not self.target > 0:
            raise UsageError("--target", self.target, f"an error ({metric}) > 0 to reach; "
                             "a squared error is never below 0 and exactly 0 only by chance")

    # ------------------------------------------------------------------ checks that import
    def check(self) -> None:
        """Resolve every agent, build the env once, check ``--out``; raise UsageError."""
        for label in self.labels:
            rule, _ = cfg.agent_entry(self.config, label)
            problem = agent_problem(rule)
            if problem:
                via = f" (the --config alias {label!r} names it)" if rule != label else ""
                raise UsageError("--agents", rule, problem + via)
            self._check_agent_keywords(label, rule)
        check_env(self.env_id, self.run_settings().env_kwargs)
        check_out(self.out)

    def _check_agent_keywords(self, label: str, rule: str) -> None:
        """A ``--config`` entry's keyword that the rule does not take would fail every run of it
        (a TypeError inside the job): refuse it here, before anything runs."""
        from agents.registry import SB3_NAMES

        if rule in SB3_NAMES:
            return
        _, entry = cfg.agent_entry(self.config, label)
        accepted = cfg.rule_keywords(rule)
        unknown = sorted(set(entry) - accepted)
        if unknown:
            raise UsageError("--config", self.config_source,
                             f"its entry for {label!r} has {', '.join(unknown)}, which {rule} "
                             f"does not take (it takes {', '.join(sorted(accepted))})")

    def run_settings(self) -> cfg.Settings:
        """What every run of this command shares, with the task's defaults filled in."""
        return cfg.Settings(
            env_id=self.env_id, budget=self.budget, unit=self.unit, eval_every=self.eval_every,
            num_envs=self.num_envs, env_kwargs=dict(self.env_kwargs), metric=self.metric,
            target=self.target, divergence_factor=self.divergence_factor,
            diagnostics=self.diagnostics, config=self.config,
        ).resolved()

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    def specs(self) -> list[RunSpec]:
        """Every run of the command, fully resolved; rates and sigma checked; duplicates (two
        rates that resolve to the same run) folded with a note on stderr."""
        from np_envs.experiments.compare import compare_specs
        from np_envs.experiments.sweep import sweep_specs

        settings = self.run_settings()
        try:
            if self.command == "compare":
                specs = compare_specs(settings, self.labels, self.seed_list,
                                      self.archs[0] if self.archs else None,
                                      dict(self.lr_overrides))
            else:
                specs = sweep_specs(settings, self.labels, list(self.archs) or [None],
                                    list(self.lrs) if self.lrs else None, self.seed_list)
        except (TypeError, ValueError) as err:
            raise UsageError("--config", str(self.config_source), str(err)) from None
        unique: dict[str, RunSpec] = {}
        for spec in specs:
            self._check_spec(spec)
            if spec.run_id in unique:
                print(f"note: {spec.label} at learning rate {spec.learning_rate:g} is asked "
                      "for twice; it runs once", file=sys.stderr)
                continue
            unique[spec.run_id] = spec
        return list(unique.values())

    @property
    def config_source(self) -> str:
        return str(self.config.get("source", "--config"))

    def _check_spec(self, spec: RunSpec) -> None:
        """The resolved numbers of one run: rate and sigma finite and > 0, whole widths."""
        for key in ("learning_rate", "sigma"):
            value = spec.agent_kwargs.get(key)
            if value is None:
                continue
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value > 0):
                from_flag = key == "learning_rate" and self._rate_from_flags(spec.label)
                flag = ("--lr" if self.command == "compare" else "--lrs") if from_flag else (
                    "--config")
                raise UsageError(flag, value, f"{spec.label}'s {key}: a finite number > 0")
        hidden = spec.agent_kwargs.get("hidden_sizes") or []
        if not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise UsageError("--config", hidden, f"{spec.label}'s hidden_sizes: positive whole "
                             "widths")

    def _rate_from_flags(self, label: str) -> bool:
        return label in self.lr_overrides or bool(self.lrs)


# ---------------------------------------------------------------------------- helpers
def _flags(command: Command, args: argparse.Namespace) -> dict[str, str]:
    """Field -> the flag a user typed for it (the budget's depends on the command)."""
    epochs, trials = (("--epochs", "--trials") if command == "compare"
                      else ("--budget-epochs", "--budget-trials"))
    budget = trials if getattr(args, "trials", None) is not None else epochs
    return {"env_id": "--env", "labels": "--agents", "budget": budget, "epochs": epochs,
            "trials": trials, "seeds": "--seeds", "seed_offset": "--seed-offset",
            "num_envs": "--num-envs", "eval_every": "--eval-every", "metric": "--metric",
            "target": "--target", "divergence_factor": "--divergence-factor",
            "diagnostics": "--diagnostics", "archs": "--hidden", "climb_factor":
            "--climb-factor", "backend": "--backend", "jobs": "--jobs", "out": "--out",
            "config": "--config", "unit": budget}


def _usage_error(err: ValidationError, data: dict[str, Any], flags: dict[str, str]
                 ) -> UsageError:
    first = err.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    value = data.get(field, first.get("input"))
    if field == "diagnostics":
        value = ",".join(value)
    if field == "archs":
        value = "x".join(map(str, value[0])) if value else value
    allowed = ALLOWED.get(field, first["msg"])
    if field == "budget" and data.get("unit") == "trials":
        allowed = "a whole number of trials >= 1"
    return UsageError(flags.get(field, field), value, allowed)


def _labels(text: str) -> tuple[str, ...]:
    labels = tuple(a.strip() for a in (text or "").split(",") if a.strip())
    if not labels:
        raise UsageError("--agents", text, ALLOWED["labels"])
    twice = sorted({a for a in labels if labels.count(a) > 1})
    if twice:
        raise UsageError("--agents", text, f"{', '.join(twice)} listed twice; "
                         f"{ALLOWED['labels']}")
    return labels


def _read_config(path: Path | None, env_id: str) -> dict[str, Any]:
    """The ``--config`` file (a shipped name such as ``tuned`` works too), checked."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists() and str(path) in SHIPPED_CONFIGS:
        path = shipped_config(str(path))
    if not path.is_file():
        raise UsageError("--config", str(path), "a YAML file that exists (or one of the shipped "
                         f"names {', '.join(SHIPPED_CONFIGS)})")
    try:
        config = cfg.load_config(path, env_id)
    except ValueError as err:
        raise UsageError("--config", str(path), str(err).removeprefix(f"{path}: ")) from None
    _check_entries(path, config)
    return {**config, "source": str(path)}


#: entry keys whose values must be finite numbers > 0 (or ``<f>eta*`` for rates)
_POSITIVE_KEYS = ("learning_rate", "sigma")


def _check_entries(path: Path, config: dict[str, Any]) -> None:
    """Rates, sigma and widths in the file, named by where they are."""
    sections = {"defaults": config.get("defaults") or {}}
    sections.update({f"agents.{k}": v for k, v in (config.get("agents") or {}).items()})
    for where, entry in sections.items():
        for key in _POSITIVE_KEYS:
            if key in entry:
                _check_rate(entry[key], "--config", f"{path} ({where}.{key})",
                            allow_eta=key == "learning_rate")
        if "hidden_sizes" in entry:
            widths = entry["hidden_sizes"]
            if not (isinstance(widths, list) and widths and all(
                    isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
                raise UsageError("--config", f"{path} ({where}.hidden_sizes: {widths})",
                                 "hidden_sizes must be a list of positive whole widths, e.g. "
                                 "[800] or [400, 400]")
    for label, keys in (config.get("per_agent") or {}).items():
        for key in ("n_envs", "num_envs", "trials", "n_timesteps"):
            if key in keys and not (isinstance(keys[key], (int, float)) and float(
                    keys[key]).is_integer() and keys[key] >= 1):
                raise UsageError("--config", f"{path} (agents.{label}.{key}: {keys[key]})",
                                 f"{key} must be a whole number >= 1")
        if "epochs" in keys and not (isinstance(keys["epochs"], (int, float))
                                     and math.isfinite(keys["epochs"]) and keys["epochs"] > 0):
            raise UsageError("--config", f"{path} (agents.{label}.epochs: {keys['epochs']})",
                             "epochs must be a finite number > 0")


def _check_rate(value: Any, flag: str, shown: str, allow_eta: bool = True) -> None:
    """A rate as written: a finite number > 0, or ``<f>eta*`` with a finite f > 0."""
    text = str(value).strip()
    try:
        rate = cfg.parse_rate(value, eta_star=1.0 if allow_eta else None)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0) or (not allow_eta and text.endswith("eta*")):
        raise UsageError(flag, shown, "a finite number > 0" + (
            " (e.g. 1e-4, or 0.5eta* on the linear task)" if allow_eta else ""))


def _overrides(text: str | None, labels: tuple[str, ...], linear: bool) -> dict[str, str]:
    """``--lr np=1e-4,sgd=0.5eta*``: names among --agents, rates finite and > 0."""
    overrides: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UsageError("--lr", text, f"name=rate pairs, e.g. np=1e-4,sgd=1e-3 ({item!r} "
                             "has no '=')")
        name, rate = (t.strip() for t in item.split("=", 1))
        overrides[name] = rate
    if text is not None and not overrides:
        raise UsageError("--lr", text, "at least one name=rate pair, e.g. np=1e-4")
    for name, rate in overrides.items():
        if name not in labels:
            raise UsageError("--lr", f"{name}={rate}", f"names one of --agents {list(labels)}")
        _check_rate(rate, "--lr", f"{name}={rate}")
        _check_eta(rate, linear, "--lr", f"{name}={rate}")
    return overrides


def _check_eta(rate: str, linear: bool, flag: str, shown: str) -> None:
    if "eta*" in rate and not linear:
        raise UsageError(flag, shown, f"eta* rates are fractions of the linear task's critical "
                         f"rate: use them with --env {dflt.LINEAR}, plain numbers elsewhere")


def _rate_list(text: str | None, linear: bool) -> tuple[str, ...] | None:
    """``--lrs``: LO:HI:N or a comma list, each rate finite and > 0; a rate given twice runs
    once (with a note). eta*-relative entries stay text (they resolve per width)."""
    if text is None:
        return None
    allowed = "LO:HI:N (N log-spaced rates) or a comma list of rates > 0, e.g. 1e-5:1e-3:7"
    if "eta*" in text:
        _check_eta(text, linear, "--lrs", text)
    try:
        if "eta*" in text and text.count(":") == 2:
            lo, hi, n = text.split(":")
            factors = cfg.parse_rates(f"{lo.replace('eta*', '')}:{hi.replace('eta*', '')}:{n}")
            rates = [f"{f!r}eta*" for f in factors]
        elif "eta*" in text:
            rates = [t.strip() for t in text.split(",") if t.strip()]
        else:
            rates = [repr(v) for v in cfg.parse_rates(text)]
    except ValueError as err:
        raise UsageError("--lrs", text, f"{allowed} ({err})") from None
    if not rates:
        raise UsageError("--lrs", text, allowed)
    for rate in rates:
        _check_rate(rate, "--lrs", text if len(rates) == 1 else f"{text} ({rate})")
    unique: dict[tuple[float, bool], str] = {}
    for rate in rates:
        key = (cfg.parse_rate(rate, eta_star=1.0), "eta*" in rate)
        if key in unique:
            print(f"note: --lrs gives {rate} twice; it runs once", file=sys.stderr)
            continue
        unique[key] = rate
    return tuple(unique.values())


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError("--env-kwargs", text, f"a JSON object, e.g. "
                         f"'{{\"split_scheme\": \"test-file\"}}' ({err.msg} at column "
                         f"{err.colno})") from None
    if not isinstance(value, dict):
        raise UsageError("--env-kwargs", text, "a JSON object, e.g. "
                         "'{\"split_scheme\": \"test-file\"}'")
    return value


def _agreed(per_agent: dict[str, dict[str, Any]], keys: tuple[str, ...], flag: str) -> Any:
    """The one value the chosen agents' config entries give for ``keys`` (None if none)."""
    found = {lab: next(e[k] for k in keys if k in e) for lab, e in per_agent.items()
             if any(k in e for k in keys)}
    values = {json.dumps(v, sort_keys=True) for v in found.values()}
    if len(values) > 1:
        raise UsageError(flag, None, f"the --config entries of the agents differ "
                         f"({', '.join(f'{k}: {v}' for k, v in found.items())}); one command "
                         f"runs every agent alike: give {flag}")
    return next(iter(found.values())) if found else None


def _budget(args: argparse.Namespace, flags: dict[str, str],
            per_agent: dict[str, dict[str, Any]], env_id: str, config: dict[str, Any]
            ) -> tuple[float, str]:
    """The budget and its unit: the flag, else what the config's entries agree on."""
    if args.epochs is not None:
        return args.epochs, "epochs"
    if args.trials is not None:
        return args.trials, "trials"
    need = (f"a budget: {flags['epochs']} X or {flags['trials']} N (or epochs / n_timesteps "
            "in the --config entries of the agents)")
    epochs = _agreed(per_agent, ("epochs",), flags["epochs"])
    if epochs is not None:
        return float(epochs), "epochs"
    trials = _agreed(per_agent, ("trials",), flags["trials"])
    if trials is None and any("n_timesteps" in e for e in per_agent.values()):
        trials = _agreed({lab: {"trials": _steps_to_trials(lab, e, args, config, env_id)}
                          for lab, e in per_agent.items() if "n_timesteps" in e},
                         ("trials",), flags["trials"])
    if trials is not None:
        return float(trials), "trials"
    raise UsageError(flags["epochs"], None, need)


def _steps_to_trials(label: str, entry: dict[str, Any], args: argparse.Namespace,
                     config: dict[str, Any], env_id: str) -> int:
    """SB3's ``n_timesteps`` (env steps over all sub-envs) in trials of this rule."""
    rule, kwargs = cfg.agent_entry(config, label)
    n_envs = args.num_envs or entry.get("n_envs") or entry.get("num_envs") or dflt.task_defaults(
        env_id)["num_envs"]
    evals = int(kwargs.get("evals_per_input") or dflt.evals_per_input(rule))
    steps = float(entry["n_timesteps"])
    trials = steps / (int(n_envs) * evals)
    if not trials.is_integer():
        raise UsageError("--config", f"{label}.n_timesteps: {steps:g}", f"a multiple of "
                         f"n_envs x evals per input = {int(n_envs) * evals}")
    return int(trials)


def agent_problem(rule: str) -> str | None:
    """Why ``rule`` cannot be used as an agent (None if it can)."""
    import inspect

    from agents import RewardAgent, resolve_agent
    from agents.registry import SB3_NAMES, available_agents

    if rule in SB3_NAMES:
        return None
    try:
        cls = resolve_agent(rule)
    except (ValueError, ImportError) as err:
        msg = str(err)
        if ":" not in rule:
            msg = (f"unknown agent; known: {', '.join(available_agents())}, a --config alias, "
                   "or package.module:ClassName")
        return msg
    except Exception as err:  # an entry point or plug-in module that fails on import
        return f"cannot load it: {type(err).__name__}: {err}"
    if not (inspect.isclass(cls) and issubclass(cls, RewardAgent)):
        return (f"{cls!r} is not a subclass of agents.RewardAgent (a plug-in rule must be one; "
                f"or use an SB3 name: {', '.join(SB3_NAMES)})")
    return None


def check_env(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Build the env once (one sub-env) and its test split, which every run is scored on, and
    close both; a failure (a missing MNIST test file, say) is the user's to fix, before any
    run starts."""
    import gymnasium as gym

    import np_envs  # noqa: F401  (registers the tasks)
    from np_envs.evaluation import make_split_env

    try:
        gym.spec(env_id)
    except gym.error.Error:
        known = sorted(k for k in gym.registry if k.startswith("NP"))
        raise UsageError("--env", env_id, f"a registered environment id: {', '.join(known)}"
                         ) from None
    try:
        env = gym.make_vec(env_id, num_envs=1, **env_kwargs)
    except Exception as err:  # the env's own message says what is wrong
        shown = json.dumps(env_kwargs) if env_kwargs else env_id
        flag = "--env-kwargs" if env_kwargs and isinstance(err, (TypeError, ValueError)) else (
            "--env")
        raise UsageError(flag, shown, f"cannot build {env_id}: {err}") from None
    try:
        make_split_env(env, "test", num_envs=1).close()
    except Exception as err:
        raise UsageError("--env", env_id, f"cannot build the test split of {env_id}, on which "
                         f"every run is scored: {err}") from None
    finally:
        env.close()


def check_out(out: Path) -> None:
    """``--out`` is a folder, or a path whose nearest existing parent is a writable folder."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UsageError("--out", str(out), "a folder (or a path to create); this is a file")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError("--out", str(out), "a folder you can write to")
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError("--out", str(out), f"a folder (or a path to create); {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError("--out", str(out), f"a folder you can create; {parent} is not writable")
