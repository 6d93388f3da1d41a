"""Fig. 2A: minimum training time to a target error vs hidden width Lh, NP and SGD (linear task).

For each width, each rule runs over a grid of learning rates (multiples of eta* for NP, of SGD's
optimal rate for SGD) and seeds; a rate's time is the seed-mean number of samples until the
error first falls to ``--target``, and the minimum over rates is plotted (points). Lines: SGD's
Lx log(eps0/eps_tg) (Eq. 9/13) and, for NP, the minimum over rates of the two-variable map's
first passage (Eq. 13 evaluated numerically). NP's time should be nearly flat in Lh.

    python examples/reproduce/fig2a.py            # reduced: Lh=100..2000, 2 seeds
    python examples/reproduce/fig2a.py --paper    # Lh=100..10000, 10 seeds, finer rate grid
"""

from __future__ import annotations

import math
import sys

import _common as C
import _linear as L
import numpy as np

from np_envs import theory

CPU = dict(
    Lx=100,
    widths=[100, 300, 1000, 2000],
    outputs=[10],
    Ly=10,
    Lh=1000,
    target=1e-3,
    np_ratios=[0.75, 0.9, 1.05],
    sgd_ratios=[0.5, 0.7, 1.0, 1.4],
    seeds=2,
    np_max_steps=60_000,
    sgd_max_steps=5000,
)
#: Runs stop at this multiple of the theory's minimum time (the theory over-estimates NP's).
BUDGET = 2.0
PAPER = dict(
    widths=[100, 300, 1000, 3000, 10_000],
    outputs=[5, 10, 20, 40, 80],
    Lh=10_000,
    np_ratios=list(np.round(np.geomspace(0.4, 1.2, 12), 3)),
    sgd_ratios=list(np.round(np.geomspace(0.35, 2.0, 8), 3)),
    seeds=10,
    np_max_steps=200_000,
)


def add_options(p) -> None:
    p.add_argument("--Lx", type=int)
    p.add_argument("--target", type=float, help="target error eps_tg")
    p.add_argument("--np-ratios", dest="np_ratios", type=C.float_list, help="NP rates / eta*")
    p.add_argument(
        "--sgd-ratios",
        dest="sgd_ratios",
        type=C.float_list,
        help="SGD rates / its optimal rate 1/(Lx (alpha0+beta0))",
    )
    p.add_argument("--np-max-steps", dest="np_max_steps", type=int)
    p.add_argument("--sgd-max-steps", dest="sgd_max_steps", type=int)


