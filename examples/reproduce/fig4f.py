"""Fig. 4F: NP with the first layer scaled x10 at start, with and without weight normalisation.

Solid: ``wn-np`` with ``normalize="all"`` (every neuron's incoming weights held at their initial
norm, the first layer's at 10x Xavier); dotted: plain NP from the same x10 start. The paper:
normalisation keeps learning stable even in wide networks, but the error then stalls above the
target (5.0). Runs on the ``test-file`` split scheme (36 updates per epoch).

    python examples/reproduce/fig4f.py           # reduced: widths 200/400/800, 300 epochs, 1 seed
    python examples/reproduce/fig4f.py --paper   # widths 400/800/1600, 3e4 epochs, 5 seeds
"""

from __future__ import annotations

import sys

import _common as C
import _sarcos as S
import numpy as np

#: The paper's learning rates per width (NOTES.md); 200 extrapolated as ~1/sqrt(width).
PAPER_RATES = {200: 5.1e-5, 400: 3.6e-5, 800: 2.4e-5, 1600: 1.8e-5}
CPU = dict(widths=[200, 400, 800], epochs=300, eval_every=5, seeds=1, scale=10.0,
           split_scheme="test-file")
PAPER = dict(widths=[400, 800, 1600], epochs=30_000, eval_every=100, seeds=5,
             split_scheme="gpml")
#: "Rose after its minimum": ends above this multiple of its minimum, or diverged.
ROSE = 1.5


def rate(width: int) -> float:
    """The paper's rate for a width, else ~1/sqrt(width) from the 400-wide one."""
    return PAPER_RATES.get(width, 3.6e-5 * (400 / width) ** 0.5)


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig4f", __doc__)
    p.add_argument("--widths", type=C.int_list)
    p.add_argument("--epochs", type=int)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--scale", type=float, help="factor on the first layer's initial weights")
    p.add_argument("--split-scheme", dest="split_scheme")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig4f", args)
    scales = (args.scale, 1.0)
    jobs = [
        dict(rule=rule, width=w, learning_rate=rate(w), seed=s, epochs=args.epochs,
             eval_every=args.eval_every, split_scheme=args.split_scheme,
             agent_kwargs={"init_scales": scales,
                           **({"normalize": "all"} if rule == "wn-np" else {})})
        for w in args.widths
        for rule in ("np", "wn-np")
        for s in range(args.seeds)
    ]
    curves = S.run_many(jobs, args.workers, root=args.out / "runs")
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    rows, results = [], {}
    for c in curves:
        color = C.COLORS[args.widths.index(c["width"]) % len(C.COLORS)]
        ok = np.isfinite(c["mse"]) & (c["mse"] < S.DIVERGED_MSE)
        style = "-" if c["rule"] == "wn-np" else ":"
        label = f"{c['rule']} w={c['width']} lr={c['learning_rate']:.2g}"
        ax.semilogy(c["epoch"][ok], c["mse"][ok], style, color=color,
                    label=label if c["seed"] == 0 else None)
        m = np.where(np.isfinite(c["mse"]), c["mse"], np.inf)
        imin = int(np.argmin(m))
        results[f"{label} seed {c['seed']}"] = {
            "initial_mse": round(float(m[0]), 1),
            "min_mse": round(float(m[imin]), 2),
            "min_epoch": int(c["epoch"][imin]),
            "last_epoch": int(c["epoch"][-1]),
            "last_mse": float(c["mse"][-1]),
            "diverged": bool(c["diverged"]),
            "rose_after_min": bool(c["diverged"] or m[-1] > ROSE * m[imin]),
            "w1_sq_start": round(float(c["w1_sq"][0]), 1),
            "w1_sq_end": float(c["w1_sq"][-1]),
        }
        for e, ms, w1 in zip(c["epoch"], c["mse"], c["w1_sq"], strict=True):
            rows.append(dict(rule=c["rule"], width=c["width"], learning_rate=c["learning_rate"],
                             seed=c["seed"], epoch=int(e), test_mse=ms, w1_sq=w1))
    ax.axhline(5.0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test MSE")
    ax.set_title(f"Fig 4F  first layer x{args.scale:g}; solid wn-np (all), dotted np",
                 fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    png = args.out / "fig4f.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig4f.csv", rows)
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
