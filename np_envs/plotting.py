"""Every figure np-envs draws: one style, one tick rule, one band, one divergence marker.

Why one module: the commands (``compare``, ``sweep``, ``theory``) and the reproduce panels draw
the paper's views of the same rows, and a fix to ticks or bands must land in all of them at
once. The paper's figures set the standard: log axes with several readable tick labels
(1-2-5 mantissas, never "1.75x10^0"), the initial error visible (a symlog time axis puts step 0
beside the log part), the theory dashed beside the simulation, the spread over seeds as a band,
a diverged run ending in a marker where it diverged, and a caption that names the task, width,
batch, learning rates and seeds.

Views of a comparison (:func:`compare_plots`): learning curves (Fig. 4B, 5A), test error
against the input-weight norm (Fig. 4D), on the linear task eps beside the two-variable map and
the four-variable model (Fig. 1A), per-layer cosine to SGD (Fig. 4A). Views of a sweep
(:func:`sweep_plots`): error against learning rate per width and rule (Fig. S3B), minimum time
to the target against width (Fig. 4E, 5B), and the times of the minimum and the climb back
against the learning rate (Fig. 4C). matplotlib (Agg) draws everything.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from np_envs.experiments.summary import error_of, rows_by_run, time_key

#: Colours of successive rules / rates / widths, ordered like the paper's purple -> green.
COLORS = ["#5e3c99", "#2c7bb6", "#1a9641", "#fdae61", "#d7191c", "#7b3294", "#636363",
          "#a6611a", "#018571", "#e66101"]

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
}

DIVERGED_MARKER = {"marker": "X", "ms": 8, "mec": "black", "mew": 0.8, "ls": "none"}
MAX_TICKS = 8


def pyplot() -> Any:
    """matplotlib.pyplot, headless (Agg), with the shared style applied."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _pos(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def fmt_number(v: float) -> str:
    """A short number for a caption or legend: ``1.2e-04``, ``0.05``, ``300``."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.3g}"
    mant, exp = f"{v:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


# ---------------------------------------------------------------------------- ticks
def tick_label(v: float) -> str:
    """Plain decimals between 1e-3 and 1e5, otherwise ``m x 10^e`` with an integer mantissa."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        text = f"{v:.3g}"
        return text if "e" not in text else str(int(round(v)))
    e = int(math.floor(math.log10(abs(v)) + 1e-9))
    m = v / 10**e
    if abs(m - round(m)) < 1e-6 and round(m) == 1:
        return f"$10^{{{e}}}$"
    mant = f"{m:.2g}"
    return f"${mant}\\times10^{{{e}}}$"


def log_ticks(lo: float, hi: float, min_labels: int = 3) -> list[float]:
    """At least ``min_labels`` (when the range allows any) round ticks in ``[lo, hi]``.

    The coarsest of decades, 1-3, 1-2-5, 1-2-3-5-7 and every mantissa that gives enough labels
    without crowding; on a range too narrow for any of them, evenly spaced round numbers.
    """
    if not (lo > 0 and hi > lo and math.isfinite(hi / lo)):
        return []
    span = math.log10(hi / lo)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if span > MAX_TICKS - 1:  # many decades: every k-th power of ten
        k = math.ceil(span / (MAX_TICKS - 1))
        return [10.0**e for e in range(first, last + 1) if e % k == 0 and lo <= 10.0**e <= hi]
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7), tuple(range(1, 10))):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
        ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) >= min_labels:
            return ticks if len(ticks) <= MAX_TICKS else ticks[:: math.ceil(len(ticks) / 6)]
    from matplotlib.ticker import MaxNLocator

    inside: list[float] = []
    for nbins in (4, 6, 9):
        ticks = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        inside = [float(t) for t in ticks if lo <= t <= hi and t > 0]
        if len(inside) >= min_labels:
            break
    return inside


