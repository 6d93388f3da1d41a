"""What one run is: a fully resolved, hashable description (env, agent, settings, seed, budget).

Why: every default is resolved by the driver before a job starts, so a job is a pure function of
its spec, the spec is written beside the results, and the run's folder name contains a hash of
it. Rerunning the same command finds the same folders (and resumes them); changing any setting
gives new folders instead of silently mixing results.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

UNITS = ("epochs", "trials")
METRICS = ("mse", "accuracy")
#: the extras ``--diagnostics`` measures (see :mod:`np_envs.experiments.diagnostics`)
DIAGNOSTICS = ("cosine", "norms", "pr")
#: where runs execute (see :mod:`np_envs.experiments.executor`)
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RunSpec:
    """One agent x seed x settings on one environment.

    ``budget`` and ``eval_every`` count ``unit``: epochs of the training set, or trials (batches
    of ``num_envs`` inputs) on the endless linear stream. The test split is evaluated at every
    multiple of ``eval_every`` (and at the end); those are also the checkpoints.
    ``metric`` is what the summary ranks on: ``mse`` (lower is better) or ``accuracy`` (percent,
    higher is better). A run whose test mse exceeds ``divergence_factor`` x its initial test mse,
    or whose weights or outputs are NaN/inf, stops and is recorded as diverged.
    """

    env_id: str
    agent: str
    seed: int
    budget: float
    eval_every: float
    unit: str = "epochs"
    num_envs: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    metric: str = "mse"
    target: float | None = None
    divergence_factor: float = 1e3
    diagnostics: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if not self.budget > 0 or not self.eval_every > 0:
            raise ValueError(
                f"budget and eval_every must be positive, got {self.budget}, {self.eval_every}"
            )
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        object.__setattr__(self, "diagnostics", tuple(self.diagnostics))
        if not self.label:
            object.__setattr__(self, "label", self.agent)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["diagnostics"] = list(self.diagnostics)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown RunSpec fields {sorted(unknown)}")
        return cls(**data)

    @property
    def digest(self) -> str:
        """Short hash of every setting (the label is a display name and is left out)."""
        d = self.to_dict()
        d.pop("label")
        text = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        """Readable and unique: ``<label>-h<widths>-lr<rate>-s<seed>-<hash>``."""
        parts = [_slug(self.label)]
        hidden = self.agent_kwargs.get("hidden_sizes")
        if hidden:
            parts.append("h" + "x".join(str(int(h)) for h in hidden))
        lr = self.agent_kwargs.get("learning_rate")
        if isinstance(lr, (int, float)):
            parts.append(f"lr{lr:.3g}")
        parts.append(f"s{self.seed}")
        parts.append(self.digest)
        return "-".join(parts)

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(h) for h in self.agent_kwargs.get("hidden_sizes") or ())

    @property
    def learning_rate(self) -> float | None:
        lr = self.agent_kwargs.get("learning_rate")
        return float(lr) if isinstance(lr, (int, float)) else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=]+", "_", text).strip("_") or "run"
