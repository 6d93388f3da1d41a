"""Entry point of the ``np-envs`` command: builds one sub-parser per subcommand module.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which registers the
sub-parser and sets ``func`` to the module's ``run(args) -> int``). A module whose optional
dependencies are missing still lists its subcommand; the error comes when it is run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

SUBCOMMAND_MODULES = ("data", "theory", "compare", "sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="np-envs",
        description="Reward-only Gymnasium tasks and the rules that learn from them.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"np_envs.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("np_envs.cli."):
                continue  # subcommand not part of this build
            raise
        module.add_parser(subparsers)
    return parser


#: exit codes of ``compare`` and ``sweep``
EXIT_OK, EXIT_UNFINISHED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


def run_checked(args: argparse.Namespace, command: str,
                go: Callable[[Any, list[Any]], dict[str, Any]]) -> int:
    """Check the whole command, then ``go(settings, specs)``; map outcomes to exit codes.

    A bad value is reported on one line (flag, value, what is allowed) before anything is
    computed or written: exit 2. A busy ``--out``: exit 3. A failed or unfinished run: exit 1.
    """
    from np_envs.experiments.outlock import OutFolderBusy
    from np_envs.experiments.settings import CommandSettings, UsageError

    try:
        cmd = CommandSettings.from_args(args, command)  # type: ignore[arg-type]
        cmd.check()
        specs = cmd.specs()
    except UsageError as err:
        print(f"np-envs {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = go(cmd, specs)
    except OutFolderBusy as err:
        print(f"np-envs {command}: error: {err}", file=sys.stderr)
        return EXIT_BUSY
    except (ValueError, FileNotFoundError) as err:
        print(f"np-envs {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_UNFINISHED if result.get("unfinished") else EXIT_OK


#: subcommands that run jobs: the first SIGINT/SIGTERM stops them cleanly (see run_stoppable)
STOPPABLE = ("compare", "sweep", "theory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command in STOPPABLE:
        return run_stoppable(args)
    return int(args.func(args) or 0)


def run_stoppable(args: argparse.Namespace) -> int:
    """Run a job command so that Ctrl-C or SIGTERM stops it without a traceback: the jobs
    stop, the tables are written for what finished, the last line says how to resume, and the
    exit code is 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    from np_envs.experiments import stopping

    with stopping.stop_on_signals() as stop:
        try:
            code = int(args.func(args) or 0)
        except KeyboardInterrupt:  # ours, or ours re-raised by a library (Ray) as its own
            if stop.signum is None:
                raise
            code = 0  # the signal came outside the jobs (planning, tables): nothing is lost
        if stop.signum is None:
            return code
        sys.stdout.flush()
        print(stopping.INTERRUPTED_LINE, file=sys.stderr, flush=True)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
