"""Fig. 3B: iterations until NP's error starts to rise (and until it is back at eps0) vs rate.

Teacher noise sigma_t^2 ~ 0.1. Lines: the two-variable map (onset = first rising step; return =
first step with eps > eps0). Points: simulated NP, onset = step of the seed-mean error's
minimum, return = seed-mean first record with eps > eps0 (only if every seed got back there
within the budget). Smaller rates must give later onsets.

    python examples/reproduce/fig3b.py            # reduced: Lh=1000, 5 rates, 6e4 steps, 2 seeds
    python examples/reproduce/fig3b.py --paper    # Lh=1e4, 9 rates, 1e6 steps, 10 seeds
"""

from __future__ import annotations

import math
import sys

import _common as C
import _linear as L
import numpy as np

from np_envs import theory

CPU = dict(
    Lx=100, Lh=1000, Ly=10, sigma_t=0.32, ratios=[0.5, 0.7, 1.0, 1.4, 2.0], steps=60_000, seeds=2
)
PAPER = dict(
    Lh=10_000, ratios=[0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.4, 2.0, 3.0], steps=1_000_000, seeds=10
)


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig3b", __doc__)
    C.add_linear_task_args(p, teacher_noise=True)
    p.add_argument("--steps", type=int, help="step budget per run")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig3b", args)
    Lx, Lh, Ly, st = args.Lx, args.Lh, args.Ly, args.sigma_t
    eta_star = theory.critical_learning_rate(Lx, Lh, Ly)
    eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]
    rec = C.log_steps(args.steps, 400)
    horizon = min(10**7, 20 * args.steps)  # theory lines are iterated this far (pure Python)
    # every rate x seed is one population of the engine's NP agent
    runs = L.simulate_grid(
        Lx, Lh, Ly, [r * eta_star for r in args.ratios], args.steps,
        seeds=list(range(args.seeds)), sigma_t=st, record_steps=rec, stop_above=1.2 * eps0,
    )

    rows = []
    for i, r in enumerate(args.ratios):
        group = runs[i]
        steps = group[0].steps
        eps = C.seed_mean([np.where(np.isnan(g.eps), np.inf, g.eps) for g in group])
        # the minimum counts only if the error has risen after it within the budget
        imin = int(np.nanargmin(eps))
        risen = any(g.stopped in ("above", "diverged") for g in group) or (
            np.nanmax(eps[imin:]) > 1.05 * eps[imin]
        )
        returns = []
        for g in group:
            # first record after this seed's minimum that is back above its initial error
            gmin = int(np.argmin(np.where(np.isfinite(g.eps), g.eps, np.inf)))
            after = np.arange(g.eps.size) > gmin
            above = np.flatnonzero(after & ~(g.eps <= g.eps[0]) & ~np.isnan(g.eps))
            returns.append(float(g.steps[above[0]]) if above.size else math.inf)
        lr = r * eta_star
        rows.append(
            dict(
                ratio=r,
                learning_rate=lr,
                theory_onset=theory.instability_onset(Lx, Lh, Ly, lr, st, horizon) or math.inf,
                theory_return=L.theory_return_time(Lx, Lh, Ly, lr, st, horizon),
                sim_onset=float(steps[imin]) if risen else math.inf,
                sim_return=float(np.mean(returns)),
                sim_min_eps=float(eps[imin]),
            )
        )

    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    fine = np.geomspace(min(args.ratios) * 0.8, max(args.ratios) * 1.25, 40)
    th_on = [theory.instability_onset(Lx, Lh, Ly, f * eta_star, st, horizon) for f in fine]
    th_ret = [L.theory_return_time(Lx, Lh, Ly, f * eta_star, st, horizon) for f in fine]
    ax.loglog(fine * eta_star, th_on, "k-", lw=1, label="onset (theory)")
    ax.loglog(fine * eta_star, th_ret, "-", color="0.6", lw=1, label="back to ε0 (theory)")
    lrs = np.array([r["learning_rate"] for r in rows])
    ax.loglog(lrs, [r["sim_onset"] for r in rows], "ko", label="onset (sim)")
    ax.loglog(lrs, [r["sim_return"] for r in rows], "o", color="0.6", label="back to ε0 (sim)")
    ax.axvline(eta_star, ls="--", color="k", lw=0.8)
    ax.axhline(args.steps, ls=":", color="0.3", lw=0.8)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("iterations")
    ax.set_title(f"Fig 3B  σt²={st**2:.3g}, Lh={Lh}, {args.seeds} seeds", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    png = args.out / "fig3b.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig3b.csv", rows)
    onsets = [r["sim_onset"] for r in rows]
    finite = [(r["ratio"], r["sim_onset"]) for r in rows if math.isfinite(r["sim_onset"])]
    results = {
        "eta_star": eta_star,
        "rows": rows,
        "sim_onset_decreases_with_rate": bool(
            all(a >= b for (_, a), (_, b) in zip(finite, finite[1:], strict=False))
        ),
        "sim_onsets": onsets,
    }
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
