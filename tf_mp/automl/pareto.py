"""The Pareto front of a trial table, and its plot.

Keras Tuner's `MultiObjective` ranks trials by a plain sum of objectives; a
front keeps every trial that no other trial beats on all objectives at once.
"""

import math


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


def plot_front(rows, front, path, objective, size_key, latency_key, baseline=None):
    """Writes a PNG: objective against size and against latency, front marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, key, label in (
        (axes[0], size_key, "encoder parameters"),
        (axes[1], latency_key, "latency at batch 1 (ms)"),
    ):
        scored = [r for r in rows if _number(r.get(objective)) and _number(r.get(key))]
        axis.scatter(
            [r[key] for r in scored],
            [r[objective] for r in scored],
            color="tab:gray",
            label="trials",
        )
        edge = sorted((r for r in front if _number(r.get(key))), key=lambda r: r[key])
        axis.plot(
            [r[key] for r in edge],
            [r[objective] for r in edge],
            "o-",
            color="tab:red",
            label="Pareto front",
        )
        if baseline and _number(baseline.get(key)):
            axis.axhline(
                baseline[objective], color="tab:blue", ls="--", label="teacher"
            )
        axis.set_xlabel(label)
        axis.set_ylabel(objective)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def _number(value):
    return isinstance(value, (int, float)) and not math.isnan(value)
