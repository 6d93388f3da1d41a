"""``np-envs sweep``: learning rates x widths x seeds per agent, locally or on Ray.

Example (SARCOS, the paper's Fig. 4E in small)::

    np-envs sweep --env NPSarcos-v0 --env-kwargs '{"split_scheme": "test-file"}' \\
        --agents np --hidden 50,100,200 --lrs 1e-5:1e-3:7 --seeds 5 --target 5.0 \\
        --budget-epochs 3000 --jobs 8 --out runs/sweep-sarcos

``--backend ray --address ray://host:10001`` runs the same jobs on a cluster (the output folder
must be visible to every node). Rerunning the same command resumes. Exit codes as for
``compare``: 0, 1 (a run failed or is unfinished), 2 (a bad command), 3 (``--out`` busy).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from np_envs.experiments.settings import CommandSettings
    from np_envs.experiments.spec import RunSpec

from np_envs.experiments.cliargs import add_common


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sweep`` on the main parser's sub-parsers."""
    p = subparsers.add_parser(
        "sweep",
        help="sweep learning rates x widths x seeds (local process pool or Ray)",
        description=(
            "One isolated run per grid point; per agent and width the minimum over learning "
            "rates of the time to reach --target, the time of the minimum error and of the "
            "climb back above the start. Rerun the same command to resume."
        ),
    )
    add_common(p, ("--budget-epochs", "--budget-trials"))
    p.add_argument("--hidden", default=None,
                   help="widths to sweep, e.g. 50,100,200 (400x400: two layers; default per "
                        "task)")
    p.add_argument("--lrs", default=None,
                   help="learning rates: LO:HI:N log-spaced (e.g. 1e-5:1e-3:7) or a comma list; "
                        "linear task: 0.2eta*:1.4eta*:7 (default: each agent's default rate)")
    p.add_argument("--climb-factor", type=float, default=1.1,
                   help="the error 'climbs back' when above this x its initial value (1.1)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from np_envs.cli.main import run_checked
    from np_envs.experiments.sweep import sweep_runs

    def go(cmd: CommandSettings, specs: list[RunSpec]) -> dict[str, Any]:
        return sweep_runs(specs, cmd.run_settings(), cmd.out, backend=cmd.backend,
                          jobs=cmd.jobs, address=cmd.address, progress=cmd.progress,
                          draw=cmd.draw, climb_factor=cmd.climb_factor, wait=cmd.wait)

    return run_checked(args, "sweep", go)
