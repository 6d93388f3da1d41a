"""Fig. 4C: when NP's SARCOS test error turns back up, against the learning rate.

Per learning rate: the epoch of the minimum test error (black; counted only if the error rises by
>10 % after it) and the first epoch after it at which the error exceeds 1.1 x its initial value
(grey), both via ``_sarcos.onset_and_return`` on each seed, then the median over seeds (inf =
not within the budget). The paper: both come earlier as the rate grows, and at high rates they
nearly coincide (the error shoots past its start right after the minimum) while at low rates it
climbs slowly. Runs on the ``test-file`` split scheme (36 updates per epoch).

    python examples/reproduce/fig4c.py           # reduced: width 200, 5 rates, 300 epochs, 2 seeds
    python examples/reproduce/fig4c.py --paper   # width 800, 3.2e-6..1.8e-4, 3e4 epochs, 5 seeds
"""

from __future__ import annotations

import math
import sys

import _common as C
import _sarcos as S
import numpy as np

CPU = dict(
    width=200,
    rates=[5.6e-5, 1e-4, 1.8e-4, 3.2e-4, 5.6e-4],
    epochs=300,
    eval_every=2,
    seeds=2,
    split_scheme="test-file",
)
PAPER = dict(
    width=800,
    rates=[3.2e-6, 5.6e-6, 1e-5, 1.8e-5, 3.2e-5, 5.6e-5, 1e-4, 1.8e-4],
    epochs=30_000,
    eval_every=10,
    seeds=5,
    split_scheme="gpml",
)


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig4c", __doc__)
    p.add_argument("--width", type=int)
    p.add_argument("--rates", type=C.float_list, help="NP learning rates")
    p.add_argument("--epochs", type=int)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--split-scheme", dest="split_scheme")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig4c", args)
    jobs = [
        dict(rule="np", width=args.width, learning_rate=lr, seed=s, epochs=args.epochs,
             eval_every=args.eval_every, split_scheme=args.split_scheme)
        for lr in args.rates
        for s in range(args.seeds)
    ]
    curves = S.run_many(jobs, args.workers, root=args.out / "runs")
    rows, results = [], {}
    onsets, returns = [], []
    for lr in args.rates:
        mine = [c for c in curves if c["learning_rate"] == lr]
        per = [S.onset_and_return(c["epoch"], c["mse"]) for c in mine]
        on = float(np.median([o for o, _ in per]))
        ret = float(np.median([r for _, r in per]))
        onsets.append(on)
        returns.append(ret)
        results[f"lr {lr:g}"] = {
            "min_epoch_median": on,
            "return_epoch_median": ret,
            "per_seed (min, return)": [list(x) for x in per],
            "min_mse_per_seed": [round(float(np.nanmin(c["mse"])), 2) for c in mine],
        }
        for c, (o, r) in zip(mine, per, strict=True):
            rows.append(dict(learning_rate=lr, seed=c["seed"], min_epoch=o, return_epoch=r,
                             min_mse=float(np.nanmin(c["mse"])), last_epoch=int(c["epoch"][-1])))
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    lr = np.asarray(args.rates)
    for vals, color, label in ((onsets, "k", "minimum error"),
                               (returns, "0.6", "error > 1.1 x initial")):
        v = np.asarray(vals)
        ok = np.isfinite(v)
        ax.loglog(lr[ok], v[ok], "o-", color=color, label=label)
        if np.any(~ok):  # not within the budget: drawn as open markers at the budget
            ax.loglog(lr[~ok], np.full((~ok).sum(), args.epochs), "^", mfc="none", color=color)
    ax.axhline(args.epochs, color="0.8", lw=0.8, ls=":")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("epoch")
    ax.set_title(f"Fig 4C  SARCOS {args.split_scheme}, width {args.width}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig4c.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig4c.csv", rows)
    results["onset earlier at higher rate (finite ones)"] = bool(
        np.all(np.diff([o for o in onsets if math.isfinite(o)]) <= 0)
    )
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
