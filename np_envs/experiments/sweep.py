"""``sweep``: learning rates x widths x seeds per rule; the fastest way to a target per width.

Why: Fig. 4C/4E and 5B ask, for each rule and width, how fast the best learning rate reaches a
target error, and, per learning rate, when the error is lowest and when it climbs back. Every
grid point is one isolated run (its own process or Ray task, folder, checkpoints), so a killed
sweep resumes and a cluster runs the same grid as a laptop.

Tables (``OUT``):
  ``sweep_runs.csv``  one line per run (see :func:`np_envs.experiments.summary.run_summary`)
  ``sweep_lr.csv``    per rule x width x learning rate, over seeds
  ``sweep.csv``       per rule x width: ``min_time_target``, the minimum over learning rates of
                      the mean time to the target, counting only rates at which every seed
                      reached it (``best_lr`` is that rate); at ``best_lr`` also the time of the
                      minimum error and of the climb back; ``best_error`` over all rates;
                      ``lr_best_final`` the rate with the best final error (named even when
                      no rate reaches the target) and ``best_final`` that error
``sweep.json`` holds all three and ``unfinished`` (runs left out: failed, or computed by another
process; never summarised from their rows so far); plots
(:func:`np_envs.plotting.sweep_plots`) ``sweep_error_vs_lr.png``, ``sweep_time_to_target.png``,
``sweep_learning_rates.png``. The command is the only writer of ``OUT`` while it runs
(:mod:`np_envs.experiments.outlock`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from np_envs import plotting
from np_envs.experiments.compare import (
    all_rows,
    display_columns,
    renamed,
    split_finished,
    unfinished_line,
    unfinished_list,
)
from np_envs.experiments.config import Settings, make_spec
from np_envs.experiments.executor import execute
from np_envs.experiments.outlock import hold_out_folder
from np_envs.experiments.results import atomic_write_json, rewrite_jsonl, write_csv
from np_envs.experiments.spec import RunSpec
from np_envs.experiments.summary import (
    CLIMB_FACTOR,
    group_summary,
    metric_name,
    print_table,
    rows_by_run,
    run_summary,
    sweep_columns,
)

BEST_COLUMNS = ("label", "hidden", "best_lr", "min_time_target", "seeds", "time_best_mean",
                "time_climb_mean", "best_error", "lrs", "diverged_lrs")


def sweep_specs(settings: Settings, labels: Sequence[str], archs: Sequence[tuple[int, ...]],
                lrs: Sequence[str | float] | None, seeds: Sequence[int]) -> list[RunSpec]:
    """Every grid point; ``lrs=None`` uses each rule's default rate. ``lrs`` entries may be
    ``eta*``-relative strings (resolved per width)."""
    specs = []
    for label in labels:
        for arch in archs:
            for lr in (lrs or [None]):
                for seed in seeds:
                    specs.append(make_spec(settings, label, seed, arch, lr))
    return specs


def sweep_tables(runs: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Per-lr table (over seeds) and per rule x width best table, from per-run summaries."""
    per_lr = group_summary(runs, ("label", "hidden", "lr"))
    best: list[dict[str, Any]] = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in per_lr:
        groups.setdefault((r["label"], r["hidden"]), []).append(r)
    lower_better = metric != "accuracy"
    for (label, hidden), members in groups.items():
        ok = [m for m in members if m["all_reached"] and m["time_target_mean"] is not None]
        choice = min(ok, key=lambda m: (m["time_target_mean"], m["lr"] or 0)) if ok else None
        errors = [m["best_mean"] for m in members if m["best_mean"] is not None]
        best_error = (min(errors) if lower_better else max(errors)) if errors else None
        finals = [m for m in members if m["final_mean"] is not None]
        sign = 1.0 if lower_better else -1.0
        by_final = min(finals, key=lambda m: sign * m["final_mean"]) if finals else None
        width = int(str(hidden).split("x")[0]) if hidden else None
        best.append({
            "label": label, "hidden": hidden, "width": width,
            "best_lr": choice["lr"] if choice else None,
            "min_time_target": choice["time_target_mean"] if choice else None,
            "seeds": choice["seeds"] if choice else members[0]["seeds"],
            "time_best_mean": choice["time_best_mean"] if choice else None,
            "time_climb_mean": choice["time_climb_mean"] if choice else None,
            "best_error": best_error,
            "lr_best_final": by_final["lr"] if by_final else None,
            "best_final": by_final["final_mean"] if by_final else None,
            "lrs": len(members),
            "diverged_lrs": sum(1 for m in members if m["diverged"]),
        })
    return {"per_lr": per_lr, "best": best}


