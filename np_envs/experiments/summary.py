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
    """Std over seeds; None for fewer than two values (a single seed has no spread)."""
    v = [float(x) for x in values if _finite(x)]
    return float(np.std(v)) if len(v) > 1 else None


def _common(members: Sequence[dict[str, Any]], key: str) -> Any:
    """The members' shared value of ``key``, None when they differ."""
    values = {str(m.get(key)) for m in members}
    return members[0].get(key) if len(values) == 1 else None


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
        row = {k: _common(members, k) for k in ("hidden", "lr") if k not in keys}
        row.update(dict(zip(keys, key, strict=True)))
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
#: A table column: the row key and the header a reader sees.
Column = tuple[str, str]


def metric_name(metric: str) -> str:
    """The metric with its unit, as a header says it."""
    return "test accuracy (%)" if metric == "accuracy" else "test MSE"


def _units(unit: str) -> str:
    return "epochs" if unit == "epoch" else "samples"


def compare_columns(table: Sequence[dict[str, Any]], metric: str, unit: str,
                    target: float | None) -> list[Column]:
    """Columns of the comparison summary: rule, width, rate, seeds, the metric named with its
    unit; the spread only when some rule has several seeds, target columns only with a target."""
    u = _units(unit)
    name = metric_name(metric)
    cols: list[Column] = [("label", "rule"), ("hidden", "width"), ("lr", "learning rate"),
                          ("seeds", "seeds"), ("final_mean", f"final {name}")]
    if any((r.get("seeds") or 0) > 1 for r in table):
        cols.append(("final_std", "std over seeds"))
    cols += [("best_mean", f"best {name}"), ("time_best_mean", f"{u} to best")]
    if target is not None:
        cols += [("time_target_mean", f"{u} to target {target:g}"),
                 ("reached_of", "seeds reaching target")]
    cols += [("time_climb_mean", f"{u} to climb > {CLIMB_FACTOR:g}x start"),
             ("diverged_of", "seeds diverged"), ("diverged_at_mean", f"diverged at ({u})")]
    return cols


def sweep_columns(metric: str, unit: str, target: float | None) -> list[Column]:
    """Columns of the sweep summary (per rule and width): the rate that reaches the target
    fastest and, always, the rate with the lowest final error."""
    u = _units(unit)
    name = metric_name(metric)
    cols: list[Column] = [("label", "rule"), ("hidden", "width"), ("seeds", "seeds")]
    if target is not None:
        cols += [("best_lr", "fastest lr to target"),
                 ("min_time_target", f"min {u} to target {target:g}"),
                 ("time_best_mean", f"{u} to best (at that lr)"),
                 ("time_climb_mean", f"{u} to climb (at that lr)")]
    cols += [("lr_best_final", "lr with best final error"),
             ("best_final", f"final {name} at that lr"), ("best_error", f"best {name} (any lr)"),
             ("lrs", "rates"), ("diverged_lrs", "rates diverged")]
    return cols


def with_counts(table: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows plus ``reached_of`` / ``diverged_of`` as "k/n" of the seeds, for display."""
    out = []
    for r in table:
        r = dict(r)
        n = r.get("seeds")
        if n is not None:
            if r.get("reached") is not None:
                r["reached_of"] = f"{r['reached']}/{n}"
            if r.get("diverged") is not None and not isinstance(r.get("diverged"), bool):
                r["diverged_of"] = f"{r['diverged']}/{n}"
        out.append(r)
    return out


#: Learning-rate columns: always scientific, so rates of one table read alike.
RATE_KEYS = frozenset({"lr", "best_lr", "lr_best_final"})


def column_formatter(values: Sequence[Any], scientific: bool = False) -> Any:
    """One number format for a whole column, chosen from its values.

    Integers as integers; floats with the same number of decimals (4 significant digits at the
    smallest magnitude) when they lie in [1e-3, 1e5), otherwise all in scientific notation.
    Missing values print as "-".
    """
    nums = [float(v) for v in values if _finite(v) and not isinstance(v, bool)]
    if nums and scientific:
        spec = ".2e"
    elif nums and all(float(v).is_integer() for v in nums) and max(map(abs, nums)) < 1e9:
        spec = ".0f"
    elif nums:
        nonzero = [abs(v) for v in nums if v != 0]
        lo, hi = (min(nonzero), max(nonzero)) if nonzero else (1.0, 1.0)
        if 1e-3 <= lo and hi < 1e5:
            spec = f".{max(0, min(6, 3 - math.floor(math.log10(lo))))}f"
        else:
            spec = ".3e"
    else:
        spec = ""

    def render(v: Any) -> str:
        if v is None or v == "":
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (int, float)):
            return format(float(v), spec) if math.isfinite(v) else str(v)
        return str(v)

    return render


def _as_columns(columns: Sequence[str | Column]) -> list[Column]:
    return [c if isinstance(c, tuple) else (c, c) for c in columns]


def format_rows(table: Sequence[dict[str, Any]], columns: Sequence[str | Column]
                ) -> tuple[list[str], list[list[str]]]:
    """Headers and cell strings, each column in one number format."""
    cols = _as_columns(columns)
    renders = [column_formatter([r.get(k) for r in table], k in RATE_KEYS) for k, _ in cols]
    body = [[f(r.get(k)) for (k, _), f in zip(cols, renders, strict=True)] for r in table]
    return [h for _, h in cols], body


def fmt(value: Any, digits: int = 4) -> str:
    """One value alone (no column to agree with): "-" for a missing one."""
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


def markdown_table(table: Sequence[dict[str, Any]], columns: Sequence[str | Column]) -> str:
    headers, body = format_rows(table, columns)
    head = "| " + " | ".join(headers) + " |"
    sep = "|" + "|".join("---" for _ in headers) + "|"
    lines = ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join([head, sep, *lines]) + "\n"


def print_table(table: Sequence[dict[str, Any]], columns: Sequence[str | Column], title: str,
                caption: str = "") -> None:
    """A rich table on the terminal (plain markdown when rich is missing)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        print(title)
        print(markdown_table(table, columns))
        if caption:
            print(caption)
        return
    headers, body = format_rows(table, columns)
    t = Table(title=title, caption=caption or None)
    for (key, _), header in zip(_as_columns(columns), headers, strict=True):
        t.add_column(header, justify="left" if key in ("label", "agent", "hidden") else "right")
    for cells in body:
        t.add_row(*cells)
    Console(width=max(120, 14 * len(headers))).print(t)
