"""Figures built from tiny real runs: what a reader needs, checked without eyes.

Each figure is captured as it is saved (``plotting.save`` wrapped), so the tests read the
drawn axes: tick labels, the data of each line, markers, line styles.
"""

from __future__ import annotations

import re

import pytest

from np_envs import plotting
from np_envs.experiments.results import read_jsonl

LINEAR = "NPLinearTeacher-v0"
ROUND_LABEL = re.compile(r"^(0|\d+|0\.\d+|\$\d?(\\times)?10\^\{-?\d+\}\$|\$10\^\{-?\d+\}\$)$")


@pytest.fixture
def captured(monkeypatch):
    """Every figure saved while the test runs, by file name."""
    figs = {}
    real = plotting.save

    def keep(fig, path, dpi=None):
        out = real(fig, path, dpi)
        figs[out.name] = fig
        return out

    monkeypatch.setattr(plotting, "save", keep)
    return figs


def _cli(argv):
    from np_envs.cli.main import main

    assert main(argv) == 0


@pytest.fixture(scope="module")
def linear_compare(tmp_path_factory):
    """np and sgd, 2 seeds, 40 trials of 8 inputs on the linear task (about 2 s)."""
    out = tmp_path_factory.mktemp("cmp")
    _cli(["compare", "--env", LINEAR, "--agents", "np,sgd", "--trials", "40", "--seeds", "2",
          "--hidden", "16", "--num-envs", "8", "--eval-every", "5", "--out", str(out),
          "--no-progress", "--no-plots"])
    return out


@pytest.fixture(scope="module")
def diverging(tmp_path_factory):
    """SGD at a rate far too high: every seed diverges within a few evaluations."""
    out = tmp_path_factory.mktemp("div")
    _cli(["compare", "--env", LINEAR, "--agents", "sgd", "--lr", "sgd=3", "--trials", "40",
          "--seeds", "2", "--hidden", "16", "--num-envs", "8", "--eval-every", "5",
          "--out", str(out), "--no-progress", "--no-plots"])
    return out


@pytest.fixture(scope="module")
def linear_sweep(tmp_path_factory):
    """np and sgd at two rates each, widths 8 and 16, one seed, linear task (a few s)."""
    out = tmp_path_factory.mktemp("sweep")
    _cli(["sweep", "--env", LINEAR, "--agents", "np,sgd", "--hidden", "8,16", "--lrs",
          "0.3eta*,0.8eta*", "--seeds", "1", "--budget-trials", "20", "--num-envs", "8",
          "--eval-every", "5", "--target", "1e-9", "--jobs", "1", "--out", str(out),
          "--no-progress", "--no-plots"])
    return out


def _context(out):
    import json

    specs = json.loads((out / "compare.json").read_text())["specs"]
    return plotting.context_from_specs(specs)


