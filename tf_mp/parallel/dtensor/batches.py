"""Batches onto the mesh: every input tensor split along the batch axis."""

import numpy as np
import tensorflow as tf
from keras.src import tree

from tf_mp.parallel.dtensor import datasets
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.layouts import replicated_layout
from tf_mp.parallel.dtensor.transfer import is_on_mesh
from tf_mp.parallel.dtensor.transfer import place


def distribute_batch(data, distribution, pad=False):
    """Shards every tensor in `data` along the distribution's batch axis.

    Returns `(data, batch_size)`. With `pad=True` a batch that does not divide is
    padded by repeating its last row (callers trim the outputs); otherwise it
    raises a `ValueError`.
    """
    mesh = distribution.mesh.dtensor_mesh
    axis, parts = _batch_axis(distribution)
    leaves = [x for x in tree.flatten(data) if x is not None]
    sizes = {int(np.shape(x)[0]) for x in leaves if np.ndim(x) > 0}
    size = min(sizes) if sizes else 0
    rows = _rows_of_this_process(size)
    if rows is not None:
        pad = False  # Batches of distributed datasets are all full.
        size = rows[1]
    padded = size
    if size % parts:
        if not pad:
            _raise_not_divisible(axis, parts, size)
        padded = size + parts - size % parts

    def shard(x):
        if x is None:
            return None
        _check_dense(x)
        if is_on_mesh(x):
            return x
        x = np.asarray(x)
        if x.ndim == 0:
            return place(x, replicated_layout(mesh, 0))
        if rows is None and padded != x.shape[0]:
            extra = np.repeat(x[-1:], padded - x.shape[0], axis=0)
            x = np.concatenate([x, extra], axis=0)
        # On the batch axis even where it has one device. DTensor compiles a
        # replicated int32/int64 input of fewer than 20 elements (a small
        # batch of labels or token ids) into the function as a constant, and
        # compiles the function again the first time that value changes; an
        # input laid out on a mesh axis stays an input.
        axes = (axis,) + (None,) * (x.ndim - 1)
        return place(x, make_layout(mesh, axes), rows=rows)

    return tree.map_structure(shard, data), size


def distribute_stacked_batches(batches, distribution):
    """Several batches as one transfer: each input's batches stacked on a new
    leading axis (`[steps, batch, ...]`), split along the batch axis (axis 1).

    Returns `None` when the batches cannot be stacked (different structures or
    shapes, values already on the mesh, scalars); place them one by one then.
    """
    for data in batches:
        for x in tree.flatten(data):
            if x is None:
                continue
            _check_dense(x)
            if is_on_mesh(x) or np.ndim(x) == 0:
                return None
    try:
        stacked = tree.map_structure(
            lambda *xs: (
                None if xs[0] is None else np.stack([np.asarray(x) for x in xs])
            ),
            *batches,
        )
    except (ValueError, TypeError):  # Different shapes or structures.
        return None
    mesh = distribution.mesh.dtensor_mesh
    axis, parts = _batch_axis(distribution)
    size = min(x.shape[1] for x in tree.flatten(stacked) if x is not None)
    rows = _rows_of_this_process(size)
    if rows is not None:
        size = rows[1]
    if size % parts:
        _raise_not_divisible(axis, parts, size)

    def shard(x):
        if x is None:
            return None
        # Laid out on the batch axis even where it has one device: a step's
        # `tf.gather` of its batch must keep the layout the model's inputs get
        # (an unsharded stack failed DTensor's GatherV2 rule for BERT on 1x2).
        axes = (None, axis) + (None,) * (x.ndim - 2)
        return place(x, make_layout(mesh, axes), rows=rows, row_dim=1)

    return tree.map_structure(shard, stacked)


def unstack_batches(stacked, steps):
    """The `steps` batches of `distribute_stacked_batches`, inside a traced step
    (each device keeps its own rows: no communication). `steps` is a Python int:
    a function traced with `reduce_retracing` may not know the leading size."""
    leaves = tree.flatten(stacked)
    parts = [None if x is None else tf.unstack(x, num=steps, axis=0) for x in leaves]
    return [
        tree.pack_sequence_as(stacked, [None if p is None else p[i] for p in parts])
        for i in range(steps)
    ]


def batch_of_stacked(stacked, index):
    """Batch `index` (a tensor) of `distribute_stacked_batches`, inside a traced
    step; each device keeps its own rows."""
    leaves = [None if x is None else tf.gather(x, index) for x in tree.flatten(stacked)]
    return tree.pack_sequence_as(stacked, leaves)


def _rows_of_this_process(size):
    """`(first_row, global_rows)` when the batches being fed hold only this
    process's rows of each global batch (a distributed dataset), else `None`."""
    local = datasets.local_rows()
    if local is None:
        return None
    first_row, rows, global_rows = local
    if size != rows:
        raise ValueError(
            f"A batch of a dataset made by `distribute_dataset` has {size} rows, "
            f"not this process's {rows} of {global_rows}: map or batch the "
            "dataset before `distribute_dataset`, not after."
        )
    return first_row, global_rows


def _batch_axis(distribution):
    return distribution.batch_axis, distribution.num_replicas_in_sync


def _check_dense(x):
    if isinstance(x, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(
            "Inputs on a tf_mp mesh must be dense tensors. Received: "
            f"{type(x).__name__}. Convert it with `.to_tensor()` first."
        )


def _raise_not_divisible(axis, parts, size):
    raise ValueError(
        f"The batch size must be divisible by the size of mesh axis "
        f"'{axis}' ({parts}). Received: batch_size={size}. Batch with a "
        f"multiple of {parts} and drop the remainder (for a dataset, "
        "`dataset.batch(batch_size, drop_remainder=True)`; for arrays, a "
        "sample count that is a multiple of the batch size)."
    )
