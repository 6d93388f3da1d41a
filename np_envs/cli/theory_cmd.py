"""``np-envs theory``: mean-field predictions for the linear task (Fig. 1A, Fig. 3A).

Prints eta* and SGD's optimal rate, iterates the two-variable map for each learning-rate ratio,
writes ``theory.csv`` (log-spaced steps) and draws ``eps.png`` and, with teacher noise,
``a_eps_plane.png``. ``--simulate`` also runs the NP rule itself (several seeds) and draws it
beside the theory; each finished (ratio, seed) run is cached in ``OUT/sim_cache`` so an
interrupted run resumes without redoing it.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from np_envs import theory
from np_envs.experiments.settings import check_out

N_LOG_POINTS = 200


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``theory`` on the main parser's sub-parsers."""
    p = subparsers.add_parser(
        "theory",
        help="mean-field predictions for the linear student-teacher task",
        description=(
            "Mean-field theory of node perturbation in a one-hidden-layer linear network "
            "(paper Section 4): critical learning rate, error trajectories, instability onset."
        ),
    )
    p.add_argument("--Lx", type=int, default=100, help="input size (default 100)")
    p.add_argument("--Lh", type=int, default=2000, help="hidden size (default 2000)")
    p.add_argument("--Ly", type=int, default=10, help="output size (default 10)")
    p.add_argument(
        "--lr-ratio",
        type=_ratio_list,
        default=_ratio_list("0.8,1.0,1.2,1.4"),
        help="comma-separated learning rates in units of eta* (default 0.8,1.0,1.2,1.4)",
    )
    p.add_argument("--sigma-t", type=float, default=0.0, help="teacher noise std (default 0)")
    p.add_argument("--steps", type=int, default=100_000, help="samples per run (default 1e5)")
    p.add_argument("--init-scale", type=float, default=1.0, help="variance factor of W1 (Fig. 1C)")
    p.add_argument(
        "--onset-max-steps",
        type=int,
        default=10**7,
        help="search the instability onset up to this many steps (default 1e7)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/theory"), help="output folder")
    p.add_argument("--simulate", action="store_true", help="also simulate the NP rule")
    # the simulation's own options default to None so that one given without --simulate (which
    # would silently do nothing) is refused; SIMULATION_DEFAULTS fills them in
    p.add_argument("--seeds", type=int, default=None,
                   help="with --simulate: simulated seeds per ratio (default 3)")
    p.add_argument("--device", default=None,
                   help="with --simulate: torch device of the simulation (default cpu)")
    p.add_argument(
        "--jobs", type=int, default=None,
        help="with --simulate: learning rates simulated at once, one process each (default 1)",
    )
    p.set_defaults(func=run)
    return p


def _ratio_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        msg = f"not a comma-separated list of numbers: {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"learning-rate ratios must be positive: {text!r}")
    return values


def log_spaced_steps(steps: int, n: int = N_LOG_POINTS) -> np.ndarray:
    """0 plus about ``n`` log-spaced steps in [1, steps]: small files, smooth log-log plots."""
    if steps <= 0:
        return np.zeros(1, dtype=np.int64)
    grid = np.unique(np.rint(np.logspace(0.0, math.log10(steps), n)).astype(np.int64))
    return np.concatenate([[0], grid[(grid >= 1) & (grid <= steps)]])


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder, then os.replace: never a half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    _atomic_write(path, write)


def _save_figure(fig, path: Path) -> None:
    """np_envs.plotting's save: readable log ticks, atomic write, figure closed."""
    from np_envs import plotting

    plotting.save(fig, path)


def _sim_cache_path(args: argparse.Namespace, lr: float, seed: int, record: np.ndarray) -> Path:
    key = (
        f"Lx{args.Lx}_Lh{args.Lh}_Ly{args.Ly}_st{args.sigma_t:g}_r{args.init_scale:g}"
        f"_lr{lr:.9e}_T{args.steps}_n{record.size}_seed{seed}"
    )
    return args.out / "sim_cache" / f"{key}.npz"


Simulated = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, a, eps of one (rate, seed) run


