"""Fig. 4E: SARCOS, minimum (over learning rates) epochs to a target test MSE vs width.

Rules: NP, REINFORCE (perturbing the output layer only and back-propagating its estimate),
REINFORCE with noise in the hidden layer too, and SGD. Each rule runs ``np-envs sweep`` over the
widths and its own learning-rate grid (a YAML config names the hidden-noise alias). The paper
(target 5.0): NP ~flat in width and ~100x slower than SGD; REINFORCE ~3x SGD; hidden noise slows
REINFORCE. The reduced default targets test MSE **50** (5.0 takes thousands of epochs on the
``test-file`` scheme, whose epochs are 36 updates).

    python examples/reproduce/fig4e.py           # reduced: widths 100/200/400, target 50, 2 seeds
    python examples/reproduce/fig4e.py --paper   # widths 50..1600, target 5.0, 5 seeds (days)
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

#: rule label -> (colour, line style)
STYLE = {"np": ("#e66101", "-"), "reinforce": ("#1a9641", "-"),
         "reinforce-hn": ("#1a9641", "--"), "sgd": ("#2c7bb6", "-")}
CONFIG = {"agents": {"reinforce": {"hidden_noise": False},
                     "reinforce-hn": {"agent": "reinforce", "hidden_noise": True}}}
CPU = dict(
    widths=[100, 200, 400],
    target=50.0,
    np_rates=[5.6e-5, 1e-4, 1.8e-4],
    reinforce_rates=[3e-4, 1e-3, 3e-3],
    sgd_rates=[3e-4, 1e-3, 3e-3],
    np_epochs=60.0,
    reinforce_epochs=30.0,
    sgd_epochs=20.0,
    seeds=2,
    split_scheme="test-file",
)
PAPER = dict(
    widths=[50, 100, 200, 400, 800, 1600],
    target=5.0,
    np_rates=[1e-5, 1.8e-5, 3.2e-5, 5.6e-5, 1e-4],
    reinforce_rates=[1e-4, 3.2e-4, 1e-3, 3.2e-3],
    sgd_rates=[1e-4, 3.2e-4, 1e-3, 3.2e-3],
    np_epochs=30_000.0,
    reinforce_epochs=3_000.0,
    sgd_epochs=1_000.0,
    seeds=5,
    split_scheme="gpml",
)


def sweep(label: str, args: object, rates: list[float], epochs: float, out: Path,
          config: Path) -> list[dict]:
    """One ``np-envs sweep`` of one rule; its per-width rows (``sweep.csv``)."""
    cmd = [
        *np_envs_cli(), "sweep", "--env", "NPSarcos-v0", "--agents", label,
        "--config", str(config), "--env-kwargs", json.dumps({"split_scheme": args.split_scheme}),
        "--budget-epochs", str(epochs), "--eval-every", str(max(epochs / 60, 0.25)),
        "--seeds", str(args.seeds), "--hidden", ",".join(map(str, args.widths)),
        "--lrs", ",".join(map(str, rates)), "--target", str(args.target), "--metric", "mse",
        "--jobs", str(args.workers), "--out", str(out), "--no-progress", "--no-plots",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(out / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig4e", __doc__)
    p.add_argument("--widths", type=C.int_list)
    p.add_argument("--target", type=float, help="test MSE to reach")
    for rule in ("np", "reinforce", "sgd"):
        p.add_argument(f"--{rule}-rates", dest=f"{rule}_rates", type=C.float_list)
        p.add_argument(f"--{rule}-epochs", dest=f"{rule}_epochs", type=float,
                       help=f"{rule} budget")
    p.add_argument("--split-scheme", dest="split_scheme")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig4e", args)
    rows, results = [], {}
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(3.8, 3.0))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "agents.json"  # YAML is a superset of JSON
        config.write_text(json.dumps(CONFIG))
        for label, rates, budget in (
            ("np", args.np_rates, args.np_epochs),
            ("reinforce", args.reinforce_rates, args.reinforce_epochs),
            ("reinforce-hn", args.reinforce_rates, args.reinforce_epochs),
            ("sgd", args.sgd_rates, args.sgd_epochs),
        ):
            got = sweep(label, args, rates, budget, Path(tmp) / label, config)
            w, t = [], []
            for r in got:
                epochs = float(r["min_epoch_target"]) if r["min_epoch_target"] else float("inf")
                rows.append(dict(rule=label, width=int(r["width"]), best_lr=r["best_lr"],
                                 min_epochs_to_target=epochs, best_mse=float(r["best_error"]),
                                 budget=budget))
                results[f"{label} width {r['width']}"] = {
                    "min_epochs_to_target": epochs, "best_lr": r["best_lr"],
                    "best_mse": round(float(r["best_error"]), 2), "budget_epochs": budget,
                }
                w.append(int(r["width"]))
                t.append(epochs)
            ok = np.isfinite(t)
            color, style = STYLE[label]
            ax.loglog(np.asarray(w)[ok], np.asarray(t)[ok], "o" + style, color=color,
                      label=label)
    ax.set_xlabel("hidden width")
    ax.set_ylabel(f"min epochs to test MSE {args.target:g}")
    ax.set_title(f"Fig 4E  SARCOS {args.split_scheme}, {args.seeds} seed(s)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig4e.png"
    C.save(fig, png)
    csv_path = C.write_csv(args.out / "fig4e.csv", rows)
    return run.finish(results, [png, csv_path])


if __name__ == "__main__":
    main(sys.argv[1:])