def sweep(args, sizes: list[tuple[int, int]], label: str) -> tuple[list[dict], dict]:
    """Minimum training times of NP and SGD (simulated and theory) for each (Lh, Ly).

    Per size and rule, every rate x seed is one population of the engine's agent; the
    populations of all sizes run spread over ``--workers`` processes.
    """
    Lx, tg = args.Lx, args.target
    fine = np.geomspace(0.3, 1.3, 81)
    seeds = list(range(args.seeds))
    plans, specs = [], []
    for Lh, Ly in sizes:
        eta_star = theory.critical_learning_rate(Lx, Lh, Ly)
        sgd_opt = theory.sgd_optimal_learning_rate(Lx, Lh, Ly)
        eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]
        th_np, th_ratio = L.theory_min_time_np(Lx, Lh, Ly, tg, fine, args.np_max_steps)
        th_sgd = L.sgd_min_time_theory(Lx, eps0, tg)
        # a rate slower than BUDGET x the theory's minimum cannot be the fastest: stop it there
        np_budget = int(min(args.np_max_steps, BUDGET * th_np))
        np_rates = [r * eta_star for r in args.np_ratios]
        sgd_rates = [r * sgd_opt for r in args.sgd_ratios]
        specs.append(L.min_training_time_spec(
            Lx, Lh, Ly, rule="np", target=tg, learning_rates=np_rates, seeds=seeds,
            max_steps=np_budget, check_every=max(1, Lx * Ly // 40),
        ))
        specs.append(L.min_training_time_spec(
            Lx, Lh, Ly, rule="sgd", target=tg, learning_rates=sgd_rates, seeds=seeds,
            max_steps=int(min(args.sgd_max_steps, 2 * BUDGET * th_sgd)), check_every=1,
        ))
        plans.append((Lh, Ly, eta_star, sgd_opt, eps0, th_np, th_ratio, th_sgd, np_budget,
                      np_rates, sgd_rates))
    grids = L.run_grids(specs, args.workers)
    rows = []
    for i, plan in enumerate(plans):
        (Lh, Ly, eta_star, sgd_opt, eps0, th_np, th_ratio, th_sgd, np_budget, np_rates,
         sgd_rates) = plan
        npr = L.min_time_result(grids[2 * i], np_rates, tg)
        sgd = L.min_time_result(grids[2 * i + 1], sgd_rates, tg)
        row = dict(
            Lh=Lh,
            Ly=Ly,
            eps0=eps0,
            target=tg,
            np_time=npr["time"],
            np_best_ratio=npr["learning_rate"] / eta_star,
            np_theory_time=th_np,
            np_theory_best_ratio=th_ratio,
            sgd_time=sgd["time"],
            sgd_best_ratio=sgd["learning_rate"] / sgd_opt,
            sgd_theory_time=th_sgd,
            np_budget=np_budget,
            np_per_ratio={f"{k / eta_star:.3g}": v for k, v in npr["per_rate"].items()},
            sgd_per_ratio={f"{k / sgd_opt:.3g}": v for k, v in sgd["per_rate"].items()},
        )
        edge = "" if row["np_best_ratio"] < max(args.np_ratios) - 1e-9 else " (grid edge)"
        print(
            f"[{label}] Lh={Lh} Ly={Ly}: NP {row['np_time']:.0f} at "
            f"{row['np_best_ratio']:.3g} eta*{edge} (theory {th_np:.0f}); "
            f"SGD {row['sgd_time']:.0f} (theory {row['sgd_theory_time']:.0f})",
            flush=True,
        )
        rows.append(row)
    return rows, {}


def slope(xs: list[float], ys: list[float]) -> float:
    """Log-log slope of a least-squares line (the scaling exponent)."""
    ok = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y) and y > 0]
    if len(ok) < 2:
        return math.nan
    lx, ly = np.log([o[0] for o in ok]), np.log([o[1] for o in ok])
    return float(np.polyfit(lx, ly, 1)[0])


def plot(args, rows: list[dict], key: str, panel: str, xlabel: str):
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    xs = [r[key] for r in rows]
    ax.loglog(xs, [r["np_time"] for r in rows], "o", color="tab:orange", label="NP (sim)")
    ax.loglog(
        xs, [r["np_theory_time"] for r in rows], "-", color="tab:orange", lw=1, label="NP (theory)"
    )
    ax.loglog(xs, [r["sgd_time"] for r in rows], "o", color="tab:blue", label="SGD (sim)")
    ax.loglog(
        xs, [r["sgd_theory_time"] for r in rows], "-", color="tab:blue", lw=1, label="SGD (theory)"
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"min. iterations to ε={args.target:g}")
    ax.set_title(f"Fig {panel[3:].upper()}  Lx={args.Lx}, {args.seeds} seeds", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / f"{panel}.png"
    C.save(fig, png)
    flat = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows]
    csv = C.write_csv(args.out / f"{panel}.csv", flat)
    return png, csv


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig2a", __doc__)
    add_options(p)
    p.add_argument("--widths", type=C.int_list, help="hidden sizes Lh")
    p.add_argument("--Ly", type=int)
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig2a", args)
    rows, _ = sweep(args, [(w, args.Ly) for w in args.widths], "fig2a")
    png, csv = plot(args, rows, "Lh", "fig2a", "hidden width Lh")
    results = {
        "rows": rows,
        "np_slope_vs_Lh": slope(args.widths, [r["np_time"] for r in rows]),
        "np_theory_slope_vs_Lh": slope(args.widths, [r["np_theory_time"] for r in rows]),
        "sgd_slope_vs_Lh": slope(args.widths, [r["sgd_time"] for r in rows]),
        "np_over_sgd": [r["np_time"] / r["sgd_time"] for r in rows],
    }
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