def _simulate_rate(spec: dict, lr: float) -> tuple[list[Simulated], float]:
    """One rate's seeds as one population, each seed's run written to the cache as soon as the
    population ends (by the process that ran it: a kill of the parent loses nothing that
    finished); each seed's (steps, a, eps) and the seconds taken."""
    from np_envs.linear_simulation import simulate_linear_grid

    args, record = spec["args"], spec["record"]
    start = time.perf_counter()
    [per_seed] = simulate_linear_grid(
        args.Lx, args.Lh, args.Ly, [lr], args.steps, seeds=spec["seeds"], sigma_t=args.sigma_t,
        record_steps=record, init_scale=args.init_scale, device=args.device,
    )
    results = [(run.steps, run.a, run.eps) for run in per_seed]
    for seed, result in zip(spec["seeds"], results, strict=True):

        def write(tmp: Path, result=result) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, steps=result[0], a=result[1], eps=result[2])

        _atomic_write(_sim_cache_path(args, lr, seed, record), write)
    return results, time.perf_counter() - start


def _simulate_all(
    args: argparse.Namespace, rates: list[float], record: np.ndarray
) -> dict[tuple[float, int], Simulated]:
    """Every (rate, seed) run: loaded from OUT/sim_cache when an identical run already
    finished, the others trained per rate as one population of its seeds (member (lr, seed) is
    exactly ``theory.simulate_linear_np(..., lr, seed=seed)``), each written to the cache.

    Why per rate: each rate's runs are cached as soon as they end, so a kill loses the work of
    the rates under way at most; a run that ends early (diverged) leaves its population at
    once. With ``--jobs`` N > 1, N rates run at once, each in its own process (a population
    of one rate's seeds is a few small products per step: one core's work). Ctrl-C / SIGTERM
    (the command runs under ``run_stoppable``) kill the workers; the cache keeps every rate
    that had finished."""
    seeds = list(range(args.seeds))
    found: dict[tuple[float, int], Simulated] = {}
    for lr in rates:
        for seed in seeds:
            path = _sim_cache_path(args, lr, seed, record)
            if path.exists():
                try:
                    with np.load(path) as z:
                        found[(lr, seed)] = (z["steps"], z["a"], z["eps"])
                except (OSError, ValueError, KeyError):
                    pass  # corrupt cache entry: recompute
    (args.out / "sim_cache").mkdir(parents=True, exist_ok=True)
    todo = [lr for lr in rates if not all((lr, seed) in found for seed in seeds)]
    spec = {"args": args, "seeds": seeds, "record": record}

    def finished(lr: float, per_seed: list[Simulated], seconds: float) -> None:
        print(f"  simulated lr {lr:.4e}: {len(seeds)} seeds as one population "
              f"({seconds:.1f} s)", flush=True)
        for seed, result in zip(seeds, per_seed, strict=True):
            found[(lr, seed)] = result

    workers = min(args.jobs, len(todo))
    if workers <= 1:
        for lr in todo:
            finished(lr, *_simulate_rate(spec, lr))
        return found
    from concurrent.futures import as_completed

    from np_envs.experiments.stopping import process_pool

    # the sweep's pool: one torch thread and a share of the cores per worker, workers that
    # ignore Ctrl-C and die with this process, killed at once when a signal stops the command
    with process_pool(workers) as submit:
        futures = {submit(_simulate_rate, spec, lr): lr for lr in todo}
        for future in as_completed(futures):
            finished(futures[future], *future.result())
    return found


def _finite_ylim(curves: list[np.ndarray], eps0: float) -> tuple[float, float]:
    """Log-scale limits that ignore blow-ups (inf, 1e300) and exact zeros."""
    vals = np.concatenate([c[np.isfinite(c) & (c > 0)] for c in curves] or [np.array([eps0])])
    lo = max(float(vals.min()) if vals.size else eps0, eps0 * 1e-12) * 0.5
    return lo, max(1.0, 10.0 * eps0)


#: what --seeds, --device and --jobs mean when --simulate is given without them
SIMULATION_DEFAULTS = {"seeds": 3, "device": "cpu", "jobs": 1}


