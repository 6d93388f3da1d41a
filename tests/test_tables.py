"""Tables a reader can read: the metric and its unit named, rate and width columns, one number
format per column, "-" only for a value that does not exist."""

from __future__ import annotations

from np_envs.experiments.summary import (
    column_formatter,
    compare_columns,
    format_rows,
    group_summary,
    with_counts,
)
from np_envs.experiments.sweep import sweep_tables


def _run(label="np", seed=0, lr=1e-4, hidden="100", final=3.0, best=2.0, target=None,
         diverged=False):
    return {"label": label, "agent": label, "seed": seed, "hidden": hidden, "lr": lr,
            "time_unit": "epoch", "final": None if diverged else final, "best": best,
            "time_best": 2.0, "time_target": target, "time_climb": None, "diverged": diverged,
            "diverged_at": 3.0 if diverged else None, "time_end": 5.0}


def test_compare_table_from_a_real_run_names_metric_unit_rate_and_width(tmp_path, capsys):
    from np_envs.cli.main import main

    out = tmp_path / "cmp"
    assert main(["compare", "--env", "NPLinearTeacher-v0", "--agents", "sgd", "--trials", "20",
                 "--seeds", "1", "--hidden", "8", "--num-envs", "8", "--eval-every", "10",
                 "--out", str(out), "--no-progress", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "test MSE" in printed and "no target given" in printed
    lines = (out / "summary.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rule"))
    head, body = lines[start], lines[start + 2]
    headers = [h.strip() for h in head.strip("|").split("|")]
    assert headers[:5] == ["rule", "width", "learning rate", "seeds", "final test MSE"]
    assert not any("target" in h or "std" in h for h in headers)  # no target, a single seed
    cells = [c.strip() for c in body.strip("|").split("|")]
    assert cells[:4] == ["sgd", "8", cells[2], "1"] and "e-" in cells[2]
    assert cells[headers.index("seeds diverged")] == "0/1"
    # "-" only where the value does not exist: no climb, no divergence
    missing = {h for h, c in zip(headers, cells, strict=True) if c == "-"}
    assert missing <= {"samples to climb > 1.1x start", "diverged at (samples)"}
    assert "diverged at (samples)" in missing


def test_accuracy_columns_say_percent_and_target_columns_need_a_target():
    table = group_summary([_run(seed=0, target=4.0), _run(seed=1, target=None)])
    cols = dict(compare_columns(table, "accuracy", "epoch", 97.5))
    assert cols["final_mean"] == "final test accuracy (%)"
    assert cols["time_target_mean"] == "epochs to target 97.5"
    assert "final_std" in cols  # two seeds: a spread exists
    headers, body = format_rows(with_counts(table), compare_columns(table, "mse", "epoch", 1.0))
    assert body[0][headers.index("seeds reaching target")] == "1/2"


def test_single_seed_has_no_std():
    (row,) = group_summary([_run()])
    assert row["final_std"] is None
    assert "final_std" not in dict(compare_columns([row], "mse", "epoch", None))


def test_one_number_format_per_column():
    render = column_formatter([0.4265, 0.04908, 12.5, None])
    assert [render(v) for v in (0.4265, 0.04908, 12.5, None)] == ["0.42650", "0.04908",
                                                                  "12.50000", "-"]
    render = column_formatter([3e-7, 250.0])
    assert [render(v) for v in (3e-7, 250.0)] == ["3.000e-07", "2.500e+02"]
    render = column_formatter([4800.0, 16.0])
    assert render(4800.0) == "4800" and render(16.0) == "16"


def test_sweep_names_the_best_rate_even_when_no_rate_reaches_the_target():
    runs = [_run(lr=1e-5, final=9.0, best=8.0), _run(lr=1e-4, final=4.0, best=3.5),
            _run(lr=1e-3, diverged=True, best=50.0)]
    (best,) = sweep_tables(runs, "mse")["best"]
    assert best["best_lr"] is None and best["min_time_target"] is None
    assert best["lr_best_final"] == 1e-4 and best["best_final"] == 4.0
    assert best["diverged_lrs"] == 1
