"""A bad ``compare`` / ``sweep`` command fails before anything runs: exit 2, one message naming
the flag, the bad value and what is allowed, and no output folder left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import needs_mnist

from np_envs.cli.main import build_parser, main
from np_envs.experiments.settings import CommandSettings, UsageError

LINEAR = "NPLinearTeacher-v0"
COMPARE = ["compare", "--env", LINEAR, "--agents", "np", "--trials", "20", "--hidden", "8",
           "--no-progress", "--no-plots"]
SWEEP = ["sweep", "--env", LINEAR, "--agents", "np", "--budget-trials", "20", "--hidden", "8",
         "--target", "1.0", "--no-progress", "--no-plots"]


def _refused(capsys, tmp_path: Path, argv: list[str], flag: str, *words: str) -> str:
    """Run ``argv`` with a fresh --out; assert exit 2, the message, and nothing written."""
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 or "Missing data" in err, err  # one line where possible
    assert f"error: {flag}" in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists(), "a refused command left its output folder behind"
    return err


# ---------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("argv, flag, shown", [
    ([*COMPARE, "--num-envs", "0"], "--num-envs", "0"),       # used to become 16
    ([*COMPARE, "--eval-every", "-1"], "--eval-every", "-1"),  # used to become 1
    ([*COMPARE, "--eval-every", "2.5"], "--eval-every", "2.5"),  # trials are whole
    ([*COMPARE, "--divergence-factor", "-1"], "--divergence-factor", "-1"),  # all "diverged"
    ([*COMPARE, "--divergence-factor", "1"], "--divergence-factor", "1"),
    ([*COMPARE, "--seeds", "0"], "--seeds", "0"),
    ([*COMPARE, "--seed-offset", "-2"], "--seed-offset", "-2"),
    ([*COMPARE, "--jobs", "0"], "--jobs", "0"),
    ([*COMPARE, "--target", "nan"], "--target", "nan"),
    ([*COMPARE, "--target", "-1"], "--target", "-1"),  # an error below 0 is never reached
    ([*SWEEP, "--climb-factor", "0.5"], "--climb-factor", "0.5"),
])
def test_bad_numbers_are_refused(capsys, tmp_path, argv, flag, shown):
    _refused(capsys, tmp_path, argv, flag, shown)


@pytest.mark.parametrize("argv, flag", [
    (["compare", "--env", LINEAR, "--agents", "np", "--trials", "0"], "--trials"),
    (["compare", "--env", "NPSarcos-v0", "--agents", "np", "--epochs", "nan"], "--epochs"),
    (["compare", "--env", "NPSarcos-v0", "--agents", "np", "--epochs", "inf"], "--epochs"),
    (["compare", "--env", "NPSarcos-v0", "--agents", "np", "--epochs", "-3"], "--epochs"),
    (["sweep", "--env", "NPSarcos-v0", "--agents", "np", "--budget-epochs", "0", "--target",
      "1"], "--budget-epochs"),
    (["compare", "--env", LINEAR, "--agents", "np", "--epochs", "2"], "--epochs"),  # endless
    (["compare", "--env", LINEAR, "--agents", "np"], "--epochs"),  # no budget at all
])
def test_bad_budgets_are_refused(capsys, tmp_path, argv, flag):
    _refused(capsys, tmp_path, [*argv, "--no-progress"], flag)


# ---------------------------------------------------------------------------- rates, widths
@pytest.mark.parametrize("argv, flag, shown, word", [
    ([*COMPARE, "--lr", "np=-1e-4"], "--lr", "np=-1e-4", "> 0"),
    ([*COMPARE, "--lr", "np=nan"], "--lr", "np=nan", "> 0"),
    ([*COMPARE, "--lr", "np=inf"], "--lr", "np=inf", "> 0"),
    ([*COMPARE, "--lr", "np=0"], "--lr", "np=0", "> 0"),
    ([*COMPARE, "--lr", "np=fast"], "--lr", "np=fast", "> 0"),
    ([*COMPARE, "--lr", "np"], "--lr", "np", "name=rate"),
    ([*COMPARE, "--lr", "sgd=1e-3"], "--lr", "sgd=1e-3", "--agents"),  # not among --agents
    ([*SWEEP, "--lrs", ""], "--lrs", "''", "LO:HI:N"),
    ([*SWEEP, "--lrs", ","], "--lrs", ",", "LO:HI:N"),
    ([*SWEEP, "--lrs", "1e-4,-1e-4"], "--lrs", "-0.0001", "> 0"),
    ([*SWEEP, "--lrs", "1e-5:1e-3:2.5"], "--lrs", "2.5", "whole number"),
    ([*SWEEP, "--lrs", "0:1e-3:3"], "--lrs", "0:1e-3:3", "LO > 0"),
    (["sweep", "--env", "NPSarcos-v0", "--agents", "np", "--budget-epochs", "1", "--target",
      "1", "--lrs", "0.5eta*"], "--lrs", "eta*", "linear task"),
])
def test_bad_learning_rates_are_refused(capsys, tmp_path, argv, flag, shown, word):
    _refused(capsys, tmp_path, argv, flag, shown, word)


@pytest.mark.parametrize("hidden", ["2.7", "0", "-5", "100x0", "abc", "16,32"])
def test_bad_hidden_sizes_are_refused_not_truncated(capsys, tmp_path, hidden):
    argv = [a for a in COMPARE if a not in ("--hidden", "8")]
    _refused(capsys, tmp_path, [*argv, "--hidden", hidden], "--hidden", hidden)


def test_a_rate_given_twice_runs_once_with_a_note(capsys, tmp_path):
    args = build_parser().parse_args([*SWEEP, "--lrs", "1e-4,2e-4,1e-4", "--seeds", "2",
                                      "--out", str(tmp_path / "o")])
    specs = CommandSettings.from_args(args, "sweep").specs()
    assert sorted(s.learning_rate for s in specs) == [1e-4, 1e-4, 2e-4, 2e-4]
    assert "1e-4 twice" in capsys.readouterr().err.replace("0.0001", "1e-4")


# ---------------------------------------------------------------------------- agents, env
@pytest.mark.parametrize("agents, shown, words", [
    ("np,nope", "nope", ("unknown agent", "np, ppo")),
    ("np,np", "np,np", ("twice",)),
    (",", ",", ("agent",)),
    ("nosuchmodule_xyz:Rule", "nosuchmodule_xyz:Rule", ("No module named",)),
    ("os.path:join", "os.path:join", ("RewardAgent",)),  # importable, but not a rule
])
def test_bad_agents_are_refused(capsys, tmp_path, agents, shown, words):
    argv = ["compare", "--env", LINEAR, "--agents", agents, *COMPARE[5:]]
    _refused(capsys, tmp_path, argv, "--agents", shown, *words)


def test_a_plugin_rule_and_sb3_names_pass_the_check(tmp_path):
    args = build_parser().parse_args([
        "compare", "--env", LINEAR, "--agents", "agents.weight_perturbation:WeightPerturbation,ppo",
        "--trials", "20", "--out", str(tmp_path / "o")])
    settings = CommandSettings.from_args(args, "compare")
    settings.check()
    assert not (tmp_path / "o").exists()  # checking writes nothing


@pytest.mark.parametrize("env, kwargs, flag, words", [
    ("NPNoSuchTask-v0", None, "--env", ("registered", LINEAR)),
    (LINEAR, '{"Lx": -3}', "--env-kwargs", ("Lx must be a positive integer",)),
    (LINEAR, '{"no_such_kwarg": 1}', "--env-kwargs", ("no_such_kwarg",)),
    (LINEAR, '{bad json', "--env-kwargs", ("JSON object",)),
    (LINEAR, '[1, 2]', "--env-kwargs", ("JSON object",)),
])
def test_bad_env_or_env_kwargs_are_refused(capsys, tmp_path, env, kwargs, flag, words):
    argv = ["compare", "--env", env, *COMPARE[3:]]
    if kwargs is not None:
        argv += ["--env-kwargs", kwargs]
    _refused(capsys, tmp_path, argv, flag, *words)


def test_missing_data_is_refused_with_the_data_layers_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NP_ENVS_DATA", str(tmp_path / "empty"))
    argv = ["compare", "--env", "NPSarcos-v0", "--agents", "np", "--epochs", "1",
            "--no-progress"]
    _refused(capsys, tmp_path, argv, "--env", "sarcos_inv.mat", str(tmp_path / "empty"))


def test_missing_mnist_names_every_file_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NP_ENVS_DATA", str(tmp_path / "empty"))
    argv = ["compare", "--env", "NPMNIST-v0", "--agents", "np", "--epochs", "0.01",
            "--no-progress"]
    _refused(capsys, tmp_path, argv, "--env", "train-images-idx3-ubyte.gz",
             "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


@needs_mnist
def test_missing_test_files_are_refused_before_any_run(capsys, tmp_path, monkeypatch):
    """Runs are scored on the test split: with only MNIST's training files, the command used
    to start, write its folder and fail in every run; now it names the test files up front."""
    data = Path(os.environ["NP_ENVS_DATA"])
    folder = tmp_path / "train-only" / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(data / "mnist" / name)
    monkeypatch.setenv("NP_ENVS_DATA", str(folder.parent))
    argv = ["compare", "--env", "NPMNIST-v0", "--agents", "np", "--epochs", "0.01",
            "--hidden", "8", "--no-progress"]
    _refused(capsys, tmp_path, argv, "--env", "test split", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------- files
def test_out_that_is_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    assert main([*COMPARE, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "error: --out" in err and "a folder" in err and "Traceback" not in err
    assert target.read_text() == "not a folder"


def test_out_below_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    assert main([*COMPARE, "--out", str(tmp_path / "f" / "sub")]) == 2
    assert "error: --out" in capsys.readouterr().err


def test_a_config_parse_error_names_the_line(capsys, tmp_path):
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  np: {learning_rate: 1e-4\n  sgd: x\n")
    err = _refused(capsys, tmp_path, [*COMPARE, "--config", str(path)], "--config", "line 3")
    assert str(path) in err


@pytest.mark.parametrize("text, words", [
    ("agents:\n  np: {learning_rate: -1e-4}\n", ("agents.np.learning_rate", "> 0")),
    ("agents:\n  np: {sigma: .nan}\n", ("agents.np.sigma", "> 0")),
    ("defaults: {hidden_sizes: [2.7]}\n", ("hidden_sizes", "whole")),
    ("agents:\n  np: {n_envs: 0}\n", ("n_envs", ">= 1")),
    ("agentz: {}\n", ("unknown keys",)),
    ("NPSarcos-v0:\n  np: {learning_rate: 1.0e-4}\n", ("no entry for " + LINEAR,)),
])
def test_bad_config_values_are_refused(capsys, tmp_path, text, words):
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    _refused(capsys, tmp_path, [*COMPARE, "--config", str(path)], "--config", *words)


def test_config_keywords_go_to_the_rules_that_take_them(capsys, tmp_path):
    """``defaults: {sigma: ...}`` is for the rules with a sigma (sgd has none: it used to be
    dropped silently, then a TypeError in every sgd run); a rule's own entry with a keyword it
    does not take is refused before anything runs."""
    shared = tmp_path / "shared.yml"
    shared.write_text("defaults: {sigma: 1.0e-3, hidden_sizes: [8]}\n")
    argv = [*COMPARE[:4], "np,sgd", *COMPARE[5:], "--config", str(shared)]
    assert main([*argv, "--out", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    own = tmp_path / "own.yml"
    own.write_text("agents:\n  sgd: {sigma: 1.0e-3}\n")
    argv = [*COMPARE[:4], "np,sgd", *COMPARE[5:], "--config", str(own)]
    _refused(capsys, tmp_path, argv, "--config", "'sgd' has sigma, which sgd does not take")


def test_a_missing_config_file_is_refused(capsys, tmp_path):
    _refused(capsys, tmp_path, [*COMPARE, "--config", str(tmp_path / "nope.yml")], "--config",
             "exists")


def test_usage_error_names_flag_value_and_what_is_allowed():
    err = UsageError("--num-envs", 0, "a whole number >= 1")
    assert str(err) == "--num-envs 0: a whole number >= 1"