def _labels(axis):
    return [t.get_text() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


def _assert_readable(ax):
    for axis in (ax.xaxis, ax.yaxis):
        labels = _labels(axis)
        assert len(labels) >= 3, labels
        assert all(ROUND_LABEL.match(lab) for lab in labels), labels


def test_learning_curves_show_time_zero_with_readable_ticks(linear_compare, captured, tmp_path):
    rows = read_jsonl(linear_compare / "rows.jsonl")
    plotting.learning_curves(rows, "mse", tmp_path / "lc.png", _context(linear_compare))
    ax = captured["lc.png"].axes[0]
    _assert_readable(ax)
    assert ax.xaxis.get_scale() == "symlog"
    curves = [line for line in ax.lines if line.get_label() in ("np (2 seeds)", "sgd (2 seeds)")]
    assert len(curves) == 2 and all(0.0 in list(line.get_xdata()) for line in curves)
    assert len(ax.collections) >= 2  # one seed band per rule
    caption = " ".join(t.get_text() for t in captured["lc.png"].texts)
    for word in (LINEAR, "width 16", "batch 8", "lr np", "sgd", "seeds 0-1 (n=2)"):
        assert word in caption, word


def test_diverged_run_is_marked_where_it_diverged(diverging, captured, tmp_path):
    rows = read_jsonl(diverging / "rows.jsonl")
    stops = {r["run_id"]: r["samples"] for r in rows if r["diverged"]}
    assert len(stops) == 2
    plotting.learning_curves(rows, "mse", tmp_path / "lc.png", _context(diverging))
    ax = captured["lc.png"].axes[0]
    marks = [line for line in ax.lines if line.get_marker() == "X" and len(line.get_xdata())]
    assert sorted(float(m.get_xdata()[0]) for m in marks) == sorted(stops.values())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "diverged" in legend and any("2 diverged" in t for t in legend)


def test_linear_plot_has_both_theories_per_rate(linear_sweep, captured, tmp_path):
    rows = read_jsonl(linear_sweep / "rows.jsonl")
    assert plotting.eps_vs_theory(rows, tmp_path / "eps.png") is not None
    ax = captured["eps.png"].axes[0]
    _assert_readable(ax)
    np_rates = {(r["hidden"], r["lr"]) for r in rows if r["agent"] == "np"}
    assert len(np_rates) == 4
    drawn = [line for line in ax.lines if len(line.get_xdata()) > 1]
    assert sum(line.get_linestyle() == "--" for line in drawn) == len(np_rates)
    assert sum(line.get_linestyle() == ":" for line in drawn) == len(np_rates)
    assert all(line.get_xdata()[0] == 0 for line in drawn if line.get_linestyle() == "--")
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "two-variable map" in legend and "four-variable model" in legend


def test_caption_says_where_theory_and_simulation_part(captured, tmp_path):
    """Rows whose simulation ends 3x below the two-variable map get a caption line saying so."""
    from np_envs import theory

    lr = 0.5 * theory.critical_learning_rate(100, 50, 10)
    _, two = theory.mean_field_trajectory(100, 50, 10, lr, 1000)
    rows = [{"run_id": "a", "label": "np", "agent": "np", "seed": 0, "hidden": "50", "lr": lr,
             "chunk": k, "samples": s, "epoch": None, "eps": two[s] / (1 + 2 * k),
             "theory_eps": two[s], "diverged": False} for k, s in enumerate((0, 500, 1000))]
    plotting.eps_vs_theory(rows, tmp_path / "eps.png")
    text = " ".join(t.get_text() for t in captured["eps.png"].texts)
    assert "two-variable map ends 5.0x above" in text


def test_sweep_draws_error_against_learning_rate(linear_sweep, captured):
    import json

    from np_envs.experiments.sweep import write_sweep_outputs

    rows = read_jsonl(linear_sweep / "rows.jsonl")
    by_run = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    specs = json.loads((linear_sweep / "sweep_specs.json").read_text())["specs"]
    results = [{"run_id": k, "rows": v, "spec": specs[0], "status": "done"}
               for k, v in by_run.items()]
    out = write_sweep_outputs(linear_sweep, results, "mse", 1e-9)
    names = [p.name for p in out["files"]]
    assert names == ["sweep_error_vs_lr.png", "sweep_time_to_target.png",
                     "sweep_learning_rates.png"]
    fig = captured["sweep_error_vs_lr.png"]
    assert [ax.get_title() for ax in fig.axes] == ["np", "sgd"]
    sgd = fig.axes[1]
    lines = [line for line in sgd.lines if line.get_label().startswith("width")]
    assert sorted(line.get_label() for line in lines) == ["width 16", "width 8"]
    assert all(len(line.get_xdata()) == 2 for line in lines)
    # the target 1e-9 is out of reach: open markers at the budget and a note per rule
    ttt = captured["sweep_time_to_target.png"]
    note = " ".join(t.get_text() for t in ttt.texts)
    assert "np: no point" in note and "sgd: no point" in note
    opens = [line for line in ttt.axes[0].lines if line.get_markerfacecolor() == "white"]
    assert len(opens) == 2 and all(float(y) == 20.0 * 8 for line in opens
                                   for y in line.get_ydata())


def test_log_ticks_are_round_and_several():
    assert plotting.log_ticks(0.4, 3.6) == [0.5, 1.0, 2.0]  # 1-2-5, not a lone "1"
    assert plotting.log_ticks(0.6, 3.6) == pytest.approx([0.7, 1.0, 2.0, 3.0])
    assert plotting.log_ticks(1, 1e4) == [1, 10, 100, 1000, 10000]
    assert len(plotting.log_ticks(1.1, 1.5)) >= 3  # no decade inside: even round steps
    assert plotting.tick_label(2e5) == "$2\\times10^{5}$" and plotting.tick_label(0.05) == "0.05"