def write_sweep_outputs(out: Path, results: Sequence[dict[str, Any]], metric: str,
                        target: float | None, draw: bool = True,
                        climb_factor: float = CLIMB_FACTOR) -> dict[str, Any]:
    """Tables and plots of the finished runs; the others are listed as ``unfinished``."""
    results, left_out = split_finished(results)
    unfinished = unfinished_list(left_out)
    rows = all_rows(results)
    rewrite_jsonl(out / "rows.jsonl", rows)
    runs = [run_summary(r, metric, target, climb_factor) for r in rows_by_run(rows).values()]
    runs = [s for s in runs if s]
    tables = sweep_tables(runs, metric)
    unit = runs[0]["time_unit"] if runs else "epoch"
    if runs:
        write_csv(out / "sweep_runs.csv", runs)
    if tables["per_lr"]:
        write_csv(out / "sweep_lr.csv", renamed(tables["per_lr"], unit))
    if tables["best"]:
        write_csv(out / "sweep.csv", renamed(tables["best"], unit),
                  first=display_columns(BEST_COLUMNS, unit))
    atomic_write_json(out / "sweep.json", {"metric": metric, "target": target, "time_unit": unit,
                                           **tables, "runs": runs, "unfinished": unfinished})
    title = plotting.settings_line(rows, plotting.context_from_specs(
        r["spec"] for r in results if r.get("spec")))
    files = plotting.sweep_plots(tables["per_lr"], tables["best"], out, unit, runs=runs,
                                 metric=metric, target=target, title=title) if draw else []
    return {**tables, "runs": runs, "unit": unit, "files": files, "unfinished": unfinished}


def run_sweep(
    settings: Settings, labels: Sequence[str], archs: Sequence[tuple[int, ...]],
    lrs: Sequence[str | float] | None, seeds: Sequence[int], out: str | Path,
    backend: str = "local", jobs: int = 1, address: str | None = None, progress: bool = True,
    quiet: bool = False, climb_factor: float = CLIMB_FACTOR, draw: bool = True,
    wait: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the whole grid and write the tables and plots."""
    settings = settings.resolved()
    specs = sweep_specs(settings, labels, archs, lrs, seeds)
    return sweep_runs(specs, settings, out, backend=backend, jobs=jobs, address=address,
                      progress=progress, quiet=quiet, climb_factor=climb_factor, draw=draw,
                      wait=wait)


def sweep_runs(
    specs: Sequence[RunSpec], settings: Settings, out: str | Path, backend: str = "local",
    jobs: int = 1, address: str | None = None, progress: bool = True, quiet: bool = False,
    climb_factor: float = CLIMB_FACTOR, draw: bool = True, wait: bool = False,
) -> dict[str, Any]:
    """Run resolved ``specs`` as the only writer of ``out``; write the tables and plots.

    Raises:
        OutFolderBusy: another process works on ``out`` and ``wait`` is False.
    """
    out = Path(out)
    with hold_out_folder(out, wait=wait):
        atomic_write_json(out / "sweep_specs.json", {"specs": [s.to_dict() for s in specs]})
        results = execute(specs, out, backend=backend, jobs=jobs, address=address,
                          progress=progress)
        summary = write_sweep_outputs(out, results, str(settings.metric), settings.target,
                                      draw=draw, climb_factor=climb_factor)
    summary["results"] = results
    if not quiet:
        unit = summary["unit"]
        metric = str(settings.metric)
        units = "epochs" if unit == "epoch" else "samples"
        title = (f"{settings.env_id}: minimum {units} to {metric_name(metric)} "
                 f"{settings.target:g} over learning rates" if settings.target is not None
                 else f"{settings.env_id}: best learning rate per rule and width")
        budget = max((r["time_end"] for r in summary["runs"] if r.get("time_end")), default=None)
        caption = (f"budget {plotting.fmt_number(budget)} {units}; '-' = no rate reached the target"
                   if budget is not None and settings.target is not None else "")
        print_table(summary["best"], sweep_columns(metric, unit, settings.target), title,
                    caption)
        failed = [r["run_id"] for r in results if r["status"] == "failed"]
        if failed:
            print(f"{len(failed)} run(s) failed; rerun the same command to retry: {failed}")
        if summary["unfinished"]:
            print(unfinished_line(summary["unfinished"]))
        print(f"results in {out}")
    return summary
