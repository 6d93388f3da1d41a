"""Tables from rows: per run, then over seeds; what the paper reads off its learning curves.

Why here and not in the plots: the numbers in a table are the ones a test can compare exactly
(interrupted vs uninterrupted, Ray vs local), so they come from the rows alone, never from wall
time. Every quantity is on the evaluation grid (multiples of ``eval_every``).

Error: test mse for ``metric="mse"``; test error in percent (100 - accuracy) for
``metric="accuracy"``. Lower is better in both; tables show the metric in its own units.

Per run:
  ``final``       the metric at the last evaluation (None if the run diverged)
  ``best``        the best metric; ``time_best`` when it was first reached (Fig. 4C's minimum)
  ``time_target`` the first evaluation at which the metric reached ``target`` (Fig. 4E/5B)
  ``time_climb``  the first evaluation after the best at which the error exceeded
                  ``climb_factor`` (1.1) x its initial value (Fig. 4C's instability)
  ``diverged_at`` when a divergent run stopped
Time is in epochs for data sets, in samples (inputs seen) on the endless linear stream.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

CLIMB_FACTOR = 1.1


def time_key(rows: Sequence[dict[str, Any]]) -> str:
    return "epoch" if rows and rows[0].get("epoch") is not None else "samples"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def error_of(row: dict[str, Any], metric: str) -> float | None:
    """The row's error (lower is better): test mse, or 100 - accuracy in percent."""
    if metric == "accuracy":
        acc = row.get("test_accuracy")
        return 100.0 - acc if _finite(acc) else None
    mse = row.get("test_mse")
    return float(mse) if _finite(mse) else None


def metric_of(error: float | None, metric: str) -> float | None:
    if error is None:
        return None
    return 100.0 - error if metric == "accuracy" else error


def run_summary(
    rows: Sequence[dict[str, Any]], metric: str = "mse", target: float | None = None,
    climb_factor: float = CLIMB_FACTOR,
) -> dict[str, Any]:
    """The per-run quantities of the module docstring from one run's rows (chunk order)."""
    rows = sorted(rows, key=lambda r: r["chunk"])
    if not rows:
        return {}
    tk = time_key(rows)
    errors = [error_of(r, metric) for r in rows]
    diverged = bool(rows[-1].get("diverged"))
    good = [(r, e) for r, e in zip(rows, errors, strict=True) if e is not None]
    out: dict[str, Any] = {
        "run_id": rows[0].get("run_id"), "label": rows[0].get("label"),
        "agent": rows[0].get("agent"), "seed": rows[0].get("seed"),
        "hidden": rows[0].get("hidden"), "lr": rows[0].get("lr"), "time_unit": tk,
        "evaluations": len(rows), "time_end": rows[-1].get(tk),
        "final": None if diverged else metric_of(errors[-1], metric),
        "best": None, "time_best": None, "time_target": None, "time_climb": None,
        "diverged": diverged, "diverged_at": rows[-1].get(tk) if diverged else None,
        "wall_time": rows[-1].get("wall_time"),
    }
    if not good:
        return out
    best_row, best_err = min(good, key=lambda p: p[1])  # first minimum on ties
    out["best"] = metric_of(best_err, metric)
    out["time_best"] = best_row.get(tk)
    if target is not None:
        target_err = 100.0 - target if metric == "accuracy" else target
        for r, e in good:
            if e <= target_err:
                out["time_target"] = r.get(tk)
                break
    e0 = errors[0]
    if e0 is not None:
        after = False
        for r, e in zip(rows, errors, strict=True):
            after = after or r is best_row
            if after and (e is None or e > climb_factor * e0):
                out["time_climb"] = r.get(tk)
                break
    return out


def _mean(values: Iterable[Any]) -> float | None:
    v = [float(x) for x in values if _finite(x)]
    return float(np.mean(v)) if v else None


def _std(values: Iterable[Any]) -> float | None:
    v = [float(x) for x in values if _finite(x)]
    return float(np.std(v)) if len(v) > 1 else (0.0 if v else None)


def group_summary(
    runs: Sequence[dict[str, Any]], keys: Sequence[str] = ("label",)
) -> list[dict[str, Any]]:
    """Aggregate per-run summaries over seeds, grouped by ``keys`` (first-seen order).

    ``time_target`` is the mean over the seeds that reached the target (``reached`` counts
    them); ``all_reached`` says whether every seed did.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[tuple(run.get(k) for k in keys)].append(run)
    table = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed")))
        reached = [m["time_target"] for m in members if m.get("time_target") is not None]
        div = [m for m in members if m.get("diverged")]
        row = dict(zip(keys, key, strict=True))
        row.update({
            "agent": members[0].get("agent"),
            "seeds": len(members),
            "time_unit": members[0].get("time_unit"),
            "final_mean": _mean(m.get("final") for m in members),
            "final_std": _std(m.get("final") for m in members),
            "best_mean": _mean(m.get("best") for m in members),
            "time_best_mean": _mean(m.get("time_best") for m in members),
            "time_target_mean": _mean(reached),
            "reached": len(reached),
            "all_reached": len(reached) == len(members),
            "time_climb_mean": _mean(m.get("time_climb") for m in members),
            "climbed": sum(m.get("time_climb") is not None for m in members),
            "diverged": len(div),
            "diverged_at_mean": _mean(m.get("diverged_at") for m in div),
        })
        table.append(row)
    return table


def rows_by_run(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["run_id"]].append(r)
    return {k: sorted(v, key=lambda r: r["chunk"]) for k, v in out.items()}


# ---------------------------------------------------------------------------- rendering
def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(table: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in table]
    return "\n".join([head, sep, *body]) + "\n"


def print_table(table: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> None:
    """A rich table on the terminal (plain text when rich is missing or output is piped)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        print(title)
        print(markdown_table(table, columns))
        return
    t = Table(title=title)
    for c in columns:
        header = c.replace("_mean", "").replace("_", " ")
        t.add_column(header, justify="left" if c in ("label", "agent", "hidden") else "right")
    for r in table:
        t.add_row(*(fmt(r.get(c)) for c in columns))
    Console(width=max(120, 14 * len(columns))).print(t)
