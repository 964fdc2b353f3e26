"""`shard_report`: how a model's variables are laid out and what each device holds."""

import dataclasses
import math

import numpy as np

from tf_mp.parallel import dtensor as _engine


@dataclasses.dataclass(frozen=True)
class ShardRow:
    path: str
    shape: tuple
    dtype: str
    axes: tuple  # One mesh axis name or None per dimension; None if off-mesh.
    bytes: int  # Global size.
    bytes_per_device: int  # Size of the largest shard.


@dataclasses.dataclass(frozen=True)
class ShardReport:
    rows: tuple

    @property
    def total_bytes(self):
        return sum(r.bytes for r in self.rows)

    @property
    def bytes_per_device(self):
        return sum(r.bytes_per_device for r in self.rows)

    @property
    def fraction_per_device(self):
        """Per-device bytes as a fraction of the unsharded total."""
        return self.bytes_per_device / self.total_bytes if self.total_bytes else 0.0

    def to_dict(self):
        return {
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "total_bytes": self.total_bytes,
            "bytes_per_device": self.bytes_per_device,
        }

    def __str__(self):
        header = ("path", "shape", "layout", "bytes", "bytes/device")
        lines = [
            (
                r.path,
                str(r.shape),
                _axes_text(r.axes),
                f"{r.bytes:,}",
                f"{r.bytes_per_device:,}",
            )
            for r in self.rows
        ]
        lines.append(
            ("TOTAL", "", "", f"{self.total_bytes:,}", f"{self.bytes_per_device:,}")
        )
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(5)]

        def fmt(row):
            left = [row[i].ljust(widths[i]) for i in range(3)]
            right = [row[i].rjust(widths[i]) for i in range(3, 5)]
            return "  ".join(left + right)

        rule = "  ".join("-" * w for w in widths)
        return "\n".join(
            [fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])]
        )


def _axes_text(axes):
    if axes is None:
        return "(off mesh)"
    return "(" + ", ".join("-" if a is None else a for a in axes) + ")"


def shard_report(model, include_optimizer=False):
    """Per-variable layout and per-device bytes of a model.

    Args:
        model: a Keras model (or layer).
        include_optimizer: bool. Also list the optimizer's variables. Defaults to
            `False`.

    Returns:
        A `ShardReport`; `print(report)` shows a table, `report.to_dict()` the data.
    """
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer and optimizer is not None and not isinstance(optimizer, str):
        variables += list(optimizer.variables)
    rows = []
    for variable in variables:
        shape = tuple(int(d) for d in variable.shape)
        itemsize = np.dtype(variable.dtype).itemsize
        size = math.prod(shape) * itemsize
        sharding = _engine.sharding_of(variable)
        if sharding is None:
            axes, per_device = None, size
        else:
            axes, local = sharding
            per_device = math.prod(local) * itemsize
        rows.append(
            ShardRow(
                path=variable.path,
                shape=shape,
                dtype=str(variable.dtype),
                axes=axes,
                bytes=size,
                bytes_per_device=per_device,
            )
        )
    return ShardReport(rows=tuple(rows))
