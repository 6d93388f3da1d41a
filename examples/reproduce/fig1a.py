"""Fig. 1A: NP error eps(t) in the linear student-teacher task, simulation against theory.

Simulation (solid): the NP rule, one sample per step, seed-averaged. Theory (dashed): the
two-variable mean-field map of np_envs.theory. Learning rates are multiples of eta*. Also
prints sim/theory ratios at fixed steps: the map drops a term and drifts from the simulation
after a few thousand steps, which REPRODUCTION.md reports.

    python examples/reproduce/fig1a.py                       # reduced: Lh=2000, 2e4 steps, 3 seeds
    python examples/reproduce/fig1a.py --paper               # Lh=1e4, 1e5 steps, 10 seeds
    python examples/reproduce/fig1a.py --Lh 10000 --ratios 0.8 --steps 10000 --seeds 3
"""

from __future__ import annotations

import sys

import _common as C
import _linear as L
import numpy as np

from np_envs import plotting, theory

CPU = dict(Lx=100, Lh=2000, Ly=10, ratios=[0.8, 1.0, 1.2, 1.4], steps=20_000, seeds=3)
PAPER = dict(Lh=10_000, steps=100_000, seeds=10)
CHECKPOINTS = (500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig1a", __doc__)
    C.add_linear_task_args(p)
    p.add_argument("--steps", type=int)
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig1a", args)
    Lx, Lh, Ly = args.Lx, args.Lh, args.Ly
    eta_star = theory.critical_learning_rate(Lx, Lh, Ly)
    rec = C.log_steps(args.steps, 120)
    checkpoints = [c for c in CHECKPOINTS if c <= args.steps]
    rec = sorted(set(rec) | set(checkpoints))

    # every rate x seed is one population of the engine's NP agent
    runs = L.simulate_grid(
        Lx, Lh, Ly, [r * eta_star for r in args.ratios], args.steps,
        seeds=list(range(args.seeds)), record_steps=rec,
    )

    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    rows, results = [], {"eta_star": eta_star, "ratios": {}}
    notes, times = [], []
    for i, r in enumerate(args.ratios):
        group = runs[i]
        steps = group[0].steps
        sim = C.seed_mean([g.eps for g in group])
        _, th_eps = theory.mean_field_trajectory(Lx, Lh, Ly, r * eta_star, args.steps)
        four_eps = theory.mean_field_four_variable(Lx, Lh, Ly, r * eta_star, args.steps)["eps"]
        th, four = th_eps[steps], four_eps[steps]
        color = C.COLORS[i % len(C.COLORS)]
        ok = np.isfinite(sim)
        ax.plot(steps[ok], sim[ok], "-", color=color, label=f"{r:g} η*")
        if args.seeds > 1:  # the spread over seeds as a band
            arr = np.vstack([g.eps for g in group])
            okb = np.all(np.isfinite(arr), axis=0)
            ax.fill_between(steps[okb], arr[:, okb].min(0), arr[:, okb].max(0), color=color,
                            alpha=0.2, lw=0)
        ceiling = 100 * th[0]
        okt = np.isfinite(th) & (th <= ceiling)
        ax.plot(steps[okt], th[okt], "--", color=color, lw=1)
        okf = np.isfinite(four) & (four <= ceiling)
        ax.plot(steps[okf], four[okf], ":", color=color, lw=1.3)
        for g in group:
            if g.stopped == "diverged":
                last = int(np.flatnonzero(np.isfinite(g.eps))[-1])
                plotting.mark_diverged(ax, [(steps[last], g.eps[last])], color)
        times += steps.tolist()
        for t, e_s, e_t, e_f in zip(steps, sim, th, four, strict=True):
            rows.append(dict(ratio=r, step=int(t), sim_eps=e_s, theory_eps=e_t,
                             theory4_eps=e_f))
        ratios_at = {
            int(c): float(sim[list(steps).index(c)] / th[list(steps).index(c)]) for c in checkpoints
        }
        imin = int(np.nanargmin(sim)) if np.any(np.isfinite(sim)) else 0
        if np.isfinite(sim[-1]) and sim[-1] > 0 and np.isfinite(th[-1]):
            over = th[-1] / sim[-1]
            if over > 1.5 or over < 1 / 1.5:
                notes.append(f"{r:g} η*: at step {int(steps[-1])} the two-variable map is "
                             f"{over:.3g}x the simulation, four-variable "
                             f"{four[-1] / sim[-1]:.2g}x")
        results["ratios"][f"{r:g}"] = {
            "sim_over_theory": ratios_at,
            "sim_min_eps": float(sim[imin]),
            "sim_min_step": int(steps[imin]),
            "sim_final_eps": float(sim[-1]),
            "theory_final_eps": float(th[-1]),
            "theory4_final_eps": float(four[-1]),
            "diverged_seeds": sum(g.stopped == "diverged" for g in group),
        }
    plotting.time_axis(ax, times)
    ax.set_yscale("log")
    ax.set_xlabel("iterations (samples; 0 = initial, then log scale)")
    ax.set_ylabel("error ε")
    ax.set_title(f"Fig 1A  Lx={Lx} Lh={Lh} Ly={Ly}, η* = {eta_star:.3g}", fontsize=8)
    plotting.legend(ax, [plotting.style_handle("-", "simulation (mean, band min-max)"),
                         plotting.style_handle("--", "two-variable map"),
                         plotting.style_handle(":", "four-variable model")], fontsize=6.5)
    plotting.caption(fig, [f"one sample per step, σ_t = 0, seeds 0-{args.seeds - 1} "
                           f"(n={args.seeds})", *notes])
    png = args.out / "fig1a.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig1a.csv", rows)
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
