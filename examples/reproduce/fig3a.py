"""Fig. 3A: with teacher noise NP's error reaches a minimum and rises again, in the (a, eps) plane.

Teacher noise sigma_t = 0.32 (sigma_t^2 ~ 0.1). Solid: simulated NP (seed mean) in the plane
of the normalised input-weight norm a and the error eps; dashed: the two-variable map; dotted:
Eq. 14's nullcline eps = c a s / (2 - c a), below which the error rises. A second panel shows
eps(t). The printed table says, per rate, where the simulated minimum is and how far the error
has climbed back by the end.

    python examples/reproduce/fig3a.py          # reduced: Lh=2000, 0.6,1.0,1.4 eta*, 6e4 steps
    python examples/reproduce/fig3a.py --paper  # Lh=1e4, 0.2..1.4 eta*, 1e5 (1e6 < 0.67 eta*)
"""

from __future__ import annotations

import sys

import _common as C
import _linear as L
import numpy as np

from np_envs import plotting, theory

CPU = dict(Lx=100, Lh=2000, Ly=10, sigma_t=0.32, ratios=[0.6, 1.0, 1.4], steps=60_000, seeds=2)
PAPER = dict(Lh=10_000, ratios=[0.2, 0.6, 1.0, 1.4], steps=100_000, seeds=10)
#: The authors ran rates below this multiple of eta* ten times longer (NOTES.md).
SLOW_RATIO = 0.67
#: A run is stopped once its error passes this multiple of the initial error: it has risen.
STOP_FACTOR = 3.0


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig3a", __doc__)
    C.add_linear_task_args(p, teacher_noise=True)
    p.add_argument("--steps", type=int, help="steps per run (x10 below 0.67 eta* with --paper)")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig3a", args)
    Lx, Lh, Ly, st = args.Lx, args.Lh, args.Ly, args.sigma_t
    eta_star = theory.critical_learning_rate(Lx, Lh, Ly)
    eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]

    def steps_for(r: float) -> int:
        return args.steps * 10 if (args.paper and r < SLOW_RATIO) else args.steps

    # one population per step budget (with --paper the slow rates run ten times longer)
    budgets = sorted({steps_for(r) for r in args.ratios})
    specs = [
        dict(
            Lx=Lx,
            Lh=Lh,
            Ly=Ly,
            learning_rates=[r * eta_star for r in args.ratios if steps_for(r) == n],
            steps=n,
            seeds=list(range(args.seeds)),
            sigma_t=st,
            record_steps=C.log_steps(n, 300),
            stop_above=STOP_FACTOR * eps0,
        )
        for n in budgets
    ]
    grids = L.run_grids(specs, args.workers)
    by_ratio = {}
    for n, grid in zip(budgets, grids, strict=True):
        for r, group in zip([r for r in args.ratios if steps_for(r) == n], grid, strict=True):
            by_ratio[r] = group
    runs = [by_ratio[r] for r in args.ratios]

    plt = C.setup_plot()
    fig, (ax_p, ax_t) = plt.subplots(1, 2, figsize=(8, 3.2))
    rows, results = [], {"eta_star": eta_star, "eps0": eps0, "ratios": {}}
    for i, r in enumerate(args.ratios):
        group = runs[i]
        steps = group[0].steps
        eps = C.seed_mean([g.eps for g in group])
        a = C.seed_mean([g.a for g in group])
        th_a, th_eps = theory.mean_field_trajectory(Lx, Lh, Ly, r * eta_star, int(steps[-1]), st)
        c = theory.coupling_coefficient(Lx, Lh, Ly, r * eta_star)
        color = C.COLORS[i % len(C.COLORS)]
        ok = np.isfinite(eps) & (eps < 2 * STOP_FACTOR * eps0)  # beyond: it has blown up
        ax_p.semilogy(a[ok], eps[ok], "-", color=color, label=f"{r:g} η*")
        okt = np.isfinite(th_eps) & (th_eps < STOP_FACTOR * eps0)
        ax_p.semilogy(th_a[okt], th_eps[okt], "--", color=color, lw=0.8)
        a_grid = np.linspace(np.nanmin(a[ok]), np.nanmax(a[ok]) * 1.05, 200)
        ax_p.semilogy(a_grid, theory.nullcline_eps(a_grid, c, st, Lx), ":", color=color)
        # time from step 0 (symlog), the spread over seeds as a band, as in every np-envs plot
        ax_t.semilogy(steps[ok], eps[ok], "-", color=color)
        per_seed = np.vstack([g.eps for g in group])
        if len(group) > 1:
            ax_t.fill_between(steps[ok], np.min(per_seed, axis=0)[ok],
                              np.max(per_seed, axis=0)[ok], color=color, alpha=0.2, lw=0)
        tt = np.arange(th_eps.size)
        ax_t.semilogy(tt[okt], th_eps[okt], "--", color=color, lw=0.8)
        for t, ai, ei in zip(steps, a, eps, strict=True):
            rows.append(
                dict(
                    ratio=r,
                    step=int(t),
                    sim_a=ai,
                    sim_eps=ei,
                    theory_a=th_a[t],
                    theory_eps=th_eps[t],
                )
            )
        imin = int(np.nanargmin(eps))
        last = int(np.flatnonzero(np.isfinite(eps))[-1])
        per_seed_rise = [
            float(
                np.nanmax(g.eps[np.argmin(np.nan_to_num(g.eps, nan=np.inf)) :]) / np.nanmin(g.eps)
            )
            for g in group
        ]
        results["ratios"][f"{r:g}"] = {
            "sim_min_eps": float(eps[imin]),
            "sim_min_step": int(steps[imin]),
            "sim_last_step": int(steps[last]),
            "sim_last_eps": float(eps[last]),
            "rise_after_min": float(eps[last] / eps[imin]),
            "per_seed_max_after_min_over_min": per_seed_rise,
            "stopped": [g.stopped for g in group],
            "theory_onset_step": theory.instability_onset(Lx, Lh, Ly, r * eta_star, st),
            "theory_min_eps": float(np.nanmin(th_eps)),
        }
    ax_p.set_xlabel("normalised input-weight norm a")
    ax_p.set_ylabel("error ε")
    ax_p.set_title(f"Fig 3A  σt²={st**2:.3g}, Lh={Lh}: error vs norm", fontsize=8)
    plotting.legend(ax_p, fontsize=7)
    plotting.time_axis(ax_t, [float(t) for group in runs for t in group[0].steps])
    ax_t.set_xlabel("iterations (0 = initial, then log scale)")
    ax_t.set_ylabel("error ε")
    ax_t.set_title("error vs time", fontsize=8)
    plotting.legend(ax_t, [plotting.style_handle("-", "simulation (mean over seeds)"),
                           plotting.style_handle("--", "theory: two-variable map"),
                           plotting.style_handle(":", "Eq. 14 nullcline (left panel)")],
                    fontsize=7, loc="lower left")
    fig.tight_layout()
    n = args.seeds
    plotting.caption(fig, [
        f"linear task Lx={Lx}, Lh={Lh}, Ly={Ly}, sigma_t={st:g} | lr "
        + ", ".join(f"{r:g}" for r in args.ratios) + f" x eta*={eta_star:.3g} | seeds 0-{n - 1} "
        f"(n={n})",
        "solid: mean over seeds (band: min-max over seeds, right); dashed: two-variable map; "
        "dotted: Eq. 14 nullcline, below which the error rises",
    ])
    png = args.out / "fig3a.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig3a.csv", rows)
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
