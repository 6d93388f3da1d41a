"""Fig. 4A: cosine of NP's update with SGD's gradient on the same batch, per layer, vs width.

Eq. 6 predicts the hidden layer's cosine falling as 1/sqrt(width) and the output layer's staying
flat. Each width runs ``np-envs compare --diagnostics cosine`` (SARCOS, one hidden layer, batch
100, sigma 1e-4, learning_rate 1e-4) for the first ``--epochs`` of training and averages the
per-update cosines over that window and over seeds. The paper measures near test error 50 and 5;
here only the early window (the error is ~200-300 there) is measured.

    python examples/reproduce/fig4a.py           # reduced: 6 widths, 3 seeds, first 1/4 epoch
    python examples/reproduce/fig4a.py --paper   # 5 seeds, first epoch, gpml split scheme
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C
import numpy as np

CPU = dict(
    widths=[50, 100, 200, 400, 800, 1600],
    lr=1e-4,
    epochs=0.25,
    seeds=3,
    split_scheme="test-file",
)
PAPER = dict(epochs=1.0, seeds=5, split_scheme="gpml")


def np_envs_cli() -> list[str]:
    """The ``np-envs`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("np-envs")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "np_envs.cli.main"]


def cosines(width: int, lr: float, epochs: float, seeds: int, split_scheme: str,
            jobs: int, workdir: Path) -> dict[str, list[float]]:
    """Per-seed mean cosine of each layer over the first ``epochs`` (one compare run)."""
    out = workdir / f"w{width}"
    cmd = [
        *np_envs_cli(), "compare", "--env", "NPSarcos-v0", "--agents", "np",
        "--epochs", str(epochs), "--eval-every", str(epochs), "--seeds", str(seeds),
        "--env-kwargs", json.dumps({"split_scheme": split_scheme}),
        "--diagnostics", "cosine", "--hidden", str(width), "--lr", f"np={lr}",
        "--jobs", str(jobs), "--out", str(out), "--no-progress", "--no-plots",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    res: dict[str, list[float]] = {"hidden": [], "output": []}
    with open(out / "rows.csv") as fh:
        for row in csv.DictReader(fh):
            if row.get("cos_l0"):
                res["hidden"].append(float(row["cos_l0"]))
                res["output"].append(float(row["cos_l1"]))
    return res


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig4a", __doc__)
    p.add_argument("--widths", type=C.int_list)
    p.add_argument("--lr", type=float, help="learning_rate (divided by the batch, NOTES.md)")
    p.add_argument("--epochs", type=float, help="window at the start of training")
    p.add_argument("--split-scheme", dest="split_scheme")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig4a", args)
    rows, results = [], {}
    hid, outl = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.widths:
            c = cosines(w, args.lr, args.epochs, args.seeds, args.split_scheme, args.workers,
                        Path(tmp))
            h, o = float(np.mean(c["hidden"])), float(np.mean(c["output"]))
            hid.append(h)
            outl.append(o)
            results[f"width {w}"] = {
                "cos_hidden": round(h, 4),
                "cos_output": round(o, 4),
                "cos_hidden_x_sqrt_width": round(h * math.sqrt(w), 3),
            }
            for s, (ch, co) in enumerate(zip(c["hidden"], c["output"], strict=True)):
                rows.append(dict(width=w, seed=s, cos_hidden=ch, cos_output=co))
    widths = np.asarray(args.widths, float)
    slope = float(np.polyfit(np.log(widths), np.log(hid), 1)[0])
    results["hidden log-log slope vs width (theory -0.5)"] = round(slope, 3)
    results["output max/min over widths"] = round(max(outl) / min(outl), 3)
    plt = C.setup_plot()
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    ax.loglog(widths, hid, "o-", color=C.COLORS[0], label="hidden layer")
    ax.loglog(widths, outl, "s-", color=C.COLORS[2], label="output layer")
    guide = hid[0] * np.sqrt(widths[0] / widths)
    ax.loglog(widths, guide, "k:", label=r"$\propto 1/\sqrt{L_h}$")
    ax.set_xlabel("hidden width $L_h$")
    ax.set_ylabel("cos(NP update, SGD gradient)")
    ax.set_title(f"Fig 4A  SARCOS {args.split_scheme}, first {args.epochs:g} epoch",
                 fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = args.out / "fig4a.png"
    C.save(fig, png)
    csv_path = C.write_csv(args.out / "fig4a.csv", rows)
    return run.finish(results, [png, csv_path])


if __name__ == "__main__":
    main(sys.argv[1:])
