"""The Pareto front of a trial table, and its plot.

Keras Tuner's `MultiObjective` ranks trials by a plain sum of objectives; a
front keeps every trial that no other trial beats on all objectives at once.
"""

import math

from tf_mp.utils import figures


def pareto_front(rows, maximize=(), minimize=()):
    """The rows of `rows` that no other row dominates.

    Row `a` dominates row `b` when `a` is at least as good on every objective
    and strictly better on one. Rows missing an objective (or holding NaN) are
    left out. Ties (equal on every objective) are all kept.

    Args:
        rows: a list of dicts (e.g. `SearchResult.trials`).
        maximize: keys whose larger values are better (e.g. `"val_accuracy"`).
        minimize: keys whose smaller values are better (e.g. parameters).

    Returns:
        The non-dominated rows, in their input order.
    """
    if not maximize and not minimize:
        raise ValueError("Give at least one objective in `maximize` or `minimize`.")
    keys = list(maximize) + list(minimize)
    signs = [1.0] * len(maximize) + [-1.0] * len(minimize)
    points = []
    for row in rows:
        values = [row.get(key) for key in keys]
        if all(_number(v) for v in values):
            points.append((row, [s * float(v) for s, v in zip(signs, values)]))

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [
        row
        for row, point in points
        if not any(dominates(other, point) for _, other in points)
    ]


def panel_front(rows, objective, key, maximize=True):
    """The front of `objective` against `key` alone (smaller `key` better),
    sorted by `key`: the staircase one panel of `plot_front` draws. Two trials
    of the same size give one step, never a vertical segment."""
    if maximize:
        edge = pareto_front(rows, maximize=[objective], minimize=[key])
    else:
        edge = pareto_front(rows, minimize=[objective, key])
    best = {}
    for row in edge:  # Ties on both figures: one point.
        best.setdefault((row[key], row[objective]), row)
    return sorted(best.values(), key=lambda r: r[key])


def plot_front(
    rows, front, path, objective, size_key, latency_key, baseline=None, maximize=True
):
    """Writes a PNG: `objective` against size and against latency.

    Each panel draws its own front (the best `objective` for a size, or for a
    latency) as a staircase, and rings the trials of `front` (the front over
    all the objectives at once).
    """
    pyplot = figures.pyplot()
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    on_front = {id(r) for r in front}
    for axis, key, label in (
        (axes[0], size_key, "encoder parameters"),
        (axes[1], latency_key, "latency at batch 1 (ms)"),
    ):
        scored = [r for r in rows if _number(r.get(objective)) and _number(r.get(key))]
        axis.scatter(
            [r[key] for r in scored],
            [r[objective] for r in scored],
            color="tab:gray",
            label=f"trials ({len(scored)})",
            zorder=2,
        )
        ringed = [r for r in scored if id(r) in on_front]
        axis.scatter(
            [r[key] for r in ringed],
            [r[objective] for r in ringed],
            s=150,
            facecolors="none",
            edgecolors="tab:red",
            label="Pareto front, all objectives",
            zorder=3,
        )
        edge = panel_front(scored, objective, key, maximize)
        if len(edge) > 1:
            axis.step(
                [r[key] for r in edge],
                [r[objective] for r in edge],
                where="post",
                color="tab:red",
                alpha=0.5,
                label=f"best {objective} for its {label.split(' (')[0]}",
            )
        if baseline and _number(baseline.get(objective)):
            axis.axhline(
                baseline[objective],
                color="tab:blue",
                ls="--",
                label=f"teacher ({figures.readable(baseline[objective])})",
            )
        axis.set_title(f"{objective} against {label.split(' (')[0]}")
        axis.set_xlabel(label)
        axis.set_ylabel(objective)
        axis.margins(0.15)  # Two or three points sit inside the frame.
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize="small")
        figures.readable_axes(axis)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def _number(value):
    return isinstance(value, (int, float)) and not math.isnan(value)
