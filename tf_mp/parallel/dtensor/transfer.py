"""Host <-> mesh transfers: place host values on a layout, bring DTensors home."""

import numpy as np
import tensorflow as tf
from tensorflow.experimental import dtensor

from tf_mp.parallel.dtensor.layouts import layout_axes
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.layouts import shard_indices
from tf_mp.parallel.dtensor.layouts import variable_layout
from tf_mp.parallel.dtensor.processes import spans_processes
from tf_mp.parallel.dtensor.weight_files import FileArray


def is_on_mesh(value):
    """Whether `value` is a DTensor (a tensor laid out on a mesh)."""
    return tf.is_tensor(value) and dtensor.is_dtensor(value)


def place(value, layout, rows=None, row_dim=0, dtype=None):
    """Places a host value (or a DTensor with another layout) on `layout`.

    Host values are sliced on the host and each device receives only its shard
    (as `dtype`, when given). A `weight_files.FileArray` is read shard by
    shard from its file.

    With `rows=(first_row, global_rows)`, the host value holds only rows
    `first_row...` of dimension `row_dim` of the global value: this process's
    rows, when each process of the mesh reads its own (`datasets.py`).
    """
    if is_on_mesh(value):
        if dtensor.fetch_layout(value) == layout:
            return value
        return dtensor.relayout(value, layout)
    array = value if isinstance(value, FileArray) else np.asarray(value)
    if array.ndim != layout.rank:
        raise ValueError(
            f"Cannot place a value of shape {array.shape} on a layout of rank "
            f"{layout.rank} ({layout_axes(layout)})."
        )
    shape = list(array.shape)
    first_row = 0
    if rows is not None:
        first_row, shape[row_dim] = rows
    devices = layout.mesh.local_devices()
    holders = {}  # part (start, stop per dimension) -> (index, positions)
    for position, index in enumerate(shard_indices(layout, shape)):
        if first_row:
            index = list(index)
            held = index[row_dim]
            index[row_dim] = slice(held.start - first_row, held.stop - first_row)
            index = tuple(index)
        key = tuple((s.start, s.stop) for s in index)
        holders.setdefault(key, (index, []))[1].append(position)
    # Devices holding the same part (a replicated dimension) get it from one
    # read, and one part at a time is on the host.
    shards = [None] * len(devices)
    for index, positions in holders.values():
        part = np.asarray(array[index], dtype=dtype)
        for position in positions:
            # Made on its device: `pack` then holds it, not a copy of it.
            with tf.device(devices[position]):
                shards[position] = tf.convert_to_tensor(part)
        del part
    return dtensor.pack(shards, layout)


def to_host(value):
    """A DTensor's (or mesh variable's) global value as a regular host tensor.

    Anything else is returned unchanged.
    """
    if isinstance(value, tf.Variable):
        value = value.read_value()
    if not is_on_mesh(value):
        return value
    layout = dtensor.fetch_layout(value)
    if not layout.is_fully_replicated() and spans_processes(layout.mesh):
        # This process holds only its own shards: gather the rest (every
        # process of the mesh runs the same program, so all make this call).
        layout = dtensor.Layout.replicated(layout.mesh, layout.rank)
        value = dtensor.relayout(value, layout)
    shards = dtensor.unpack(value)
    if layout.is_fully_replicated():
        return tf.identity(shards[0])
    global_shape = [int(d) for d in value.shape]
    out = np.empty(global_shape, dtype=value.dtype.as_numpy_dtype)
    for index, shard in zip(shard_indices(layout, global_shape), shards):
        out[index] = shard.numpy()
    return tf.convert_to_tensor(out)


def replica_values(variables):
    """Each device's own copy of fully replicated mesh variables.

    Returns one list per variable: its value on every device of its mesh, in
    mesh order. `dtensor.unpack` of a replicated value is no witness that the
    copies agree (eagerly it showed equal copies of weights that differed).
    Here each device keeps its own copy as one row of a tensor split over every
    mesh axis, so the rows are what the devices really hold.
    """
    layouts = [variable_layout(v) for v in variables]
    for variable, layout in zip(variables, layouts):
        if layout is None or not layout.is_fully_replicated():
            raise ValueError(
                "`variables` must be fully replicated mesh variables. Received: "
                f"{getattr(variable, 'path', variable)} with layout {layout}"
            )
    values = [getattr(v, "_value", v) for v in variables]

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def rows():
        out = []
        for value, layout in zip(values, layouts):
            mesh = layout.mesh
            axes = tuple(mesh.dim_names)
            copy = tf.convert_to_tensor(value)
            rank = copy.shape.rank
            # `tf.expand_dims`, not `copy[None]`: the latter crashes DTensor.
            stacked = tf.tile(tf.expand_dims(copy, 0), [mesh.size] + [1] * rank)
            stacked = tf.reshape(
                stacked, [mesh.dim_size(a) for a in axes] + list(copy.shape)
            )
            out.append(
                dtensor.relayout(stacked, make_layout(mesh, axes + (None,) * rank))
            )
        return out

    return [
        [np.reshape(part.numpy(), variable.shape) for part in dtensor.unpack(row)]
        for variable, row in zip(variables, rows())
    ]
