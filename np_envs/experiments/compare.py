"""``compare``: several rules x seeds on one task, same data order, one table and the plots.

Why: the paper's claims are comparisons at equal budgets. Every agent runs with the same seeds,
and a run's data order depends on its seed only (common random numbers), so differences between
rules are not differences between data orders.

Outputs in ``OUT``: ``runs/<run_id>/`` (each run's rows as they come, checkpoints, ``done``),
``rows.jsonl`` / ``rows.csv`` (all rows, refreshed as runs finish), ``runs.csv`` (one line per
run), ``summary.csv`` / ``summary.json`` / ``summary.md`` (over seeds), and the PNGs of
:func:`np_envs.plotting.compare_plots`.

One writer: the command holds ``OUT``'s lock (:mod:`np_envs.experiments.outlock`) from its first
file to its last. Tables and plots count finished runs only (done or diverged); a run that
failed, or that another process still computes, is listed as unfinished (``summary.json``
``unfinished``, a line under the table), never summarised from its rows so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from np_envs import plotting
from np_envs.experiments.config import Settings, make_spec
from np_envs.experiments.executor import execute
from np_envs.experiments.outlock import hold_out_folder
from np_envs.experiments.results import (
    atomic_write_json,
    atomic_write_text,
    rewrite_jsonl,
    write_csv,
)
from np_envs.experiments.runner import STATUS_DIVERGED, STATUS_DONE
from np_envs.experiments.spec import RunSpec
from np_envs.experiments.summary import (
    compare_columns,
    group_summary,
    markdown_table,
    print_table,
    rows_by_run,
    run_summary,
    with_counts,
)

ROW_COLUMNS = ("label", "agent", "seed", "hidden", "lr", "chunk", "epoch", "samples", "trials",
               "env_steps", "test_mse", "test_accuracy", "train_loss", "train_mse")
SUMMARY_COLUMNS = ("label", "seeds", "final_mean", "final_std", "best_mean", "time_best_mean",
                   "time_target_mean", "reached", "time_climb_mean", "diverged",
                   "diverged_at_mean")


def compare_specs(settings: Settings, labels: Sequence[str], seeds: Sequence[int],
                  hidden: tuple[int, ...] | None, lr_overrides: dict[str, float | str]
                  ) -> list[RunSpec]:
    """One spec per label x seed (labels are agent names or config aliases)."""
    unknown = set(lr_overrides) - set(labels)
    if unknown:
        raise ValueError(f"--lr names {sorted(unknown)} are not among --agents {list(labels)}")
    return [make_spec(settings, label, seed, hidden, lr_overrides.get(label))
            for label in labels for seed in seeds]


def split_finished(results: Sequence[dict[str, Any]]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(finished runs: done or diverged, the others: failed or still being computed)."""
    finished = [r for r in results if r.get("status") in (STATUS_DONE, STATUS_DIVERGED)]
    return finished, [r for r in results if r.get("status") not in (STATUS_DONE,
                                                                       STATUS_DIVERGED)]


