"""Entry point of the ``np-envs`` command: builds one sub-parser per subcommand module.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which registers the
sub-parser and sets ``func`` to the module's ``run(args) -> int``). A module whose optional
dependencies are missing still lists its subcommand; the error comes when it is run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