def readable_ticks(ax: Any) -> None:
    """Fixed, labelled round ticks on every log or symlog axis of ``ax`` (linear ones untouched).

    Called by :func:`save` once the limits are final; a symlog axis gets ``0`` plus the log
    ticks above its linear threshold.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        lo, hi = sorted((lo, hi))
        scale = axis.get_scale()
        if scale == "log":
            ticks = log_ticks(lo, hi)
        elif scale == "symlog":
            thr = axis.get_transform().linthresh
            ticks = ([0.0] if lo <= 0 <= hi else []) + log_ticks(max(lo, thr), hi, 3)
        else:
            continue
        if not ticks:
            continue
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_label(v)))
        if scale == "symlog":
            axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())


def time_axis(ax: Any, times: Iterable[float], axis: str = "x") -> None:
    """A log time axis that still shows time 0: symlog, linear below the first positive time."""
    positive = [t for t in times if _pos(t)]
    if not positive:
        return
    thr = min(positive)
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("symlog", linthresh=thr, linscale=0.35)
    hi = max(positive)
    lim = (-0.12 * thr, hi * 1.15)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*lim)


def log_axis(ax: Any, axis: str = "y") -> None:
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


# ---------------------------------------------------------------------------- bands, markers
def mean_band(ax: Any, curves: Sequence[Mapping[int, tuple[float, float]]], col: str,
              label: str, ls: str = "-", lw: float = 1.6) -> tuple[list[float], list[float]]:
    """Mean over seeds as a line and the min-max over seeds as a band; returns (t, mean).

    ``curves`` are per-seed maps chunk -> (t, y); a chunk's mean uses the seeds that have it.
    """
    chunks = sorted({c for cur in curves for c in cur})
    t, mean, lo, hi = [], [], [], []
    for c in chunks:
        pts = [cur[c] for cur in curves if c in cur]
        ys = [p[1] for p in pts]
        t.append(float(np.mean([p[0] for p in pts])))
        mean.append(float(np.mean(ys)))
        lo.append(min(ys))
        hi.append(max(ys))
    if t:
        ax.plot(t, mean, color=col, ls=ls, lw=lw, label=label)
        ax.plot(t[:1], mean[:1], color=col, marker="o", ms=3.5, ls="none")  # the start
        if len(curves) > 1:
            ax.fill_between(t, lo, hi, color=col, alpha=0.2, lw=0)
    return t, mean


def mark_diverged(ax: Any, points: Sequence[tuple[float, float]], col: str) -> None:
    """An X where each diverged run stopped (its time, its last finite error)."""
    for x, y in points:
        ax.plot([x], [y], color=col, **DIVERGED_MARKER)


def diverged_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="white", mfc="gray", label="diverged", **DIVERGED_MARKER)


def start_handle() -> Any:
    """The legend key of a run's first point (an open circle), so the key shows the symbol."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color="gray", marker="o", ms=6, mfc="none", ls="none", label="start")