def unfinished_list(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a table says about the runs it leaves out."""
    return [{"run_id": r["run_id"], "status": r.get("status"),
             "evaluations": len(r.get("rows") or [])} for r in results]


def unfinished_line(unfinished: Sequence[dict[str, Any]]) -> str:
    if not unfinished:
        return ""
    names = ", ".join(f"{u['run_id']} ({u['status']})" for u in unfinished)
    return (f"{len(unfinished)} unfinished run(s) left out of the tables: {names}; "
            "rerun the same command to finish them")


def all_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        rows.extend(result.get("rows") or [])
    return rows


def display_name(column: str, unit: str) -> str:
    """``time_best_mean`` -> ``epoch_best_mean`` (or ``samples_...``) for people."""
    return column if column == "time_unit" else column.replace("time_", f"{unit}_")


def display_columns(columns: Sequence[str], unit: str) -> list[str]:
    return [display_name(c, unit) for c in columns]


def renamed(table: Sequence[dict[str, Any]], unit: str) -> list[dict[str, Any]]:
    return [{display_name(k, unit): v for k, v in r.items()} for r in table]


def write_compare_outputs(
    out: Path, results: Sequence[dict[str, Any]], metric: str, target: float | None,
    title: str = "", draw: bool = True,
) -> dict[str, Any]:
    """Combined rows, per-run and per-label tables, plots (finished runs only); returns the
    tables and files."""
    results, left_out = split_finished(results)
    unfinished = unfinished_list(left_out)
    rows = all_rows(results)
    rewrite_jsonl(out / "rows.jsonl", rows)
    if rows:
        write_csv(out / "rows.csv", rows, first=ROW_COLUMNS)
    runs = [run_summary(r, metric, target) for r in rows_by_run(rows).values()]
    runs = [r for r in runs if r]
    if runs:
        write_csv(out / "runs.csv", runs)
    table = group_summary(runs, ("label",))
    unit = runs[0]["time_unit"] if runs else "epoch"
    shown = renamed(table, unit)
    cols = display_columns(SUMMARY_COLUMNS, unit)
    if table:
        write_csv(out / "summary.csv", shown, first=cols)
    atomic_write_json(out / "summary.json", {"metric": metric, "target": target,
                                             "time_unit": unit, "groups": shown, "runs": runs,
                                             "unfinished": unfinished})
    display = with_counts(table)
    display_cols = compare_columns(table, metric, unit, target)
    context = plotting.context_from_specs(r["spec"] for r in results if r.get("spec"))
    caption = table_caption(rows, context, metric, target)
    header = f"# {title}\n\n{caption}"
    note = unfinished_line(unfinished)
    atomic_write_text(out / "summary.md", header + "\n\n" + markdown_table(display, display_cols)
                      + (f"\n{note}\n" if note else ""))
    files = plotting.compare_plots(rows, metric, out, context) if (draw and rows) else []
    return {"table": shown, "columns": cols, "runs": runs, "files": files, "unit": unit,
            "display": display, "display_columns": display_cols, "caption": caption,
            "unfinished": unfinished}


def table_caption(rows: Sequence[dict[str, Any]], context: dict[str, Any], metric: str,
                  target: float | None) -> str:
    """The settings line of the plots plus what the numbers are, under the terminal table."""
    what = ("test accuracy in %, higher is better" if metric == "accuracy"
            else "test MSE (mean squared error per output), lower is better")
    tgt = f"; target {target:g}" if target is not None else "; no target given"
    return f"{plotting.settings_line(rows, context)}\nmetric: {what}{tgt}; final = last evaluation"



def run_compare(
    settings: Settings, labels: Sequence[str], seeds: Sequence[int],
    hidden: tuple[int, ...] | None, lr_overrides: dict[str, float | str], out: str | Path,
    backend: str = "local", jobs: int = 1, address: str | None = None, progress: bool = True,
    quiet: bool = False, draw: bool = True, wait: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the comparison and write every output; returns the summary."""
    settings = settings.resolved()
    specs = compare_specs(settings, labels, seeds, hidden, lr_overrides)
    return compare_runs(specs, settings, out, backend=backend, jobs=jobs, address=address,
                        progress=progress, quiet=quiet, draw=draw, wait=wait)


def compare_runs(
    specs: Sequence[RunSpec], settings: Settings, out: str | Path, backend: str = "local",
    jobs: int = 1, address: str | None = None, progress: bool = True, quiet: bool = False,
    draw: bool = True, wait: bool = False,
) -> dict[str, Any]:
    """Run resolved ``specs`` as the only writer of ``out`` (see the module docstring).

    Raises:
        OutFolderBusy: another process works on ``out`` and ``wait`` is False.
    """
    out = Path(out)
    labels = list(dict.fromkeys(s.label for s in specs))
    n_seeds = len({s.seed for s in specs})
    with hold_out_folder(out, wait=wait):
        atomic_write_json(out / "compare.json", {"specs": [s.to_dict() for s in specs]})
        done: list[dict[str, Any]] = []

        def refresh(result: dict[str, Any]) -> None:  # finished rows so far, as runs finish
            done.append(result)
            rewrite_jsonl(out / "rows.jsonl", all_rows(split_finished(done)[0]))

        results = execute(specs, out, backend=backend, jobs=jobs, address=address,
                          progress=progress, on_result=refresh)
        title = f"{settings.env_id}: {', '.join(labels)} x {n_seeds} seeds"
        summary = write_compare_outputs(out, results, str(settings.metric), settings.target,
                                        title, draw=draw)
    summary["results"] = results
    if not quiet:
        print_table(summary["display"], summary["display_columns"], title, summary["caption"])
        failed = [r["run_id"] for r in results if r["status"] == "failed"]
        if failed:
            print(f"{len(failed)} run(s) failed; rerun the same command to retry: {failed}")
        if summary["unfinished"]:
            print(unfinished_line(summary["unfinished"]))
        print(f"results in {out}")
    return summary
