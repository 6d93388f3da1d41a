"""``np-envs data``: fetch, verify and locate the data files (MNIST, SARCOS).

- ``where``: the data folder, the user cache, and each file's path and presence.
- ``verify [--allow-missing]``: reads every file and prints OK / CORRUPT / MISSING per file, plus
  how much of the SARCOS test file occurs in the training file; exit 1 if any file is corrupt or
  missing (``--allow-missing``: missing files are reported but do not fail, e.g. on a machine that
  only has the SARCOS test file).
- ``fetch [--dataset mnist|sarcos|all]``: downloads missing or corrupt files (verified before they
  replace anything); exit 1, saying what to put where, if some cannot be downloaded.
"""

from __future__ import annotations

import argparse
import sys

from np_envs.data import DataError, check, integrity, sarcos
from np_envs.data.locations import (
    ENV_CACHE,
    ENV_DATA,
    data_dir,
    data_dir_is_override,
    path_for,
    write_problem,
)
from np_envs.data.registry import DATASETS, DataFile

DATASET_CHOICES = ("all", *DATASETS)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data`` (with ``fetch``, ``verify``, ``where``) on the main parser."""
    p = subparsers.add_parser(
        "data",
        help="fetch, verify and locate the data files",
        description=(
            f"Data files live in ${ENV_DATA}/<dataset>/<file> if {ENV_DATA} is set (never written "
            f"to while loading), else in the user cache (${ENV_CACHE} or the OS cache folder)."
        ),
    )
    actions = p.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download missing or corrupt files, then verify")
    fetch.add_argument("--dataset", choices=DATASET_CHOICES, default="all", help="default: all")
    verify = actions.add_parser("verify", help="check every present file (OK/CORRUPT/MISSING)")
    verify.add_argument("--dataset", choices=DATASET_CHOICES, default="all", help="default: all")
    verify.add_argument(
        "--allow-missing", action="store_true",
        help="exit 0 when every present file is good, even if some are missing (default: exit 1)",
    )
    actions.add_parser("where", help="print the data folder and each file's path and presence")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns the exit code."""
    action = {"fetch": _fetch, "verify": _verify, "where": _where}[args.data_action]
    return action(args)


def _files(dataset: str) -> tuple[DataFile, ...]:
    if dataset == "all":
        return tuple(f for files in DATASETS.values() for f in files)
    return DATASETS[dataset]


def _folder_line() -> str:
    folder = data_dir()
    source = f"from {ENV_DATA}" if data_dir_is_override() else "user cache"
    problem = write_problem(folder)
    mode = "writable" if problem is None else f"not writable: {problem}"
    return f"data folder: {folder}  ({source}, {mode})"


def _where(args: argparse.Namespace) -> int:
    print(_folder_line())
    print(f"user cache:  {integrity.record_file().parent}  (recorded checksums: "
          f"{integrity.record_file().name})")
    for file in _files("all"):
        path = path_for(file)
        state = f"present {path.stat().st_size:>11,} bytes" if path.is_file() else "missing"
        print(f"  {file.relpath:<36} {state:<26} {path}")
    return 0


def _print_status(status: check.FileStatus) -> None:
    detail_lines = status.detail.splitlines() or [""]
    print(f"{status.status:<8} {status.file.relpath:<36} {detail_lines[0]}")
    if status.status != check.OK or len(detail_lines) > 1:
        if status.status == check.MISSING:
            print(f"{'':<9}expected at {status.path}")
        for line in detail_lines[1:]:
            print(f"{'':<9}{line}")


def _verify(args: argparse.Namespace) -> int:
    print(_folder_line())
    statuses = check.check_all(_files(args.dataset))
    for status in statuses:
        _print_status(status)
    counts = {s: sum(st.status == s for st in statuses) for s in (check.OK, check.MISSING,
                                                                  check.CORRUPT)}
    if args.dataset in ("all", "sarcos"):
        print(_overlap_line(statuses))
    print(f"{counts[check.OK]} OK, {counts[check.MISSING]} missing, "
          f"{counts[check.CORRUPT]} corrupt")
    if counts[check.MISSING]:
        print("Missing files can be downloaded with `np-envs data fetch` (or copied to the paths "
              "above by hand).")
        if not args.allow_missing:
            print(f"{counts[check.MISSING]} file(s) missing: exit 1 (pass --allow-missing to "
                  "check only the files present).", file=sys.stderr)
    if counts[check.CORRUPT]:
        return 1
    return 1 if counts[check.MISSING] and not args.allow_missing else 0


def _overlap_line(statuses: list[check.FileStatus]) -> str:
    sarcos_ok = {st.file.name for st in statuses if st.status == check.OK}
    if not {f.name for f in DATASETS["sarcos"]} <= sarcos_ok:
        return ("SARCOS overlap: not measured (needs both sarcos_inv.mat and sarcos_inv_test.mat; "
                'without the training file use split_scheme="test-file")')
    try:
        report = sarcos.sarcos_overlap_report()
    except DataError as exc:
        return f"SARCOS overlap: not measured ({str(exc).splitlines()[0]})"
    return (
        f"SARCOS overlap: {report['rows_in_train']:,} of {report['test_rows']:,} test-file rows "
        f"({100 * report['fraction']:.1f} %) occur verbatim in the training file "
        f"({report['train_rows']:,} rows); split_scheme=\"leak-free\" avoids this leak."
    )


def _fetch(args: argparse.Namespace) -> int:
    print(_folder_line())
    progressbar = sys.stderr.isatty()
    statuses = [check.fetch_file(f, progressbar=progressbar) for f in _files(args.dataset)]
    for status in statuses:
        _print_status(status)
    failed = [st for st in statuses if st.status != check.OK]
    if not failed:
        print(f"All {len(statuses)} file(s) present and verified.")
        return 0
    print(f"{len(failed)} file(s) could not be fetched: "
          f"{', '.join(st.file.name for st in failed)}.", file=sys.stderr)
    print("Put each at the path shown above (downloaded from its URL on a machine with a "
          f"network), or point {ENV_DATA} to a folder that holds them.", file=sys.stderr)
    if any(st.file.name == "sarcos_inv.mat" for st in failed):
        print(sarcos.MISSING_TRAIN_HINT, file=sys.stderr)
    return 1