def outside_legend(ax: Any, extra: Sequence[Any] = ()) -> None:
    """The legend right of the axes: long keys never cover a curve (``save`` keeps it)."""
    legend(ax, extra, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def style_handle(ls: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", ls=ls, lw=1.4, label=label)


def legend(ax: Any, extra: Sequence[Any] = (), **kwargs: Any) -> None:
    """The axes' labelled lines plus ``extra`` handles (markers, line-style keys)."""
    handles, labels = ax.get_legend_handles_labels()
    for h in extra:
        handles.append(h)
        labels.append(h.get_label())
    if handles:
        ax.legend(handles, labels, **kwargs)


def caption(fig: Any, lines: Sequence[str]) -> None:
    """Small text under the axes: settings and what the reader should know about the figure."""
    text = "\n".join(line for line in lines if line)
    if text:
        fig.text(0.01, -0.01, text, ha="left", va="top", fontsize=7, wrap=True)


def save(fig: Any, path: Path, dpi: int | None = None) -> Path:
    """Readable ticks on every axis, tight bounding box (keeps the caption), atomic write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        readable_ticks(ax)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    tmp.replace(path)
    pyplot().close(fig)
    return path


# ---------------------------------------------------------------------------- context
def context_from_specs(specs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Task, batch and env keywords of a set of runs, for captions and the linear theory."""
    specs = list(specs)
    if not specs:
        return {}
    s = specs[0]
    return {"env_id": s.get("env_id"), "batch": s.get("num_envs"),
            "env_kwargs": dict(s.get("env_kwargs") or {}),
            "budget": s.get("budget"), "unit": s.get("unit")}


def _label(run_rows: Sequence[dict[str, Any]]) -> str:
    return run_rows[0].get("label") or run_rows[0]["agent"]


def _rates(values: set[float]) -> str:
    v = sorted(values)
    if len(v) <= 2:
        return "/".join(fmt_number(x) for x in v)
    return f"{fmt_number(v[0])}..{fmt_number(v[-1])} ({len(v)} rates)"


def settings_line(rows: Sequence[dict[str, Any]], context: Mapping[str, Any] | None) -> str:
    """``NPSarcos-v0 | width 100 | batch 100 | lr np 1e-05, sgd 0.001 | seeds 0-2``."""
    context = context or {}
    runs = rows_by_run(rows)
    lrs: dict[str, set[float]] = defaultdict(set)
    widths, seeds = [], set()
    for run_rows in runs.values():
        r = run_rows[0]
        if _pos(r.get("lr")):
            lrs[_label(run_rows)].add(float(r["lr"]))
        if r.get("hidden") and str(r["hidden"]) not in widths:
            widths.append(str(r["hidden"]))
        if r.get("seed") is not None:
            seeds.add(int(r["seed"]))
    parts = [str(context["env_id"])] if context.get("env_id") else []
    if widths:
        parts.append(("width " if len(widths) == 1 else "widths ") + ", ".join(widths))
    if context.get("batch"):
        parts.append(f"batch {context['batch']}")
    if lrs:
        parts.append("lr " + ", ".join(f"{k} {_rates(vs)}" for k, vs in lrs.items()))
    if seeds:
        s = sorted(seeds)
        span = f"{s[0]}-{s[-1]}" if s == list(range(s[0], s[-1] + 1)) and len(s) > 1 else \
            ",".join(map(str, s))
        parts.append(f"seeds {span} (n={len(s)})")
    return " | ".join(parts)


def error_label(metric: str) -> str:
    return "test error (%)" if metric == "accuracy" else "test MSE"


def time_label(tk: str) -> str:
    return "epoch" if tk == "epoch" else "samples seen"


# ---------------------------------------------------------------------------- comparisons
def _curves(rows: Sequence[dict[str, Any]], ykey: Any, tk: str) -> tuple[
        dict[str, list[dict[int, tuple[float, float]]]], dict[str, list[tuple[float, float]]]]:
    """Per label, each run's chunk -> (t, y) (time 0 kept) and the runs' divergence points.

    A diverged run's last row is its divergence: it is not averaged into the curve, it is
    marked at its time with its error (or its last finite error when that one is not finite).
    """
    curves: dict[str, list[dict[int, tuple[float, float]]]] = defaultdict(list)
    diverged: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run_rows in rows_by_run(rows).values():
        label = _label(run_rows)
        curve: dict[int, tuple[float, float]] = {}
        last_y = None
        for r in run_rows:
            t, y = r.get(tk), ykey(r)
            if r.get("diverged"):
                yd = y if _pos(y) else last_y
                if t is not None and yd is not None:
                    diverged[label].append((float(t), float(yd)))
                break
            if t is not None and t >= 0 and _pos(y):
                curve[r["chunk"]] = (float(t), float(y))
                last_y = float(y)
        curves[label].append(curve)
    return curves, diverged


def learning_curves(rows: Sequence[dict[str, Any]], metric: str, path: Path,
                    context: Mapping[str, Any] | None = None) -> Path:
    """Test error against time from time 0, per label mean and min-max band over seeds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    tk = time_key(rows)
    curves, diverged = _curves(rows, lambda r: error_of(r, metric), tk)
    times = []
    for i, (label, runs) in enumerate(curves.items()):
        n_div = len(diverged.get(label, []))
        name = f"{label} ({len(runs)} seed{'s' if len(runs) > 1 else ''}" + (
            f", {n_div} diverged)" if n_div else ")")
        t, _ = mean_band(ax, runs, color(i), name)
        times += t
        mark_diverged(ax, diverged.get(label, []), color(i))
        times += [p[0] for p in diverged.get(label, [])]
    time_axis(ax, times)
    log_axis(ax, "y")
    ax.set_xlabel(time_label(tk) + (" (0 = initial, then log scale)" if times else ""))
    ax.set_ylabel(error_label(metric))
    ax.set_title("learning curves")
    legend(ax, [diverged_handle()] if any(diverged.values()) else [])
    caption(fig, [settings_line(rows, context),
                  "line: mean over seeds; band: min-max over seeds"
                  + ("; X: diverged (where the run stopped)" if any(diverged.values()) else "")])
    return save(fig, path)


def error_vs_norm(rows: Sequence[dict[str, Any]], metric: str, path: Path,
                  context: Mapping[str, Any] | None = None) -> Path:
    """Test error against ||W_1||^2 (input weights), one line per run, coloured by label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels: dict[str, str] = {}
    any_div = False
    for run_rows in rows_by_run(rows).values():
        label = _label(run_rows)
        col = labels.setdefault(label, color(len(labels)))
        pts = [(r.get("w2_l0"), error_of(r, metric)) for r in run_rows]
        pts = [(x, y) for x, y in pts if _pos(x) and _pos(y)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=col, alpha=0.7, lw=1.0, marker=".", ms=3,
                    label=label if label not in ax.get_legend_handles_labels()[1] else None)
            ax.plot(xs[0], ys[0], color=col, marker="o", ms=6, mfc="none")
            if run_rows[-1].get("diverged"):
                any_div = True
                mark_diverged(ax, [(xs[-1], ys[-1])], col)
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_xlabel("squared norm of the input weights ||W1||^2")
    ax.set_ylabel(error_label(metric))
    ax.set_title("test error vs input-weight norm")
    legend(ax, [start_handle(), *([diverged_handle()] if any_div else [])])
    caption(fig, [settings_line(rows, context), "one line per run, from its open circle (the "
                  "initial network)" + ("; X: diverged" if any_div else "")])
    return save(fig, path)


def _linear_sizes(rows: Sequence[dict[str, Any]], context: Mapping[str, Any] | None
                  ) -> tuple[int, int, float]:
    kw = (context or {}).get("env_kwargs") or {}
    return int(kw.get("Lx", 100)), int(kw.get("Ly", 10)), float(kw.get("sigma_t", 0.0))


def _theory_curves(lx: int, lh: int, ly: int, lr: float, sigma_t: float, t_max: float
                   ) -> tuple[list[float], list[float], list[float]] | None:
    """Both mean-field models on 0 plus a log grid up to ``t_max`` samples (per-sample lr,
    the linear task's summed-batch convention)."""
    from np_envs import theory

    n = int(t_max)
    if n < 1:
        return None
    grid = sorted({0, *np.unique(np.rint(np.logspace(0, math.log10(n), 150))).astype(int)})
    _, two = theory.mean_field_trajectory(lx, lh, ly, lr, n, sigma_t)
    four = theory.mean_field_four_variable(lx, lh, ly, lr, n, sigma_t)["eps"]
    return ([float(g) for g in grid], [float(two[g]) for g in grid],
            [float(four[g]) for g in grid])


def eps_vs_theory(rows: Sequence[dict[str, Any]], path: Path,
                  context: Mapping[str, Any] | None = None) -> Path | None:
    """Linear task: simulated eps per rule and rate (mean, band) beside both mean-field models.

    Dashed: the two-variable map (Fig. 1A, the rows' ``theory_eps``); dotted: the four-variable
    model; both from time 0 to the last evaluation, for the rules the theory describes (the
    runner writes ``theory_eps`` for one-hidden-layer NP). Where a model ends more than 1.5x
    away from the simulation the caption says by how much, so nobody reads the gap as a bug.
    """
    if not any(_pos(r.get("eps")) for r in rows):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    lx, ly, sigma_t = _linear_sizes(rows, context)
    groups: dict[tuple[str, Any], list[list[dict[str, Any]]]] = defaultdict(list)
    for run_rows in rows_by_run(rows).values():
        groups[(_label(run_rows), run_rows[0].get("lr"))].append(run_rows)
    notes, times, drew_theory = [], [], False
    t_max = max((float(r["samples"]) for r in rows if _pos(r.get("samples"))), default=0.0)
    for i, ((label, lr), runs) in enumerate(groups.items()):
        col = color(i)
        sub = [r for run in runs for r in run]
        curves, diverged = _curves(sub, lambda r: r.get("eps"), "samples")
        name = f"{label}, lr {fmt_number(lr)}" if _pos(lr) else label
        t, sim = mean_band(ax, curves[label], col, f"{name} (simulation, n={len(runs)})")
        mark_diverged(ax, diverged.get(label, []), col)
        times += t
        hidden = str(runs[0][0].get("hidden") or "")
        theory_rule = any(r.get("theory_eps") is not None for run in runs for r in run)
        if not (theory_rule and _pos(lr) and hidden.isdigit()):
            continue
        curves_th = _theory_curves(lx, int(hidden), ly, float(lr), sigma_t, t_max)
        if curves_th is None:
            continue
        drew_theory = True
        ts, two, four = curves_th
        ceiling = 100.0 * max([two[0], *sim])  # a blown-up model ends here, off the scale
        for values, ls in ((two, "--"), (four, ":")):
            ok = [(x, y) for x, y in zip(ts, values, strict=True) if _pos(y) and y <= ceiling]
            if ok:
                ax.plot(*zip(*ok, strict=True), color=col, ls=ls, lw=1.4)
        if sim and t:
            t_last, s_last = t[-1], sim[-1]
            idx = min(range(len(ts)), key=lambda k: abs(ts[k] - t_last))
            t_last = ts[idx]
            parts = []
            for model, values in (("two-variable map", two), ("four-variable model", four)):
                if values is None or not (_pos(values[idx]) and _pos(s_last)):
                    continue
                ratio = values[idx] / s_last
                if ratio > 1.5 or ratio < 1 / 1.5:
                    where = "above" if ratio > 1 else "below"
                    r = ratio if ratio > 1 else 1 / ratio
                    parts.append(f"the {model} ends {r:.1f}x {where} it")
            if parts:
                notes.append(f"{name}: at {int(t_last)} samples " + " and ".join(parts)
                             + " (theory and simulation part late in training)")
    time_axis(ax, times)
    log_axis(ax, "y")
    ax.set_xlabel("samples seen (0 = initial, then log scale)")
    ax.set_ylabel("eps = ||W2 W1 - A||^2 / (Lx Ly)")
    ax.set_title(f"linear task (Lx={lx}, Ly={ly}, sigma_t={sigma_t:g}): error vs mean-field "
                 "theory")
    extra = [style_handle("-", "simulation (mean, band min-max)")]
    if drew_theory:
        extra += [style_handle("--", "theory: two-variable map (Eq. 12)"),
                  style_handle(":", "theory: four-variable model")]
    legend(ax, extra, fontsize=7)
    caption(fig, [settings_line(rows, context), *notes])
    return save(fig, path)


def cosines(rows: Sequence[dict[str, Any]], path: Path,
            context: Mapping[str, Any] | None = None) -> Path | None:
    """Per-layer cosine between each rule's update and SGD's, mean over seeds, vs time."""
    keys = sorted({k for r in rows for k in r if k.startswith("cos_l")})
    if not keys:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    tk = time_key(rows)
    times: list[float] = []
    by_label: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_label[r.get("label") or r.get("agent")] += [
            float(r[k]) for k in keys if isinstance(r.get(k), (int, float))
            and math.isfinite(r[k])]
    # SGD's update against its own gradient: 1 by definition, a flat line hiding the others
    reference = sorted(lb for lb, vs in by_label.items() if vs and min(vs) > 1 - 1e-6)
    hidden = sum(1 for lb, vs in by_label.items() if lb not in reference for v in vs if v <= 0)
    labels = [lb for lb in by_label if lb not in reference]
    for i, key in enumerate(keys):
        curves, _ = _curves(rows, lambda r, k=key: r.get(k), tk)
        for label, runs in curves.items():
            if label not in labels:
                continue
            t, _ = mean_band(ax, runs, color(labels.index(label)), f"{label} layer {key[5:]}",
                             ls=["-", "--", ":", "-."][i % 4], lw=1.3)
            times += t
    time_axis(ax, times)
    log_axis(ax, "y")
    ax.set_xlabel(time_label(tk) + (" (log scale)" if times else ""))
    ax.set_ylabel("cosine(update, -SGD gradient)")
    ax.set_title("alignment with SGD per layer (layer 0: input weights)")
    outside_legend(ax)
    notes = ["line: mean over seeds; band: min-max over seeds"]
    if reference:
        notes.append(f"{', '.join(reference)}: cosine 1 at every point (the reference), "
                     "not drawn")
    if hidden:
        notes.append(f"{hidden} cosine value(s) <= 0 not shown (log axis)")
    caption(fig, [settings_line(rows, context), "; ".join(notes)])
    return save(fig, path)


def compare_plots(rows: Sequence[dict[str, Any]], metric: str, out: Path,
                  context: Mapping[str, Any] | None = None) -> list[Path]:
    """Every figure of a comparison that the rows allow; returns the files written."""
    written = [learning_curves(rows, metric, out / "learning_curves.png", context),
               error_vs_norm(rows, metric, out / "error_vs_norm.png", context)]
    for extra in (eps_vs_theory(rows, out / "eps_theory.png", context),
                  cosines(rows, out / "cosine.png", context)):
        if extra is not None:
            written.append(extra)
    return written


# ---------------------------------------------------------------------------- sweeps
def _error(value: Any, metric: str) -> float | None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return 100.0 - value if metric == "accuracy" else float(value)


def error_vs_learning_rate(per_lr: Sequence[dict[str, Any]], metric: str, path: Path,
                           title: str = "") -> Path:
    """Fig. S3B: final test error (mean over seeds, min-max bar) against the learning rate,
    one panel per rule, one line per width; an X above the curves at a rate that diverged."""
    plt = pyplot()
    labels = list(dict.fromkeys(r["label"] for r in per_lr)) or ["-"]
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 3.8), squeeze=False,
                             sharey=True)
    all_errors = [e for r in per_lr if (e := _error(r.get("final_mean"), metric)) is not None]
    top = max(all_errors) * 2 if all_errors else 1.0
    any_div = False
    for ax, label in zip(axes[0], labels, strict=True):
        ax_div = False
        widths = list(dict.fromkeys(str(r.get("hidden")) for r in per_lr if r["label"] == label))
        for j, hidden in enumerate(widths):
            members = sorted((r for r in per_lr if r["label"] == label
                              and str(r.get("hidden")) == hidden), key=lambda r: r["lr"] or 0)
            pts = [(r["lr"], _error(r.get("final_mean"), metric), r) for r in members
                   if _pos(r.get("lr"))]
            ok = [(x, y) for x, y, _ in pts if _pos(y)]
            if ok:
                ax.plot(*zip(*ok, strict=True), "-o", color=color(j), ms=4,
                        label=f"width {hidden}")
            div = [(x, top) for x, y, r in pts if r.get("diverged") and not _pos(y)]
            if div:
                any_div = ax_div = True
                mark_diverged(ax, div, color(j))
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("learning rate")
        ax.set_title(label)
        legend(ax, [diverged_handle()] if ax_div else [])
    axes[0][0].set_ylabel(f"final {error_label(metric)}")
    caption(fig, [title, "points: mean over seeds of the error at the end of the budget"
                  + ("; X: every seed diverged at this rate" if any_div else "")])
    return save(fig, path)


