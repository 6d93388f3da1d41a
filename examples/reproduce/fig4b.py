"""Fig. 4B (+ the weight-norm side of 4D): NP on SARCOS at several learning rates, against SGD.

Test MSE and the squared input-weight norm ||W1||_F^2 per epoch; dotted: weight-normalised NP
(``wn-np``, rows of W1 rescaled to a fixed norm after every step), whose ||W1||^2 stays put.
The paper's claim: at a high enough rate NP's error reaches a minimum and then rises, preceded
by a growing ||W1||, while SGD at its best rate does not. Runs on the ``test-file`` split scheme
(only the SARCOS test file is on this machine), so an epoch is 36 updates instead of the
paper's 445.

    python examples/reproduce/fig4b.py           # reduced: width 400, 3 NP rates, 150 epochs
    python examples/reproduce/fig4b.py --paper   # width 800, 5 seeds, 3e4 epochs (days on CPU)
"""

from __future__ import annotations

import sys

import _common as C
import _sarcos as S
import numpy as np

from np_envs import plotting

CPU = dict(
    width=400,
    np_rates=[3.2e-5, 1e-4, 1.8e-4],
    sgd_rates=[1e-3],
    wn_rates=[1e-4],
    epochs=150,
    eval_every=10,
    seeds=1,
    split_scheme="test-file",
)
PAPER = dict(
    width=800,
    np_rates=[3.2e-6, 1e-5, 3.2e-5, 1e-4, 1.8e-4],
    epochs=30_000,
    eval_every=100,
    seeds=5,
    split_scheme="gpml",
)
#: "Rose after its minimum": ends above this multiple of its minimum, or diverged.
ROSE = 1.5


def _draw(ax_e, ax_n, curves: list[dict]) -> None:
    """Per rule and rate: the mean over seeds with a min-max band (error, and ||W1||^2), an X
    where a seed diverged; one legend entry per setting, not per seed."""
    groups: dict[tuple, list[dict]] = {}
    for c in curves:
        groups.setdefault((c["rule"], c["learning_rate"]), []).append(c)
    for i, ((rule, lr), group) in enumerate(groups.items()):
        color = "k" if rule == "sgd" else C.COLORS[i % len(C.COLORS)]
        style = {"sgd": "--", "wn-np": ":"}.get(rule, "-")
        for ax, key, label in ((ax_e, "mse", f"{rule} lr={lr:g} (n={len(group)})"),
                               (ax_n, "w1_sq", None)):
            per_seed = []
            for c in group:
                ok = np.isfinite(c["mse"]) & (c["mse"] < S.DIVERGED_MSE)
                per_seed.append({k: (float(e), float(v)) for k, (e, v, keep) in
                                 enumerate(zip(c["epoch"], c[key], ok, strict=True)) if keep})
                if c["diverged"] and ok.any():  # at the epoch it diverged, its last finite y
                    last = int(np.flatnonzero(ok)[-1])
                    at = min(last + 1, len(ok) - 1)
                    plotting.mark_diverged(ax, [(c["epoch"][at], c[key][last])], color)
            plotting.mean_band(ax, per_seed, color, label or "", ls=style, lw=1.4)
            ax.set_yscale("log")


def main(argv: list[str] | None = None) -> dict:
    p = C.make_parser("fig4b", __doc__)
    p.add_argument("--width", type=int)
    p.add_argument("--np-rates", dest="np_rates", type=C.float_list)
    p.add_argument("--sgd-rates", dest="sgd_rates", type=C.float_list)
    p.add_argument(
        "--wn-rates",
        dest="wn_rates",
        type=C.float_list,
        help="rates of weight-normalised NP (rows of W1 held at a fixed norm); empty: none",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--split-scheme", dest="split_scheme")
    args = C.resolve(p.parse_args(argv), CPU, PAPER)
    run = C.Run("fig4b", args)
    jobs = [
        dict(
            rule=rule,
            width=args.width,
            learning_rate=lr,
            seed=s,
            epochs=args.epochs,
            eval_every=args.eval_every,
            split_scheme=args.split_scheme,
            agent_kwargs={"normalize": "first"} if rule == "wn-np" else None,
        )
        for rule, rates in (
            ("np", args.np_rates),
            ("sgd", args.sgd_rates),
            ("wn-np", args.wn_rates),
        )
        for lr in rates
        for s in range(args.seeds)
    ]
    curves = S.run_many(jobs, args.workers, root=args.out / "runs")
    plt = C.setup_plot()
    fig, (ax_e, ax_n) = plt.subplots(1, 2, figsize=(8, 3.4))
    _draw(ax_e, ax_n, curves)
    rows, results = [], {}
    for c in curves:
        label = f"{c['rule']} lr={c['learning_rate']:g} seed {c['seed']}"
        ok = np.isfinite(c["mse"]) & (c["mse"] < S.DIVERGED_MSE)
        m = np.where(np.isfinite(c["mse"]), c["mse"], np.inf)
        imin = int(np.argmin(m))
        results[label] = {
            "min_mse": float(m[imin]),
            "min_epoch": int(c["epoch"][imin]),
            "last_epoch": int(c["epoch"][-1]),
            "last_mse": float(c["mse"][-1]),
            "w1_sq_start": float(c["w1_sq"][0]),
            "w1_sq_at_min": float(c["w1_sq"][imin]),
            "diverged": bool(c["diverged"]),
            "rose_after_min": bool(c["diverged"] or m[-1] > ROSE * m[imin]),
            "w1_sq_grew_monotonically_to_min": bool(np.all(np.diff(c["w1_sq"][: imin + 1]) > 0)),
            "w1_sq_max_rel_change": float(
                np.max(np.abs(c["w1_sq"] / c["w1_sq"][0] - 1)) if np.all(ok) else np.inf
            ),
        }
        for e, u, ms, w in zip(c["epoch"], c["updates"], c["mse"], c["w1_sq"], strict=True):
            rows.append(
                dict(
                    rule=c["rule"],
                    learning_rate=c["learning_rate"],
                    seed=c["seed"],
                    epoch=int(e),
                    updates=int(u),
                    test_mse=ms,
                    w1_sq=w,
                )
            )
    ax_e.set_xlabel("epoch")
    ax_e.set_ylabel("test MSE")
    ax_e.set_title(f"Fig 4B  SARCOS {args.split_scheme}, width {args.width}", fontsize=8)
    diverged = any(c["diverged"] for c in curves)
    plotting.legend(ax_e, [plotting.diverged_handle()] if diverged else [], fontsize=6)
    ax_n.set_xlabel("epoch")
    ax_n.set_ylabel("||W1||²")
    ax_n.set_title("input-weight norm (Fig 4D), same colours", fontsize=8)
    fig.tight_layout()
    n = args.seeds
    plotting.caption(fig, [
        f"NPSarcos-v0 ({args.split_scheme}) | width {args.width} | batch {S.BATCH} | "
        f"{args.epochs} epochs, evaluated every {args.eval_every} | seeds 0-{n - 1} (n={n})",
        "line: mean over seeds" + ("; band: min-max over seeds" if n > 1 else "")
        + ("; X: diverged (at that epoch, drawn at its last finite value)" if diverged else ""),
    ])
    png = args.out / "fig4b.png"
    C.save(fig, png)
    csv = C.write_csv(args.out / "fig4b.csv", rows)
    return run.finish(results, [png, csv])


if __name__ == "__main__":
    main(sys.argv[1:])
