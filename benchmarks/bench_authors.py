"""One np-envs NP run against the paper's authors' own TensorFlow code, on the same machine.

Issue 11 (c) puts the goal of a single run's speed as "beats the authors' TensorFlow code by 4x
at width 100, as it already does at width 800". This measures exactly that, on SARCOS (B=100,
one hidden ReLU layer, sigma 1e-4): the authors' script ``nonlinear/sarcos/calc_fig4c.py`` from
github.com/nhiratani/node_perturbation, run UNMODIFIED from a clone you point to, in a Python
that has TensorFlow (their script uses ``tensorflow.compat.v1``; TF 2.21 runs it), against
np-envs' ``np`` agent (a population of one) through ``learn`` in this process.

Both train on synthetic data of the GPML files' shapes (44,484 training and 4,449 test rows of
21 inputs and 7 torques, written as the ``.mat`` files their script reads): times do not depend
on the values, and no data file is needed. Their time per update is the wall time of their
script at ``10 + E`` epochs minus at 10 epochs, divided by ``E x 444`` updates: start-up, data
loading, graph building and their first ten epochs cancel out (their script evaluates the whole
test set after every batch in epoch 0 and after every tenth batch in epochs 1-9); from epoch 10
on it evaluates the test set once per epoch (1 batch in 444), which stays in. Ours
is ``learn`` over the same ``E x 444`` updates, in a worker process as bench_population.py part
(c) times it, beside the single agent from before the population engine (``--today-ref``).
Each side uses its library's default threads (both cores). The cases alternate repeat by
repeat and the best repeat is kept; every row carries the load average measured after it.

Run: ``python benchmarks/bench_authors.py --authors-code PATH/TO/node_perturbation
--tf-python PATH/TO/python-with-tensorflow`` (``--widths 100,800``, ``--epochs 10``,
``--repeats 3``). Set-up of a TensorFlow Python beside the project's, for example:
``python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu scipy``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_population import (  # noqa: E402
    SARCOS_IN,
    SARCOS_ROWS,
    Case,
    Workers,
    _synthetic_sarcos,
    load,
    today_root,
)

AUTHORS_SCRIPT = Path("nonlinear") / "sarcos" / "calc_fig4c.py"
TEST_ROWS = 4_449
BATCH = 100
UPDATES_PER_EPOCH = SARCOS_ROWS // BATCH  # 444, as their script's floor(n_train / batch_size)
LEARNING_RATE = 1e-5  # theirs: learning_rate / batch_size per sample sum, as ours ("mean")
#: their script's first ten epochs evaluate the test set often (every batch in epoch 0, every
#: tenth in epochs 1-9): both timed runs include them, so they cancel out
SKIPPED_EPOCHS = 10


def write_mat_files(folder: Path) -> None:
    """The two ``.mat`` files their script loads, with synthetic rows of the real shapes."""
    from scipy.io import savemat

    inputs, torques = _synthetic_sarcos()
    rows = np.hstack([inputs, torques]).astype(np.float64)
    assert rows.shape == (SARCOS_ROWS, SARCOS_IN + 7)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "sarcos_inv.mat", {"sarcos_inv": rows})
    savemat(folder / "sarcos_inv_test.mat", {"sarcos_inv_test": rows[:TEST_ROWS]})


def run_authors(tf_python: str, script: Path, workdir: Path, width: int, epochs: int) -> float:
    """Wall seconds of their script for ``epochs`` epochs (checked to have run them all)."""
    args = [tf_python, str(script), "2", str(width), str(BATCH), repr(LEARNING_RATE),
            str(epochs), "0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the authors' script failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    record = workdir / "data" / (f"gfb_mlp_sarcos_np_ttime_K2_w{width}_B{BATCH}_lr"
                                 f"{LEARNING_RATE!r}_nep{epochs}_sd0.txt")
    last = record.read_text().split("\n")[-2].split()
    if int(last[0]) != epochs - 1 or not np.isfinite(float(last[2])):
        raise SystemExit(f"the authors' run stopped early or diverged: last record {last}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors-code", required=True, type=Path,
                        help="a clone of github.com/nhiratani/node_perturbation")
    parser.add_argument("--tf-python", default=sys.executable,
                        help="a Python interpreter with tensorflow and scipy (default: this one)")
    parser.add_argument("--widths", default="100,800")
    parser.add_argument("--epochs", type=int, default=10,
                        help="timed epochs E (their script runs 10 and 10 + E)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--today-ref", default="auto",
                        help="git ref of the single agent before the population engine "
                             "(default: as bench_population.py), or 'none' to leave it out")
    args = parser.parse_args()
    script = (args.authors_code / AUTHORS_SCRIPT).resolve()
    if not script.is_file():
        parser.error(f"{script} not found: --authors-code must be a clone of "
                     "github.com/nhiratani/node_perturbation")
    check = subprocess.run([args.tf_python, "-c", "import tensorflow, scipy"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        parser.error(f"{args.tf_python} cannot import tensorflow and scipy: install them there "
                     "(pip install tensorflow-cpu scipy) or pass --tf-python")
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths must be comma-separated integers, got {args.widths!r}")
    if args.epochs < 1 or args.repeats < 1 or min(widths) < 1:
        parser.error("--epochs, --repeats and every width must be >= 1")
    updates = args.epochs * UPDATES_PER_EPOCH
    old_root = None if args.today_ref == "none" else today_root(args.today_ref)

    table: list[tuple[int, str, float, float]] = []  # width, path, seconds per update, load
    with tempfile.TemporaryDirectory(prefix="np-envs-authors-") as tmp:
        write_mat_files(Path(tmp) / "dataset")
        workdir = Path(tmp) / "run"
        (workdir / "data").mkdir(parents=True)
        for width in widths:
            # np-envs in worker processes, as bench_population.py part (c) times them
            case = [Case("sarcos", width, BATCH, [[(0, LEARNING_RATE)]])]
            ours = {"np-envs P=1": Workers("P=1", None, case)}
            if old_root is not None:
                ours["single agent before the engine"] = Workers("today", old_root, case)
            best: dict[str, tuple[float, float]] = {}
            try:
                for r in range(args.repeats):
                    short = run_authors(args.tf_python, script, workdir, width, SKIPPED_EPOCHS)
                    long = run_authors(args.tf_python, script, workdir, width,
                                       SKIPPED_EPOCHS + args.epochs)
                    times = {"authors' TF": ((long - short) / updates, load())}
                    for name, workers in ours.items():
                        times[name] = (workers.time(updates) / updates, load())
                    print(f"  w{width} repeat {r + 1}: " + ", ".join(
                        f"{name} {t * 1e3:.3f}" for name, (t, _) in times.items())
                        + " ms per update", flush=True)
                    for name, value in times.items():
                        best[name] = min(best.get(name, value), value)
            finally:
                for workers in ours.values():
                    workers.close()
            table += [(width, name, t, ld) for name, (t, ld) in best.items()]

    print(f"\nSARCOS B={BATCH}, {updates} updates per timing, best of {args.repeats}")
    print(f"{'width':>5}  {'path':<32} {'ms/update':>9} {'load':>5}  {'authors / path':>14}")
    for width, name, seconds, ld in table:
        theirs = next(t for w, n, t, _ in table if w == width and n == "authors' TF")
        print(f"{width:>5}  {name:<32} {seconds * 1e3:>9.3f} {ld:>5.2f}  "
              f"{theirs / seconds:>13.2f}x")


if __name__ == "__main__":
    main()
