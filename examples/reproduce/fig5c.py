"""Fig. 5C: MNIST, minimum (over learning rates) epochs to a target accuracy vs depth, NP +/- WN.

Every hidden layer has the same width; ``np-envs sweep`` runs NP and weight-normalised NP
(``wn-np`` with ``normalize="all"``: every neuron's incoming weights held at their initial norm)
over depths 1..D and a learning-rate grid. The paper (width 300, target 97.5 %): NP's time grows
supra-linearly with depth and normalisation reduces that growth. The reduced default uses width
100, target **85 %** and 1 seed.

    python examples/reproduce/fig5c.py           # reduced: width 100, depths 1-3, 85 %, 1 seed
    python examples/reproduce/fig5c.py --paper   # width 300, depths 1-5, 97.5 %, 5 seeds
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C
import numpy as np
from fig4a import np_envs_cli

CONFIG = {"agents": {"wn-np-all": {"agent": "wn-np", "normalize": "all"}}}
CPU = dict(width=100, depths=[1, 2, 3], target=85.0, rates=[1e-4, 3e-4], epochs=8.0, seeds=1)
PAPER = dict(width=300, depths=[1, 2, 3, 4, 5], target=97.5,
             rates=[1.8e-5, 3.2e-5, 5.6e-5, 1e-4, 1.8e-4], epochs=10_000.0, seeds=5)


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig5c", __doc__)
    p.add_argument("--width", type=int, help="width of every hidden layer")
    p.add_argument("--depths", type=C.int_list, help="numbers of hidden layers")
    p.add_argument("--target", type=float, help="test accuracy to reach, percent")
    p.add_argument("--rates", type=C.float_list, help="learning rates (both rules)")
    p.add_argument("--epochs", type=float, help="budget")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig5c", args)
    hidden = ",".join("x".join([str(args.width)] * d) for d in args.depths)
    rows, results = [], {}
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "agents.json"  # YAML is a superset of JSON
        config.write_text(json.dumps(CONFIG))
        for label, color in (("np", "#e66101"), ("wn-np-all", "#d7191c")):
            out = Path(tmp) / label
            cmd = [
                *np_envs_cli(), "sweep", "--env", "NPMNIST-v0", "--agents", label,
                "--config", str(config), "--budget-epochs", str(args.epochs),
                "--eval-every", str(args.epochs / 24), "--seeds", str(args.seeds),
                "--hidden", hidden, "--lrs", ",".join(map(str, args.rates)),
                "--target", str(args.target), "--jobs", str(args.workers), "--out", str(out),
                "--no-progress", "--no-plots",
            ]
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            with open(out / "sweep.csv") as fh:
                got = list(csv.DictReader(fh))
            d, t = [], []
            for r in got:
                depth = len(str(r["hidden"]).split("x"))
                epochs = float(r["min_epoch_target"]) if r["min_epoch_target"] else float("inf")
                rows.append(dict(rule=label, depth=depth, hidden=r["hidden"],
                                 best_lr=r["best_lr"], min_epochs_to_target=epochs,
                                 best_accuracy=float(r["best_error"])))
                results[f"{label} depth {depth}"] = {
                    "min_epochs_to_target": epochs, "best_lr": r["best_lr"],
                    "best_accuracy": round(float(r["best_error"]), 2),
                }
                d.append(depth)
                t.append(epochs)
            order = np.argsort(d)
            d_arr, t_arr = np.asarray(d)[order], np.asarray(t)[order]
            ok = np.isfinite(t_arr)
            ax.plot(d_arr[ok], t_arr[ok], "o-", color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("number of hidden layers")
    ax.set_ylabel(f"min epochs to {args.target:g} % test acc.")
    ax.set_title(f"Fig 5C  MNIST, width {args.width}, {args.seeds} seed(s)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig5c.png"
    C.save(fig, png)
    csv_path = C.write_csv(args.out / "fig5c.csv", rows)
    return run.finish(results, [png, csv_path])


if __name__ == "__main__":
    main(sys.argv[1:])
