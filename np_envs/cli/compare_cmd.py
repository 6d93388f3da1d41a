"""``np-envs compare``: agents x seeds on one task; rows, summary table and plots in ``--out``.

Example (the linear task, no download)::

    np-envs compare --env NPLinearTeacher-v0 --agents np,wn-np,reinforce,sgd,ppo \\
        --trials 2000 --seeds 3 --out runs/compare-linear

Rerunning the same command resumes: finished runs are skipped, unfinished ones continue from
their last checkpoint. See :mod:`np_envs.experiments.compare` for the files written.
"""

from __future__ import annotations

import argparse
import sys

from np_envs.experiments.cliargs import add_common, labels_from, seeds_from, settings_from
from np_envs.experiments.config import parse_architectures, parse_overrides


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
    from np_envs.experiments.compare import run_compare

    try:
        settings = settings_from(args)
        archs = parse_architectures(args.hidden)
        if len(archs) > 1:
            raise ValueError("compare takes one architecture (--hidden 800 or 400x400); "
                             "use sweep for several widths")
        hidden = archs[0] if archs else None
        overrides = parse_overrides(args.lr)
        summary = run_compare(
            settings, labels_from(args), seeds_from(args), hidden, overrides, args.out,
            backend=args.backend, jobs=args.jobs, address=args.address,
            progress=not args.no_progress, draw=not args.no_plots,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"np-envs compare: error: {err}", file=sys.stderr)
        return 2
    return 1 if any(r["status"] == "failed" for r in summary["results"]) else 0
