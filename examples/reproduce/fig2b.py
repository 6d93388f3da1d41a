"""Fig. 2B: minimum training time to a target error vs output size Ly, NP and SGD (linear task).

Same procedure as fig2a.py at a fixed hidden width. NP's time should grow linearly with Ly
(log-log slope ~1), SGD's should not.

    python examples/reproduce/fig2b.py            # reduced: Lh=1000, Ly=5..40, 2 seeds
    python examples/reproduce/fig2b.py --paper    # Lh=1e4, Ly=5..80, 10 seeds
"""

from __future__ import annotations

import sys

import _common as C
import fig2a

CPU = {**fig2a.CPU, "outputs": [5, 10, 20, 40], "np_max_steps": 100_000}
PAPER = {**fig2a.PAPER, "np_max_steps": 400_000}


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig2b", __doc__)
    fig2a.add_options(p)
    p.add_argument("--outputs", type=C.int_list, help="output sizes Ly")
    p.add_argument("--Lh", type=int, help="hidden width")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig2b", args)
    rows, _ = fig2a.sweep(args, [(args.Lh, y) for y in args.outputs], "fig2b")
    png, csv = fig2a.plot(args, rows, "Ly", "fig2b", "output size Ly")
    results = {
        "rows": rows,
        "np_slope_vs_Ly": fig2a.slope(args.outputs, [r["np_time"] for r in rows]),
        "np_theory_slope_vs_Ly": fig2a.slope(args.outputs, [r["np_theory_time"] for r in rows]),
        "sgd_slope_vs_Ly": fig2a.slope(args.outputs, [r["sgd_time"] for r in rows]),
    }
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
