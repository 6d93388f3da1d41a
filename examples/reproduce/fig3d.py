"""Fig. 3D: normalising each hidden neuron's incoming weights stops the teacher-noise instability.

sigma_t^2 ~ 0.1, learning rate = eta* (the sigma_t = 0 critical rate of each width). Dotted:
plain NP, whose error reaches a minimum and climbs; solid: NP with every row of W1 rescaled after
each step to its initial RMS sqrt(2/(Lx+Lh)) (||W1|| and a held fixed), whose error settles at a
finite value (the normalisation biases the update, more so for wider layers).

    python examples/reproduce/fig3d.py            # reduced: Lh=500,1000,2000, 3e4 steps, 2 seeds
    python examples/reproduce/fig3d.py --paper    # Lh=1000,3000,10000, 1e5 steps, 10 seeds
"""

from __future__ import annotations

import sys

import _common as C
import _linear as L
import numpy as np

from np_envs import theory

CPU = dict(Lx=100, widths=[500, 1000, 2000], Ly=10, sigma_t=0.32, ratio=1.0, steps=30_000, seeds=2)
PAPER = dict(widths=[1000, 3000, 10_000], steps=100_000, seeds=10)
#: "Settled": the error at the end is within this factor of its minimum.
SETTLED = 1.25
STOP_FACTOR = 3.0


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig3d", __doc__)
    p.add_argument("--Lx", type=int)
    p.add_argument("--widths", type=C.int_list, help="hidden sizes Lh")
    p.add_argument("--Ly", type=int)
    p.add_argument("--sigma-t", dest="sigma_t", type=float)
    p.add_argument("--ratio", type=float, help="learning rate / eta*(Lh)")
    p.add_argument("--steps", type=int)
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig3d", args)
    Lx, Ly, st = args.Lx, args.Ly, args.sigma_t
    rec = C.log_steps(args.steps, 200)
    # one population (the seeds) per width and rule: plain NP, and wn-np normalising W1
    specs, keys = [], []
    for Lh in args.widths:
        lr = args.ratio * theory.critical_learning_rate(Lx, Lh, Ly)
        eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]
        for norm in (False, True):
            keys.append((Lh, norm))
            specs.append(
                dict(
                    Lx=Lx,
                    Lh=Lh,
                    Ly=Ly,
                    learning_rates=[lr],
                    steps=args.steps,
                    seeds=list(range(args.seeds)),
                    sigma_t=st,
                    normalize_w1=norm,
                    record_steps=rec,
                    stop_above=STOP_FACTOR * eps0,
                )
            )
    runs = [grid[0] for grid in L.run_grids(specs, args.workers)]

    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    rows, results = [], {}
    for i, (Lh, norm) in enumerate(keys):
        group = runs[i]
        steps = group[0].steps
        eps = C.seed_mean([g.eps for g in group])
        risen = [g.stopped in ("above", "diverged") for g in group]
        color = C.COLORS[args.widths.index(Lh) % len(C.COLORS)]
        ok = np.isfinite(eps) & (steps > 0)
        ax.loglog(
            steps[ok],
            eps[ok],
            "-" if norm else ":",
            color=color,
            label=f"Lh={Lh}" if norm else None,
        )
        for t, e in zip(steps, eps, strict=True):
            rows.append(dict(Lh=Lh, normalized=norm, step=int(t), sim_eps=e))
        imin = int(np.nanargmin(eps))
        fin = np.flatnonzero(np.isfinite(eps))[-1]
        # late-time drift of the normalised error: last record vs the one at 80 % of the run
        late = int(np.searchsorted(steps, 0.8 * args.steps))
        results[f"Lh={Lh} {'normalised' if norm else 'plain'}"] = {
            "min_eps": float(eps[imin]),
            "min_step": int(steps[imin]),
            "last_step": int(steps[fin]),
            "last_eps": float(eps[fin]),
            "last_over_min": float(eps[fin] / eps[imin]),
            "seeds_stopped_rising": int(sum(risen)),
            "last_over_80pct": float(eps[fin] / eps[late]) if late < len(eps) else float("nan"),
            "settled": bool(not any(risen) and eps[fin] / eps[imin] < SETTLED),
            "a_last": float(np.nanmean([g.a[np.isfinite(g.a)][-1] for g in group])),
        }
    ax.set_xlabel("iterations")
    ax.set_ylabel("error ε")
    ax.set_title(
        f"Fig 3D  σt²={st**2:.3g}, η={args.ratio:g} η*; solid WN, dotted plain", fontsize=8
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig3d.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig3d.csv", rows)
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
