"""``np-envs compare``: agents x seeds on one task; rows, summary table and plots in ``--out``.

Example (the linear task, no download)::

    np-envs compare --env NPLinearTeacher-v0 --agents np,wn-np,reinforce,sgd,ppo \\
        --trials 2000 --seeds 3 --out runs/compare-linear

Rerunning the same command resumes: finished runs are skipped, unfinished ones continue from
their last checkpoint. See :mod:`np_envs.experiments.compare` for the files written.

Exit codes: 0 every run finished; 1 some run failed or is unfinished; 2 a bad command (checked
before anything runs, nothing written); 3 another command is working on ``--out``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from np_envs.experiments.settings import CommandSettings
    from np_envs.experiments.spec import RunSpec

from np_envs.experiments.cliargs import add_common


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``compare`` on the main parser's sub-parsers."""
    p = subparsers.add_parser(
        "compare",
        help="compare learning rules x seeds on one task (curves, summary table)",
        description=(
            "Run each agent with each seed on the same task and data order, evaluate the test "
            "split at a fixed cadence, and write rows, a summary table and PNG plots. Rerun the "
            "same command to resume an interrupted comparison."
        ),
    )
    add_common(p, ("--epochs", "--trials"))
    p.add_argument("--hidden", default=None,
                   help="hidden widths, e.g. 800 or 400x400 for two layers (default per task)")
    p.add_argument("--lr", default=None,
                   help="learning rates per agent, e.g. np=1e-4,sgd=1e-3 (linear task: "
                        "np=0.5eta* for a fraction of the critical rate)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from np_envs.cli.main import run_checked
    from np_envs.experiments.compare import compare_runs

    def go(cmd: CommandSettings, specs: list[RunSpec]) -> dict[str, Any]:
        return compare_runs(specs, cmd.run_settings(), cmd.out, backend=cmd.backend,
                            jobs=cmd.jobs, address=cmd.address, progress=cmd.progress,
                            draw=cmd.draw, wait=cmd.wait)

    return run_checked(args, "compare", go)