def time_to_target_vs_width(best: Sequence[dict[str, Any]], budgets: Mapping[tuple, float],
                            path: Path, time_unit: str = "epoch", target: float | None = None,
                            title: str = "") -> Path:
    """Fig. 4E/5B: per rule the minimum over rates of the time to the target against width.

    A width whose rates never reached the target is an open marker at the budget (the dotted
    line); a rule without any filled point gets a note on the figure, never silence.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    unit = time_label(time_unit) + ("s" if time_unit == "epoch" else "")
    labels = list(dict.fromkeys(r["label"] for r in best))
    notes, xs_all, budget_max = [], [], 0.0
    for i, label in enumerate(labels):
        members = sorted((r for r in best if r["label"] == label and r.get("width")),
                         key=lambda r: r["width"])
        hit = [(int(r["width"]), float(r["min_time_target"])) for r in members
               if _pos(r.get("min_time_target"))]
        miss = [(int(r["width"]), float(budgets.get((label, r.get("hidden")), 0.0)))
                for r in members if not _pos(r.get("min_time_target"))]
        miss = [(w, b) for w, b in miss if b > 0]
        xs_all += [w for w, _ in hit + miss]
        if hit:
            ax.plot(*zip(*hit, strict=True), "-o", color=color(i), ms=6, label=label)
        if miss:
            ax.plot(*zip(*miss, strict=True), "o", color=color(i), mfc="white", ms=7, mew=1.5,
                    label=f"{label}: not reached within budget" if hit else
                    f"{label}: not reached within budget (any rate, any width)")
            budget_max = max(budget_max, *(b for _, b in miss))
        if not hit:
            why = "no --target given" if target is None else (
                f"no learning rate reached the target {target:g} within the budget"
                + (" (open markers at the budget)" if miss else ""))
            notes.append(f"{label}: no point, {why}")
    if budget_max:
        ax.axhline(budget_max, color="gray", ls=":", lw=1)
        ax.annotate(f"budget {fmt_number(budget_max)} {unit}", (0.99, budget_max),
                    xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7,
                    color="gray")
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if _pos(y)]
    if xs_all:
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlim(min(xs_all) / 1.25, max(xs_all) * 1.25)
    if ys:  # at least a factor ~5 of room, so a log axis gets several labels
        ax.set_ylim(min(ys) / 1.6, max(ys) * 2.5)
    ax.set_xlabel("hidden width")
    ax.set_ylabel(f"minimum {unit} to target (over learning rates)")
    ax.set_title("training time to the target vs width"
                 + (f" (target {target:g})" if target is not None else ""))
    outside_legend(ax)
    caption(fig, [*notes, title, "filled: mean over seeds at the fastest rate at which every seed "
                  "reached the target; open: not reached within the budget"])
    return save(fig, path)


def times_vs_learning_rate(per_lr: Sequence[dict[str, Any]], path: Path,
                           time_unit: str = "epoch", title: str = "") -> Path:
    """Fig. 4C: per rule and width, when the error is lowest, reaches the target, climbs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in per_lr:
        groups[(r["label"], str(r.get("hidden")))].append(r)
    drawn = False
    for i, ((label, hidden), members) in enumerate(groups.items()):
        members = sorted(members, key=lambda r: r["lr"] or 0)
        for key, style, name in (("time_best_mean", "-o", "min error"),
                                 ("time_climb_mean", "--s", "climb > 1.1 x start"),
                                 ("time_target_mean", ":^", "target")):
            pts = [(r["lr"], r[key]) for r in members if _pos(r.get("lr")) and _pos(r.get(key))]
            if pts:
                drawn = True
                ax.plot(*zip(*pts, strict=True), style, color=color(i), ms=4,
                        label=f"{label} width {hidden}: {name}")
    if drawn:
        log_axis(ax, "x")
        log_axis(ax, "y")
    else:
        ax.text(0.5, 0.5, "no run has a minimum, a climb or a target time", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(time_label(time_unit))
    ax.set_title("when the error is lowest, reaches the target, climbs back")
    outside_legend(ax)
    caption(fig, [title, "mean over seeds"])
    return save(fig, path)


def sweep_plots(per_lr: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]], out: Path,
                time_unit: str = "epoch", *, runs: Sequence[dict[str, Any]] = (),
                metric: str = "mse", target: float | None = None, title: str = ""
                ) -> list[Path]:
    """The sweep's figures: error vs rate (S3B), time to target vs width (4E/5B), times (4C).

    ``runs`` (per-run summaries) give each rule and width its budget, the end of its runs.
    """
    budgets: dict[tuple, float] = defaultdict(float)
    for r in runs:
        if _pos(r.get("time_end")):
            key = (r.get("label"), r.get("hidden"))
            budgets[key] = max(budgets[key], float(r["time_end"]))
    return [
        error_vs_learning_rate(per_lr, metric, out / "sweep_error_vs_lr.png", title),
        time_to_target_vs_width(best, budgets, out / "sweep_time_to_target.png", time_unit,
                                target, title),
        times_vs_learning_rate(per_lr, out / "sweep_learning_rates.png", time_unit, title),
    ]
