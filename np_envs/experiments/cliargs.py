"""Command-line arguments ``compare`` and ``sweep`` share.

Only their spelling lives here; what each value may be is checked in one place,
:class:`np_envs.experiments.settings.CommandSettings`, before any run starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from np_envs.experiments.spec import BACKENDS, DIAGNOSTICS


def add_common(p: argparse.ArgumentParser, budget_flags: tuple[str, str]) -> None:
    """``--env``, ``--agents``, budget, seeds, batch, cadence, config, backend, output."""
    p.add_argument("--env", required=True, help="environment id, e.g. NPLinearTeacher-v0")
    p.add_argument("--agents", required=True,
                   help="comma-separated agent names or config aliases, e.g. np,wn-np,sgd,ppo")
    budget = p.add_mutually_exclusive_group()
    epochs_flag, trials_flag = budget_flags
    budget.add_argument(epochs_flag, dest="epochs", type=float,
                        help="budget in epochs of the training set (or the --config entries' "
                             "epochs)")
    budget.add_argument(trials_flag, dest="trials", type=int,
                        help="budget in trials (batches of --num-envs inputs); the endless "
                             "linear task needs this")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 (default 3)")
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--num-envs", type=int, default=None,
                   help="inputs per trial (default per task: linear 16, SARCOS 100, MNIST 1000)")
    p.add_argument("--eval-every", type=float, default=None,
                   help="evaluate (and checkpoint) every X epochs or trials (default budget/20)")
    p.add_argument("--env-kwargs", default=None,
                   help='JSON keyword arguments of the env, e.g. \'{"split_scheme": "test-file"}\'')
    p.add_argument("--config", type=Path, default=None,
                   help="YAML file of agent settings: RL Zoo layout (env id, then agent) or one "
                        "task's; 'tuned' is the shipped np_envs/hyperparams/tuned.yml")
    p.add_argument("--metric", choices=("mse", "accuracy"), default=None,
                   help="what the tables rank (default: accuracy on MNIST, mse elsewhere)")
    p.add_argument("--target", type=float, default=None,
                   help="target test mse (or accuracy in percent) for the time-to-target column")
    p.add_argument("--divergence-factor", type=float, default=1e3,
                   help="a run whose test mse exceeds this x its initial mse is stopped as "
                        "diverged (default 1e3)")
    p.add_argument("--diagnostics", default="",
                   help=f"comma-separated extras measured at each evaluation: {DIAGNOSTICS} "
                        "(cosine reveals targets to the experimenter's wrapper, never the rule)")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local (process pool) or ray")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start one)")
    p.add_argument("--jobs", type=int, default=1, help="parallel runs (default 1)")
    p.add_argument("--out", type=Path, required=True, help="output folder (rerun to resume)")
    p.add_argument("--wait", action="store_true",
                   help="if another command is working on --out, wait for it to finish "
                        "(default: exit 3 at once)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="tables only, no PNG files")
