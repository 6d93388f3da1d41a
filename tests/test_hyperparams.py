"""The shipped tuned defaults (np_envs/hyperparams/tuned.yml, RL Zoo layout) are what the
commands use by default, and ``--config`` reads them and files like them."""

from __future__ import annotations

import json

import pytest
import yaml

from np_envs.cli.main import build_parser, main
from np_envs.experiments.settings import CommandSettings, shipped_config

LINEAR = "NPLinearTeacher-v0"
TASKS = {LINEAR: ["--trials", "5000"], "NPSarcos-v0": ["--epochs", "30"],
         "NPMNIST-v0": ["--epochs", "3"]}


def _settings(argv: list[str], command: str = "compare") -> CommandSettings:
    return CommandSettings.from_args(build_parser().parse_args(argv), command)


def test_the_shipped_file_is_rl_zoo_layout_with_real_numbers():
    data = yaml.safe_load(shipped_config().read_text())
    assert set(data) == set(TASKS)
    for env_id, agents in data.items():
        assert {"np", "sgd", "ppo"} <= set(agents), env_id
        for name, entry in agents.items():
            assert isinstance(entry["n_envs"], int)
            assert ("epochs" in entry) != ("n_timesteps" in entry), (env_id, name)
            for key in ("learning_rate", "sigma"):  # real numbers, not strings (eta* aside)
                value = entry.get(key)
                assert value is None or isinstance(value, float) or str(value).endswith("eta*")
            if name in ("ppo", "a2c"):
                assert "net_arch" in entry["policy_kwargs"] and "hidden_sizes" not in entry


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_the_shipped_file_gives_the_default_runs(env_id):
    """--config tuned (no budget, no widths) gives exactly the runs of no config at all."""
    names = sorted(yaml.safe_load(shipped_config().read_text())[env_id])
    common = ["compare", "--env", env_id, "--agents", ",".join(names), "--out", "x"]
    default = _settings([*common, *TASKS[env_id]]).specs()
    tuned = _settings([*common, "--config", "tuned"])
    assert (tuned.unit, tuned.budget) == ({"--trials": "trials", "--epochs": "epochs"}[
        TASKS[env_id][0]], float(TASKS[env_id][1]))
    assert [s.to_dict() for s in tuned.specs()] == [s.to_dict() for s in default]
    # and by path, as a copied file would be read
    by_path = _settings([*common, "--config", str(shipped_config())]).specs()
    assert [s.run_id for s in by_path] == [s.run_id for s in default]


def test_flags_win_over_the_file():
    s = _settings(["compare", "--env", "NPSarcos-v0", "--agents", "np,ppo", "--config", "tuned",
                   "--epochs", "2", "--hidden", "32", "--num-envs", "10", "--lr", "np=3e-4",
                   "--seeds", "1", "--out", "x"])
    np_spec, ppo_spec = (sp for sp in s.specs())
    assert s.budget == 2 and np_spec.num_envs == 10
    assert np_spec.hidden == (32,) and ppo_spec.hidden == (32,)
    assert np_spec.learning_rate == 3e-4 and np_spec.agent_kwargs["sigma"] == 1e-4


def test_a_users_zoo_file_with_an_alias_and_policy_kwargs(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text(
        f"{LINEAR}:\n"
        "  np-fast:\n"
        "    agent: np\n"
        "    n_envs: 8\n"
        "    n_timesteps: 320\n"            # 320 / (8 inputs x 2 steps) = 20 trials
        "    hidden_sizes: [12]\n"
        "    learning_rate: 0.3eta*\n"
        "  ppo:\n"
        "    n_envs: 8\n"
        "    n_timesteps: 160\n"            # one step per input: 20 trials too
        "    policy_kwargs: {net_arch: [12], log_std_init: -1.0}\n")
    s = _settings(["compare", "--env", LINEAR, "--agents", "np-fast,ppo", "--config", str(path),
                   "--seeds", "1", "--out", "x"])
    assert (s.budget, s.unit, s.num_envs) == (20.0, "trials", 8)
    fast, ppo = s.specs()
    assert fast.agent == "np" and fast.label == "np-fast" and fast.hidden == (12,)
    from np_envs.theory import critical_learning_rate

    assert fast.learning_rate == pytest.approx(0.3 * critical_learning_rate(100, 12, 10))
    assert ppo.agent_kwargs == {"hidden_sizes": [12], "policy_kwargs": {"log_std_init": -1.0}}


def test_agents_whose_entries_disagree_need_the_flag(capsys, tmp_path):
    path = tmp_path / "mixed.yml"
    path.write_text(f"{LINEAR}:\n  np: {{n_envs: 8, n_timesteps: 320}}\n"
                    "  sgd: {n_envs: 4, n_timesteps: 320}\n")
    out = tmp_path / "out"
    argv = ["compare", "--env", LINEAR, "--agents", "np,sgd", "--config", str(path),
            "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    assert "error: --num-envs: the --config entries of the agents differ" in (
        capsys.readouterr().err)
    assert not out.exists()


def test_compare_runs_from_the_file_alone(tmp_path):
    """--config with a budget in the file: no --trials needed; the run uses the file's rate."""
    path = tmp_path / "small.yml"
    path.write_text(f"{LINEAR}:\n  sgd: {{n_envs: 4, n_timesteps: 40, hidden_sizes: [8], "
                    "learning_rate: 1.0e-3}\n")
    out = tmp_path / "out"
    assert main(["compare", "--env", LINEAR, "--agents", "sgd", "--config", str(path),
                 "--seeds", "1", "--no-progress", "--no-plots", "--out", str(out)]) == 0
    (spec,) = json.loads((out / "compare.json").read_text())["specs"]
    assert spec["budget"] == 10 and spec["num_envs"] == 4
    assert spec["agent_kwargs"]["learning_rate"] == 1e-3
