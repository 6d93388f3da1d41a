"""Experiment tools: files, settings, tables, resumable data order, diagnostics, compare."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_mnist, needs_sarcos_test_file

import np_envs  # noqa: F401  (registers the envs)
from np_envs.experiments import config as cfg
from np_envs.experiments import diagnostics as diag
from np_envs.experiments.envstate import ExperimentEnv
from np_envs.experiments.results import (
    RunFolder,
    append_csv,
    append_jsonl,
    atomic_write_json,
    read_jsonl,
)
from np_envs.experiments.runner import Runner
from np_envs.experiments.spec import RunSpec
from np_envs.experiments.summary import group_summary, run_summary

LINEAR = "NPLinearTeacher-v0"


# ---------------------------------------------------------------------------- files
def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1.0, "y": float("nan")})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_jsonl_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": float("inf")}])
    with open(path, "a") as fh:
        fh.write('{"a": 3')  # killed mid-write
    assert read_jsonl(path) == [{"a": 1}, {"a": None}]


def test_append_csv_widens_its_header(tmp_path):
    path = tmp_path / "rows.csv"
    append_csv(path, [{"a": 1}])
    append_csv(path, [{"a": 2, "b": 3}])
    assert path.read_text().splitlines() == ["a,b", "1,", "2,3"]


# ---------------------------------------------------------------------------- settings
def test_rates_ranges_and_eta_star():
    assert cfg.parse_rates("1e-5:1e-3:3") == pytest.approx([1e-5, 1e-4, 1e-3])
    assert cfg.parse_rates("1e-4,2e-4") == [1e-4, 2e-4]
    assert cfg.parse_rate("0.5eta*", eta_star=2.0) == 1.0
    assert cfg.parse_overrides("np=1e-4,sgd=2eta*") == {"np": "1e-4", "sgd": "2eta*"}
    assert cfg.parse_architectures("50,100,400x400") == [(50,), (100,), (400, 400)]
    with pytest.raises(ValueError):
        cfg.parse_rate("0.5eta*")  # only the linear task has eta*


def test_config_file_aliases_and_precedence(tmp_path):
    path = tmp_path / "agents.yaml"
    path.write_text(
        "num_envs: 4\n"
        "defaults: {hidden_sizes: [12]}\n"
        "agents:\n"
        "  np: {learning_rate: 1e-4}\n"  # YAML reads this as text: coerced
        "  wn-all: {agent: wn-np, normalize: all}\n"
    )
    settings = cfg.Settings(LINEAR, budget=10, unit="trials",
                            config=cfg.load_config(path)).resolved()
    np_spec = cfg.make_spec(settings, "np", seed=0, hidden=None)
    assert np_spec.agent_kwargs["learning_rate"] == 1e-4
    assert np_spec.agent_kwargs["hidden_sizes"] == [12]
    assert np_spec.num_envs == 4
    wn = cfg.make_spec(settings, "wn-all", seed=1, hidden=(20,), learning_rate="0.5eta*")
    assert wn.agent == "wn-np" and wn.label == "wn-all"
    assert wn.agent_kwargs["normalize"] == "all"
    assert wn.agent_kwargs["hidden_sizes"] == [20]
    from np_envs.theory import critical_learning_rate

    assert wn.agent_kwargs["learning_rate"] == pytest.approx(
        0.5 * critical_learning_rate(100, 20, 10))
    ppo = cfg.make_spec(settings, "ppo", seed=0, hidden=None)
    assert set(ppo.agent_kwargs) == {"hidden_sizes"}  # SB3 keeps its own rate
    assert ppo.env_kwargs["evals_per_input"] == 1 and np_spec.env_kwargs["evals_per_input"] == 2


def test_run_id_changes_with_any_setting():
    a = RunSpec(LINEAR, "np", 0, budget=10, eval_every=5, unit="trials")
    assert a.run_id == RunSpec.from_dict(a.to_dict()).run_id
    assert a.run_id != RunSpec(LINEAR, "np", 0, budget=11, eval_every=5, unit="trials").run_id


# ---------------------------------------------------------------------------- tables
def _rows(errors, diverged_last=False):
    rows = [{"run_id": "r", "label": "x", "agent": "np", "seed": 0, "chunk": i, "epoch": float(i),
             "samples": i * 10, "test_mse": e, "diverged": False} for i, e in enumerate(errors)]
    if diverged_last:
        rows[-1]["diverged"] = True
    return rows


def test_run_summary_times():
    s = run_summary(_rows([10.0, 6.0, 4.0, 3.0, 5.0, 12.0]), "mse", target=4.5)
    assert s["best"] == 3.0 and s["time_best"] == 3.0
    assert s["time_target"] == 2.0
    assert s["time_climb"] == 5.0  # 12 > 1.1 x 10, after the minimum
    assert s["final"] == 12.0 and not s["diverged"]
    d = run_summary(_rows([10.0, 5.0, None], diverged_last=True), "mse", target=1.0)
    assert d["diverged"] and d["diverged_at"] == 2.0 and d["final"] is None
    assert d["time_target"] is None and d["best"] == 5.0


def test_accuracy_runs_rank_higher_as_better():
    rows = _rows([None] * 3)
    for r, acc in zip(rows, [10.0, 97.0, 98.0], strict=True):
        r["test_accuracy"] = acc
    s = run_summary(rows, "accuracy", target=97.5)
    assert s["best"] == pytest.approx(98.0) and s["time_target"] == 2.0


def test_group_summary_over_seeds():
    runs = [run_summary(_rows(e), "mse", 4.5) for e in ([10, 4, 3], [10, 8, 4])]
    (g,) = group_summary(runs, ("label",))
    assert g["seeds"] == 2 and g["reached"] == 2 and g["time_target_mean"] == 1.5
    assert g["final_mean"] == 3.5


# ---------------------------------------------------------------------------- data order
def _synthetic_sarcos(n=250, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 21)), rng.standard_normal((n, 7))


@pytest.mark.parametrize("env_id,kwargs", [
    (LINEAR, {"Lx": 6, "Ly": 2}),
    ("NPSarcos-v0", {"arrays": _synthetic_sarcos()}),
])
def test_checkpointed_stream_continues_with_the_pending_batch(env_id, kwargs):
    def fresh():
        return ExperimentEnv(gym.make_vec(env_id, num_envs=16, evals_per_input=2, **kwargs))

    def trial(env):
        act = np.zeros(env.action_space.shape)
        env.step(act)
        obs, *_ = env.step(act)
        return obs

    a = fresh()
    a.start_stream(7)
    a.reset(seed=123)  # the run seed rules; an agent's own seed is ignored
    for _ in range(20):  # crosses epoch boundaries of the 250-row set
        pending = trial(a)  # SAME_STEP autoreset: the next batch is drawn already
    state = a.checkpoint_state()
    expected = [trial(a) for _ in range(5)]

    b = fresh()
    b.restore_state(state)
    obs, _ = b.reset(seed=0)
    assert np.array_equal(obs, pending)
    assert all(np.array_equal(trial(b), e) for e in expected)

    c = fresh()  # same seed, same data order (common random numbers)
    c.start_stream(7)
    first_c, _ = c.reset()
    d = fresh()
    d.start_stream(7)
    assert np.array_equal(d.reset()[0], first_c)


# ---------------------------------------------------------------------------- diagnostics
def test_participation_ratio():
    rng = np.random.default_rng(0)
    iso = rng.standard_normal((4000, 10))
    assert diag.participation_ratio(iso) == pytest.approx(10.0, rel=0.05)
    rank1 = np.outer(rng.standard_normal(500), rng.standard_normal(8))
    assert diag.participation_ratio(rank1) == pytest.approx(1.0, rel=1e-6)


def test_cosine_callback_gives_one_for_sgd_and_less_for_np():
    from agents import make_agent

    results = {}
    for name in ("sgd", "np"):
        env = ExperimentEnv(gym.make_vec(
            LINEAR, num_envs=8, reveal_target=True, evals_per_input=1 if name == "sgd" else 2))
        env.start_stream(0)
        kw = {"sigma": 1e-6} if name == "np" else {}
        agent = make_agent(name, env, hidden_sizes=(32,), learning_rate=1e-4, seed=0,
                           dtype="float64", **kw)
        cos = diag.SGDCosineCallback(every=2)
        norms = diag.WeightNormCallback(every=5)
        agent.learn(8 * 20 * env.unwrapped.evals_per_input, callback=[cos, norms])
        records = cos.take()
        assert len(records) == 10 and len(norms.history) == 4
        results[name] = diag.mean_per_layer(records, "cos")
    assert results["sgd"] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert all(0.0 < c < 0.9 for c in results["np"])


# ---------------------------------------------------------------------------- runner
def _spec(agent="np", lr=None, **kw):
    kwargs = {"hidden_sizes": [16], "activation": "linear", "bias": False, "dtype": "float64"}
    if agent == "np":
        kwargs["sigma"] = 1e-6
    if lr is not None:
        kwargs["learning_rate"] = lr
    base = dict(env_id=LINEAR, agent=agent, seed=1, budget=60, eval_every=20, unit="trials",
                num_envs=8, env_kwargs={"evals_per_input": 1 if agent == "sgd" else 2},
                agent_kwargs=kwargs)
    base.update(kw)
    return RunSpec(**base)


class _Stop(BaseException):
    pass


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = _spec(lr=2e-4)
    whole = Runner(spec, tmp_path / "a").run()

    def stop_at_2(chunk, total):
        if chunk == 2:
            raise _Stop  # a kill after row 2 was written, before its checkpoint

    with pytest.raises(_Stop):
        Runner(spec, tmp_path / "b", progress=stop_at_2).run()
    again = Runner(spec, tmp_path / "b").run()
    strip = [{k: v for k, v in r.items() if k != "wall_time"} for r in whole["rows"]]
    assert [{k: v for k, v in r.items() if k != "wall_time"} for r in again["rows"]] == strip
    assert [r["chunk"] for r in again["rows"]] == [0, 1, 2, 3]
    folder = RunFolder(tmp_path / "b" / "runs" / spec.run_id)
    assert [a["start_chunk"] for a in folder.attempts()] == [1, 2]
    assert Runner(spec, tmp_path / "b").run()["computed"] is False  # done: skipped
    assert len(folder.attempts()) == 2


def test_nan_divergence_stops_the_run(tmp_path):
    from np_envs.theory import sgd_optimal_learning_rate

    spec = _spec(agent="sgd", lr=60 * sgd_optimal_learning_rate(100, 16, 10))
    result = Runner(spec, tmp_path).run()  # answers overflow to inf: no warning, a record
    assert result["status"] == "diverged"
    last = result["rows"][-1]
    assert last["diverged"] and last["test_mse"] is None
    assert any(w in last["diverged_reason"] for w in ("NaN", "overflow"))
    assert result["done"]["diverged_at"] == last["samples"] < 60 * 8


def test_error_bound_stops_the_run(tmp_path):
    # a factor below 1 makes "no progress yet" count as divergence: the bound's mechanics
    spec = _spec(lr=1e-9, divergence_factor=0.5)
    result = Runner(spec, tmp_path).run()
    assert result["status"] == "diverged"
    assert [r["chunk"] for r in result["rows"]] == [0, 1]
    assert "x initial" in result["rows"][-1]["diverged_reason"]
    assert result["done"]["diverged_at"] == 20 * 8


# ---------------------------------------------------------------------------- compare
def test_compare_writes_tables_and_plots(tmp_path, capsys):
    from np_envs.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", "--env", LINEAR, "--agents", "np,sgd", "--trials", "40", "--seeds", "2",
            "--hidden", "16", "--num-envs", "8", "--eval-every", "10", "--target", "3.0",
            "--diagnostics", "norms,pr", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "np" in printed and "sgd" in printed
    for name in ("rows.jsonl", "rows.csv", "runs.csv", "summary.csv", "summary.json",
                 "summary.md", "learning_curves.png", "error_vs_norm.png", "eps_theory.png"):
        assert (out / name).stat().st_size > 0, name
    rows = read_jsonl(out / "rows.jsonl")
    assert len(rows) == 2 * 2 * 5
    first = rows[0]
    for key in ("epoch", "samples", "env_steps", "test_mse", "train_loss", "w2_l0", "w2_l1",
                "eps", "wall_time", "pr_l0"):
        assert key in first, key
    traces = sorted((out / "runs").glob("*/norms.jsonl"))
    assert len(traces) == 4 and all(len(read_jsonl(t)) >= 4 for t in traces)
    np_rows = [r for r in rows if r["agent"] == "np"]
    assert all(r["theory_eps"] is not None for r in np_rows)
    # common random numbers: same seed, same initial network, same test error at the start
    starts = {(r["agent"], r["seed"]): r["test_mse"] for r in rows if r["chunk"] == 0}
    assert starts[("np", 0)] == starts[("sgd", 0)] != starts[("np", 1)]
    summary = json.loads((out / "summary.json").read_text())
    assert [g["label"] for g in summary["groups"]] == ["np", "sgd"]
    assert all(math.isfinite(g["final_mean"]) for g in summary["groups"])
    # rerunning the same command recomputes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/done")}
    assert main(argv) == 0
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/done")}


@needs_sarcos_test_file
def test_compare_on_sarcos_test_file(tmp_path):
    from np_envs.cli.main import main

    out = tmp_path / "sarcos"
    assert main(["compare", "--env", "NPSarcos-v0", "--env-kwargs",
                 '{"split_scheme": "test-file"}', "--agents", "np,sgd", "--epochs", "2",
                 "--eval-every", "1", "--seeds", "1", "--hidden", "32", "--diagnostics",
                 "cosine", "--out", str(out), "--no-progress"]) == 0
    rows = read_jsonl(out / "rows.jsonl")
    sgd = [r for r in rows if r["agent"] == "sgd" and r["chunk"] > 0]
    assert sgd and all(r["cos_l0"] > 0.99 for r in sgd)
    assert rows[-1]["epoch"] == pytest.approx(2.0, abs=0.05)
    assert (out / "learning_curves.png").stat().st_size > 0


@pytest.mark.slow
@needs_mnist
def test_compare_on_mnist(tmp_path):
    """The issue's MNIST check: width 100, 3 epochs, np, sgd and ppo (about a minute)."""
    from np_envs.cli.main import main

    out = tmp_path / "mnist"
    assert main(["compare", "--env", "NPMNIST-v0", "--agents", "np,sgd,ppo", "--epochs", "3",
                 "--eval-every", "0.5", "--seeds", "1", "--hidden", "100", "--jobs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    final = {g["label"]: g["final_mean"] for g in summary["groups"]}
    assert final["sgd"] > 90.0 and final["np"] > 50.0  # accuracy in percent
    assert (out / "learning_curves.png").stat().st_size > 0