def _simulation_options(args: argparse.Namespace) -> None:
    """Refuse the simulation's options without ``--simulate``, else fill in their defaults."""
    given = [f"--{name}" for name in SIMULATION_DEFAULTS if getattr(args, name) is not None]
    if given and not args.simulate:
        raise ValueError(f"{', '.join(given)} only apply to the simulation: add --simulate, or "
                         "leave them out for the theory alone")
    for name, default in SIMULATION_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def run(args: argparse.Namespace) -> int:
    """Compute, print, write theory.csv and the figures; 0 on success, 2 on bad arguments."""
    try:
        _simulation_options(args)
        eta_star = theory.critical_learning_rate(args.Lx, args.Lh, args.Ly, args.init_scale)
        eta_sgd = theory.sgd_optimal_learning_rate(args.Lx, args.Lh, args.Ly)
        p0 = theory.initial_order_parameters(args.Lx, args.Lh, args.Ly, args.init_scale)
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        if args.sigma_t < 0:
            raise ValueError(f"--sigma-t must be >= 0, got {args.sigma_t}")
        if args.simulate and args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        check_out(args.out)  # a file there would fail only after the theory was computed
    except ValueError as exc:
        print(f"np-envs theory: error: {exc}", file=sys.stderr)
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ratios: list[float] = list(args.lr_ratio)
    record = log_spaced_steps(args.steps)

    print(f"Linear student-teacher, Lx={args.Lx} Lh={args.Lh} Ly={args.Ly} "
          f"sigma_t={args.sigma_t:g} init_scale={args.init_scale:g}")
    print(f"  alpha0={p0['alpha0']:.6g} beta0={p0['beta0']:.6g} eps0={p0['eps0']:.6g} "
          f"a0={p0['a0']:.6g}")
    print(f"  critical learning rate eta*    = {eta_star:.6e}")
    print(f"  SGD optimal learning rate      = {eta_sgd:.6e}  ({eta_sgd / eta_star:.1f} x eta*)")

    traj: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    rows: list[list] = []
    header = f"  {'ratio':>6} {'lr':>12} {'eps_final':>12} {'eps_min':>12} {'at step':>9}"
    if args.sigma_t > 0:
        header += f" {'onset':>10}"
    print(header)
    for ratio in ratios:
        lr = ratio * eta_star
        a, eps = theory.mean_field_trajectory(
            args.Lx, args.Lh, args.Ly, lr, args.steps, args.sigma_t, init_scale=args.init_scale
        )
        traj[ratio] = (a, eps)
        finite = np.where(np.isfinite(eps), eps, np.inf)
        imin = int(np.argmin(finite))
        line = f"  {ratio:>6g} {lr:>12.4e} {eps[-1]:>12.4e} {eps[imin]:>12.4e} {imin:>9d}"
        if args.sigma_t > 0:
            onset = theory.instability_onset(
                args.Lx, args.Lh, args.Ly, lr, args.sigma_t, args.onset_max_steps,
                init_scale=args.init_scale,
            )
            line += f" {onset if onset is not None else '>' + str(args.onset_max_steps):>10}"
        print(line)
        for t in record:
            rows.append([f"{ratio:g}", f"{lr:.9e}", int(t), f"{a[t]:.9e}", f"{eps[t]:.9e}"])
    _write_csv(out / "theory.csv", ["lr_ratio", "learning_rate", "step", "a", "eps"], rows)

    sims: dict[float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    if args.simulate:
        sim_rows: list[list] = []
        results = _simulate_all(args, [ratio * eta_star for ratio in ratios], record)
        for ratio in ratios:
            lr = ratio * eta_star
            sims[ratio] = []
            for seed in range(args.seeds):
                st, a_s, e_s = results[(lr, seed)]
                sims[ratio].append((st, a_s, e_s))
                print(f"  simulated ratio {ratio:g} seed {seed}: eps_final={e_s[-1]:.4e}")
                for t, av, ev in zip(st, a_s, e_s, strict=True):
                    sim_rows.append([f"{ratio:g}", f"{lr:.9e}", seed, int(t), f"{av:.9e}",
                                     f"{ev:.9e}"])
        _write_csv(
            out / "simulation.csv",
            ["lr_ratio", "learning_rate", "seed", "step", "a", "eps"],
            sim_rows,
        )

    _plot(args, out, ratios, eta_star, p0["eps0"], record, traj, sims)
    print(f"  wrote {out / 'theory.csv'}" + (" and simulation.csv" if args.simulate else ""))
    return 0


def _plot(
    args: argparse.Namespace,
    out: Path,
    ratios: list[float],
    eta_star: float,
    eps0: float,
    record: np.ndarray,
    traj: dict[float, tuple[np.ndarray, np.ndarray]],
    sims: dict[float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
) -> None:
    """Fig. 1A (eps vs step, log-log) and, with teacher noise, Fig. 3A (the (a, eps) plane)."""
    from np_envs import plotting

    plt = plotting.pyplot()
    colors = [plotting.color(i) for i in range(len(ratios))]
    t = record[record >= 1]

    def clean(v: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(v) & (v > 0), v, np.nan)

    curves: list[np.ndarray] = []
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for color, ratio in zip(colors, ratios, strict=True):
        eps_t = traj[ratio][1][t]
        curves.append(eps_t)
        ax.plot(t, clean(eps_t), ls="--", color=color, lw=1.5,
                label=f"{ratio:g} eta*: two-variable map")
        if args.init_scale == 1.0:  # the four-variable model starts from Xavier-Glorot only
            four = theory.mean_field_four_variable(
                args.Lx, args.Lh, args.Ly, ratio * eta_star, int(t[-1]), args.sigma_t)["eps"][t]
            ax.plot(t, clean(np.where(four <= 100 * eps0, four, np.nan)), ls=":",
                    color=color, lw=1.5, label=f"{ratio:g} eta*: four-variable model")
        if ratio in sims:
            st = sims[ratio][0][0]
            with np.errstate(invalid="ignore", over="ignore"):
                mean = np.mean(np.stack([e for _, _, e in sims[ratio]]), axis=0)
            keep = st >= 1
            curves.append(mean[keep])
            ax.plot(st[keep], clean(mean[keep]), ls="-", color=color, lw=1.5,
                    label=f"{ratio:g} eta* (NP, {len(sims[ratio])} seeds)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1, max(args.steps, 2))
    ax.set_ylim(*_finite_ylim(curves, eps0))
    ax.set_xlabel("step (samples)")
    ax.set_ylabel("error eps")
    ax.set_title(f"NP, linear Lx={args.Lx} Lh={args.Lh} Ly={args.Ly}, sigma_t={args.sigma_t:g}",
                 fontsize=10)
    ax.legend(fontsize=7)
    _save_figure(fig, out / "eps.png")

    if args.sigma_t <= 0:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    eps_top = _finite_ylim([], eps0)[1]
    a_max = 0.0
    curves = []
    for color, ratio in zip(colors, ratios, strict=True):
        a, eps = traj[ratio]
        # only the part inside the plotted eps range: a blow-up would stretch the a axis to 1e100
        ok = np.isfinite(a) & np.isfinite(eps) & (eps <= eps_top)
        curves.append(eps[ok])
        ax.plot(a[ok], clean(eps[ok]), ls="--", color=color, lw=2, label=f"{ratio:g} eta* (theory)")
        a_max = max(a_max, float(a[ok].max()))
        for _st, a_s, e_s in sims.get(ratio, []):
            ok_s = np.isfinite(a_s) & np.isfinite(e_s) & (e_s <= eps_top)
            ax.plot(a_s[ok_s], clean(e_s[ok_s]), ls="-", color=color, lw=1, alpha=0.7)
    a0 = float(traj[ratios[0]][0][0])
    a_hi = max(a_max, a0) * 1.05
    for color, ratio in zip(colors, ratios, strict=True):
        c = theory.coupling_coefficient(args.Lx, args.Lh, args.Ly, ratio * eta_star)
        grid = np.linspace(a0 * 0.95, min(a_hi, 2.0 / c), 400)
        ax.plot(grid, clean(theory.nullcline_eps(grid, c, args.sigma_t, args.Lx)), ls=":",
                color=color, lw=1.5)
        if 2.0 / c <= a_hi:
            ax.axvline(2.0 / c, ls=":", color=color, lw=0.8)
    ax.plot([], [], ls=":", color="gray", label="nullcline (Eq. 14)")
    ax.set_yscale("log")
    ax.set_xlim(a0 * 0.95, a_hi)
    ax.set_ylim(*_finite_ylim(curves, eps0))
    ax.set_xlabel("normalised input-weight norm a")
    ax.set_ylabel("error eps")
    ax.set_title(f"(a, eps) plane, sigma_t={args.sigma_t:g}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_figure(fig, out / "a_eps_plane.png")
    plt.close(fig)
