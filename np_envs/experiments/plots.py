"""PNG figures of a comparison or a sweep (matplotlib, Agg: no display needed).

Why these: they are the paper's views of the same rows. Learning curves on log-log axes with
the mean and the spread over seeds (Fig. 4B, 5A); test error against the squared norm of the
input weights (Fig. 4D); on the linear task eps against samples beside the mean-field theory
(Fig. 1A); per-layer cosine to SGD when measured (Fig. 4A); for sweeps the minimum time to the
target against width (Fig. 4E, 5B) and, per width, the epoch of the minimum error and of the
climb back against the learning rate (Fig. 4C).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments.summary import error_of, rows_by_run, time_key


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _pos(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _error_label(metric: str) -> str:
    return "test error (%)" if metric == "accuracy" else "test mse"


def _time_label(tk: str) -> str:
    return "epoch" if tk == "epoch" else "samples seen"


def _loglog(ax: Any) -> None:
    """Log axes on both sides (minor labels are settled in :func:`_label_short_log_axes`)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)


def _label_short_log_axes(fig: Any) -> None:
    """Minor tick labels only on a log axis spanning less than a decade.

    A longer axis has decade labels, and minor ones would collide; a shorter one has no decade
    inside it, and without minor labels it would have no numbers at all.
    """
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            low, high = sorted(limits)
            if axis.get_scale() == "log" and low > 0 and np.log10(high / low) >= 1.0:
                axis.set_minor_formatter(NullFormatter())


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _label_short_log_axes(fig)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    _pyplot().close(fig)
    return path


def _curves_by_label(rows: Sequence[dict[str, Any]], ykey: Any) -> dict[str, list]:
    """label -> list of (chunk -> (t, y)) per run; ``ykey`` maps a row to y (or None)."""
    out: dict[str, list[dict[int, tuple[float, float]]]] = defaultdict(list)
    tk = time_key(rows)
    for run_rows in rows_by_run(rows).values():
        curve = {}
        for r in run_rows:
            t, y = r.get(tk), ykey(r)
            if _pos(t) and _pos(y):
                curve[r["chunk"]] = (float(t), float(y))
        out[run_rows[0].get("label") or run_rows[0]["agent"]].append(curve)
    return out


def learning_curves(rows: Sequence[dict[str, Any]], metric: str, path: Path,
                    title: str = "") -> Path:
    """Test error vs time, log-log; per label the mean over seeds and the min-max band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    tk = time_key(rows)
    for i, (label, curves) in enumerate(_curves_by_label(rows, lambda r: error_of(r, metric))
                                        .items()):
        color = f"C{i % 10}"
        chunks = sorted({c for cur in curves for c in cur})
        t, mean, lo, hi = [], [], [], []
        for c in chunks:
            pts = [cur[c] for cur in curves if c in cur]
            ys = [p[1] for p in pts]
            t.append(float(np.mean([p[0] for p in pts])))
            mean.append(float(np.mean(ys)))
            lo.append(min(ys))
            hi.append(max(ys))
        if not t:
            continue
        ax.plot(t, mean, color=color, label=f"{label} (n={len(curves)})", lw=1.6)
        if len(curves) > 1:
            ax.fill_between(t, lo, hi, color=color, alpha=0.2, lw=0)
    _loglog(ax)
    ax.set_xlabel(_time_label(tk))
    ax.set_ylabel(_error_label(metric))
    ax.set_title(title or "learning curves (mean, min-max over seeds)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def error_vs_norm(rows: Sequence[dict[str, Any]], metric: str, path: Path) -> Path:
    """Test error against ||W_1||^2 (input weights), one line per run, coloured by label."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels: dict[str, str] = {}
    for run_rows in rows_by_run(rows).values():
        label = run_rows[0].get("label") or run_rows[0]["agent"]
        color = labels.setdefault(label, f"C{len(labels) % 10}")
        pts = [(r.get("w2_l0"), error_of(r, metric)) for r in run_rows]
        pts = [(x, y) for x, y in pts if _pos(x) and _pos(y)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=color, alpha=0.7, lw=1.0, marker=".", ms=3,
                    label=label if label not in ax.get_legend_handles_labels()[1] else None)
            ax.plot(xs[0], ys[0], color=color, marker="o", ms=5, mfc="none")
    _loglog(ax)
    ax.set_xlabel("squared norm of the input weights ||W1||^2 (circle: start)")
    ax.set_ylabel(_error_label(metric))
    ax.set_title("test error vs input-weight norm")
    ax.legend(fontsize=8)
    return _save(fig, path)


