"""Matplotlib without a display, and numbers people read at a glance."""


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (PNG files, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as module

    return module


def readable(value):
    """`66_900` -> `"66.9k"`, `4_950` -> `"4,950"`, `0.98751` -> `"0.988"`,
    `2_500_000` -> `"2.5M"`: three significant figures, never `6.69e+04`."""
    value = float(value)
    magnitude = abs(value)
    for limit, unit, suffix in (
        (999.5e6, 1e9, "G"),
        (999.5e3, 1e6, "M"),
        (1e4, 1e3, "k"),
    ):
        if magnitude >= limit:
            return f"{value / unit:.3g}{suffix}"
    if magnitude >= 100 or value.is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def readable_axes(axis, which="xy"):
    """Tick labels of `axis` through `readable`, on the axes named in `which`
    (leave out the x axis of a bar chart: its labels are the bars' names)."""
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda value, _: readable(value))
    if "x" in which:
        axis.xaxis.set_major_formatter(formatter)
    if "y" in which:
        axis.yaxis.set_major_formatter(formatter)
