"""PNG figures the commands write (matplotlib, no display needed)."""

from tf_mp.utils.figures import pyplot as _pyplot
from tf_mp.utils.figures import readable
from tf_mp.utils.figures import readable_axes


def training_curves(history, path):
    """Loss and every metric per epoch, training and validation side by side."""
    pyplot = _pyplot()
    names = [k for k in history if not k.startswith("val_")]
    figure, axes = pyplot.subplots(
        1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False
    )
    for axis, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], "o-", label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], "o-", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(f"{name} per epoch")
        axis.grid(alpha=0.3)
        axis.legend()
        readable_axes(axis)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def comparison(rows, path):
    """Bars per model for each figure: `rows` = {model: {figure: value}}."""
    pyplot = _pyplot()
    figures = list(next(iter(rows.values())))
    figure, axes = pyplot.subplots(
        1, len(figures), figsize=(4 * len(figures), 3.5), squeeze=False
    )
    for axis, name in zip(axes[0], figures):
        values = [rows[m][name] for m in rows]
        bars = axis.bar(list(rows), values, color=[f"C{i}" for i in range(len(rows))])
        axis.bar_label(bars, labels=[readable(v) for v in values])
        axis.set_title(f"{name}: {' vs '.join(rows)}")
        axis.margins(y=0.15)  # Room for the bar labels.
        readable_axes(axis, "y")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