def eps_vs_theory(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Linear task: eps per run (solid) and the mean-field prediction (dashed)."""
    if not any(_pos(r.get("eps")) for r in rows):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels: dict[str, str] = {}
    theory_drawn: set[str] = set()
    for run_rows in rows_by_run(rows).values():
        label = run_rows[0].get("label") or run_rows[0]["agent"]
        color = labels.setdefault(label, f"C{len(labels) % 10}")
        pts = [(r["samples"], r.get("eps")) for r in run_rows if _pos(r["samples"])
               and _pos(r.get("eps"))]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=color, alpha=0.6, lw=1.0,
                    label=label if label not in ax.get_legend_handles_labels()[1] else None)
        th = [(r["samples"], r.get("theory_eps")) for r in run_rows if _pos(r["samples"])
              and _pos(r.get("theory_eps"))]
        if th and label not in theory_drawn:
            theory_drawn.add(label)
            xs, ys = zip(*th, strict=True)
            ax.plot(xs, ys, color=color, ls="--", lw=1.6, label=f"{label}: mean-field theory")
    _loglog(ax)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("eps = ||W2 W1 - A||^2 / (Lx Ly)")
    ax.set_title("linear task: error vs theory")
    ax.legend(fontsize=8)
    return _save(fig, path)


def cosines(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-layer cosine between each rule's update and SGD's, mean over seeds, vs time."""
    keys = sorted({k for r in rows for k in r if k.startswith("cos_l")})
    if not keys:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    tk = time_key(rows)
    for i, key in enumerate(keys):
        for j, (label, curves) in enumerate(_curves_by_label(rows, lambda r, k=key: (
                r.get(k) if r.get(k) is not None else None)).items()):
            chunks = sorted({c for cur in curves for c in cur})
            t = [float(np.mean([cur[c][0] for cur in curves if c in cur])) for c in chunks]
            y = [float(np.mean([cur[c][1] for cur in curves if c in cur])) for c in chunks]
            if t:
                ax.plot(t, y, color=f"C{j % 10}", ls=["-", "--", ":", "-."][i % 4],
                        label=f"{label} layer {key[5:]}")
    _loglog(ax)
    ax.set_xlabel(_time_label(tk))
    ax.set_ylabel("cosine(update, -SGD gradient)")
    ax.set_title("alignment with SGD per layer")
    ax.legend(fontsize=8)
    return _save(fig, path)


def compare_plots(rows: Sequence[dict[str, Any]], metric: str, out: Path) -> list[Path]:
    """Every figure of a comparison that the rows allow; returns the files written."""
    written = [learning_curves(rows, metric, out / "learning_curves.png"),
               error_vs_norm(rows, metric, out / "error_vs_norm.png")]
    for extra in (eps_vs_theory(rows, out / "eps_theory.png"), cosines(rows, out / "cosine.png")):
        if extra is not None:
            written.append(extra)
    return written


# ---------------------------------------------------------------------------- sweeps
def sweep_plots(per_lr: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]], out: Path,
                time_unit: str = "epoch") -> list[Path]:
    """Fig. 4E/5B (minimum time to target vs width) and Fig. 4C (times vs learning rate)."""
    plt = _pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    by_agent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in best:
        if _pos(r.get("min_time_target")) and r.get("width"):
            by_agent[r["label"]].append((int(r["width"]), float(r["min_time_target"])))
    for i, (label, pts) in enumerate(by_agent.items()):
        pts.sort()
        ax.plot(*zip(*pts, strict=True), marker="o", color=f"C{i % 10}", label=label)
    _loglog(ax)
    ax.set_xlabel("hidden width")
    ax.set_ylabel(f"minimum {_time_label(time_unit)}s to target (over learning rates)")
    ax.set_title("training time to the target vs width")
    if by_agent:
        ax.legend(fontsize=8)
    written.append(_save(fig, out / "sweep_time_to_target.png"))

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in per_lr:
        groups[(r["label"], str(r.get("hidden")))].append(r)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, ((label, hidden), members) in enumerate(groups.items()):
        members = sorted(members, key=lambda r: r["lr"] or 0)
        color = f"C{i % 10}"
        for key, style, name in (("time_best_mean", "-o", "min error"),
                                 ("time_climb_mean", "--s", "climb > 1.1 x start"),
                                 ("time_target_mean", ":^", "target")):
            pts = [(r["lr"], r[key]) for r in members if _pos(r.get("lr")) and _pos(r.get(key))]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, color=color, ms=4,
                        label=f"{label} h={hidden}: {name}")
    _loglog(ax)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(_time_label(time_unit))
    ax.set_title("when the error is lowest, reaches the target, climbs back")
    if groups:
        ax.legend(fontsize=7)
    written.append(_save(fig, out / "sweep_learning_rates.png"))
    return written
