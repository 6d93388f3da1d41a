"""``np-envs sweep``: learning rates x widths x seeds per agent, locally or on Ray.

Example (SARCOS, the paper's Fig. 4E in small)::

    np-envs sweep --env NPSarcos-v0 --env-kwargs '{"split_scheme": "test-file"}' \\
        --agents np --hidden 50,100,200 --lrs 1e-5:1e-3:7 --seeds 5 --target 5.0 \\
        --budget-epochs 3000 --jobs 8 --out runs/sweep-sarcos

``--backend ray --address ray://host:10001`` runs the same jobs on a cluster (the output folder
must be visible to every node). Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import sys

from np_envs.experiments.cliargs import add_common, labels_from, seeds_from, settings_from
from np_envs.experiments.config import parse_architectures


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


def _rates(text: str | None) -> list[str] | None:
    """Keep eta*-relative entries as text (resolved per width); expand ranges of numbers."""
    if not text:
        return None
    from np_envs.experiments.config import parse_rates

    if "eta*" in text:
        if text.count(":") == 2:
            lo, hi, n = text.split(":")
            factors = parse_rates(f"{lo.replace('eta*', '')}:{hi.replace('eta*', '')}:{n}")
            return [f"{f!r}eta*" for f in factors]
        return [t.strip() for t in text.split(",") if t.strip()]
    return [repr(v) for v in parse_rates(text)]


def run(args: argparse.Namespace) -> int:
    from np_envs.experiments.sweep import run_sweep

    try:
        settings = settings_from(args)
        if settings.target is None:
            raise ValueError("sweep needs --target (the error, or accuracy in percent, to reach)")
        archs = parse_architectures(args.hidden) or [None]
        result = run_sweep(
            settings, labels_from(args), archs, _rates(args.lrs), seeds_from(args), args.out,
            backend=args.backend, jobs=args.jobs, address=args.address,
            progress=not args.no_progress, draw=not args.no_plots,
            climb_factor=args.climb_factor,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"np-envs sweep: error: {err}", file=sys.stderr)
        return 2
    return 1 if any(r["status"] == "failed" for r in result["results"]) else 0
