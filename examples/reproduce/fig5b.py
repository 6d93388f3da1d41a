"""Fig. 5B: MNIST, minimum (over learning rates) epochs to a target test accuracy vs width.

Runs ``np-envs sweep`` once per rule (NP, SGD) over widths and a small learning-rate grid, batch
1000, and plots each rule's minimum epochs to ``--target`` (percent test accuracy) against the
width. The paper: NP's time grows only sub-linearly with width and is 100-1000x SGD's. The
reduced default lowers the target to 90 % (paper 97.5 %) and uses 1 seed and 2 widths.

    python examples/reproduce/fig5b.py           # reduced: widths 100/200, target 90 %, 1 seed
    python examples/reproduce/fig5b.py --paper   # widths 100..3200, 97.5 %, 1e4 NP epochs, 5 seeds
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C
import numpy as np
from fig4a import np_envs_cli

CPU = dict(
    widths=[100, 200],
    target=90.0,
    np_rates=[1e-4, 3e-4],
    sgd_rates=[3e-4, 1e-3, 3e-3],
    np_epochs=12.0,
    sgd_epochs=3.0,
    seeds=1,
)
PAPER = dict(
    widths=[100, 200, 400, 800, 1600, 3200],
    target=97.5,
    np_rates=[1.8e-5, 3.2e-5, 5.6e-5, 1e-4, 1.8e-4],
    sgd_rates=[1e-3, 3.2e-3, 1e-2],
    np_epochs=10_000.0,
    sgd_epochs=100.0,
    seeds=5,
)


def sweep(agent: str, widths: list[int], rates: list[float], epochs: float, target: float,
          seeds: int, jobs: int, out: Path) -> list[dict]:
    """One ``np-envs sweep`` of ``agent``; its per-width rows (``sweep.csv``)."""
    cmd = [
        *np_envs_cli(), "sweep", "--env", "NPMNIST-v0", "--agents", agent,
        "--budget-epochs", str(epochs), "--eval-every", str(epochs / 24),
        "--seeds", str(seeds), "--hidden", ",".join(map(str, widths)),
        "--lrs", ",".join(map(str, rates)), "--target", str(target),
        "--jobs", str(jobs), "--out", str(out), "--no-progress", "--no-plots",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(out / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig5b", __doc__)
    p.add_argument("--widths", type=C.int_list)
    p.add_argument("--target", type=float, help="test accuracy to reach, percent")
    p.add_argument("--np-rates", dest="np_rates", type=C.float_list)
    p.add_argument("--sgd-rates", dest="sgd_rates", type=C.float_list)
    p.add_argument("--np-epochs", dest="np_epochs", type=float, help="NP budget")
    p.add_argument("--sgd-epochs", dest="sgd_epochs", type=float, help="SGD budget")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig5b", args)
    rows, results = [], {}
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    with tempfile.TemporaryDirectory() as tmp:
        for agent, rates, budget, color in (
            ("np", args.np_rates, args.np_epochs, "#e66101"),
            ("sgd", args.sgd_rates, args.sgd_epochs, "#2c7bb6"),
        ):
            got = sweep(agent, args.widths, rates, budget, args.target, args.seeds,
                        args.workers, Path(tmp) / agent)
            w, t = [], []
            for r in got:
                epochs = float(r["min_epoch_target"]) if r["min_epoch_target"] else float("inf")
                rows.append(dict(agent=agent, width=int(r["width"]), best_lr=r["best_lr"],
                                 min_epochs_to_target=epochs,
                                 best_accuracy=float(r["best_error"]), budget=budget))
                results[f"{agent} width {r['width']}"] = {
                    "min_epochs_to_target": epochs, "best_lr": r["best_lr"],
                    "best_accuracy": float(r["best_error"]), "budget_epochs": budget,
                }
                w.append(int(r["width"]))
                t.append(epochs)
            ok = np.isfinite(t)
            ax.loglog(np.asarray(w)[ok], np.asarray(t)[ok], "o-", color=color, label=agent)
    ax.set_xlabel("hidden width")
    ax.set_ylabel(f"min epochs to {args.target:g} % test acc.")
    ax.set_title(f"Fig 5B  MNIST, {args.seeds} seed(s)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig5b.png"
    C.save(fig, png)
    csv_path = C.write_csv(args.out / "fig5b.csv", rows)
    return run.finish(results, [png, csv_path])


if __name__ == "__main__":
    main(sys.argv[1:])
