"""Shared plumbing of the reproduction scripts: arguments, plot style, result files, timing.

Every panel script writes into ``--out`` (default ``runs/reproduce/<panel>``) a PNG, a CSV of
the plotted numbers and ``summary.json`` (settings, headline numbers, wall time), and prints the
headline numbers, so that REPRODUCTION.md can quote exactly what a command produced.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from np_envs import plotting

#: Colours of successive learning rates / widths: the package's, so panels and commands match.
COLORS = plotting.COLORS


def float_list(text: str) -> list[float]:
    """Comma-separated numbers, e.g. ``0.8,1.0,1.2``."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from exc


def int_list(text: str) -> list[int]:
    """Comma-separated integers, e.g. ``500,1000,2000``."""
    try:
        return [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from exc


def make_parser(panel: str, doc: str | None) -> argparse.ArgumentParser:
    """Options every panel has: --out, --paper, --seeds, --workers."""
    p = argparse.ArgumentParser(
        prog=f"{panel}.py",
        description=(doc or "").strip().splitlines()[0] if doc else panel,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/reproduce") / panel, help="result folder")
    p.add_argument(
        "--paper",
        action="store_true",
        help="the authors' sizes (hours on a CPU); options given explicitly still win",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting")
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="parallel processes for independent runs",
    )
    return p


def add_linear_task_args(
    p: argparse.ArgumentParser, *, teacher_noise: bool = False
) -> None:
    """Options of the linear-task panels that scan learning rates at one size."""
    p.add_argument("--Lx", type=int)
    p.add_argument("--Lh", type=int)
    p.add_argument("--Ly", type=int)
    if teacher_noise:
        p.add_argument("--sigma-t", dest="sigma_t", type=float)
    p.add_argument("--ratios", type=float_list, help="learning rates / eta*")


def resolve(args: argparse.Namespace, cpu: dict, paper: dict) -> argparse.Namespace:
    """Fill options left at None with the CPU-sized default, or the paper's with ``--paper``."""
    for key, value in cpu.items():
        if getattr(args, key, None) is None:
            setattr(args, key, paper.get(key, value) if args.paper else value)
    return args


def setup_plot():
    """Headless matplotlib with np-envs' shared style (np_envs.plotting)."""
    return plotting.pyplot()


def save(fig, path: Path) -> Path:
    """Save through np_envs.plotting: readable log ticks on every axis, caption kept."""
    return plotting.save(fig, path)


def write_csv(path: Path, rows: Sequence[dict]) -> Path:
    """Write dict rows (union of keys, in first-seen order) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in keys})
    return path


def _fmt(v: object) -> object:
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return v


def _jsonable(v: object) -> object:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        x = float(v)
        return x if math.isfinite(x) else str(x)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return v


class Run:
    """Times a panel and writes its ``summary.json``; the wall time is what REPRODUCTION quotes."""

    def __init__(self, panel: str, args: argparse.Namespace) -> None:
        self.panel = panel
        self.args = args
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.summary: dict = {
            "panel": panel,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "size": "paper" if args.paper else "reduced (CPU default)",
            "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        }

    def finish(self, results: dict, files: Iterable[Path]) -> dict:
        """Record results, files and wall time; print a short report; return the summary."""
        self.summary["results"] = results
        self.summary["files"] = [str(f) for f in files]
        self.summary["wall_s"] = round(time.perf_counter() - self.t0, 1)
        self.summary["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
        with open(self.out / "summary.json", "w") as fh:
            json.dump(_jsonable(self.summary), fh, indent=1)
        print(f"[{self.panel}] {self.summary['size']}; wall {self.summary['wall_s']} s")
        print(json.dumps(_jsonable(results), indent=1))
        for f in self.summary["files"]:
            print(f"  wrote {f}")
        return self.summary


def log_steps(steps: int, n: int = 120) -> list[int]:
    """0 and about ``n`` log-spaced steps up to ``steps``: cheap records, smooth log plots."""
    grid = np.unique(np.rint(np.logspace(0, math.log10(max(steps, 1)), n)).astype(int))
    return sorted({0, *grid.tolist(), steps})


def seed_mean(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over seeds where every seed has a value (nan once any run stopped early)."""
    arr = np.vstack(curves)
    with np.errstate(invalid="ignore"):
        return np.where(np.all(np.isfinite(arr), axis=0), arr.mean(axis=0), np.nan)
