"""Datasets read per process: each process feeds only the rows its devices hold.

`distribute_dataset` is Keras's convention (`Distribution.distribute_dataset` on
JAX): a `tf.data` pipeline of global batches becomes, in each process, the
pipeline of its share of every global batch. The share is the rows of the batch
coordinates this process's devices hold, so it depends on the mesh, not only on
the process count: on a (2, 2) mesh over 2 processes, each process reads half of
every batch; on (1, 4) the batch is not split at all and every process reads
all of it (as Keras does when model replicas span processes).

Models called with such a dataset place each batch as this process's rows of the
global batch (`batches.py`); their outputs are gathered to the global batch in
every process.
"""

import tensorflow as tf
from tensorflow.python.data.experimental.ops import distribute as tf_data_distribute

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import processes

_MARK = "_tf_mp_rows_of_process"


def local_batch_coordinates(distribution):
    """`(first, count, parts)`: the batch-axis coordinates this process's
    devices hold (contiguous), and the batch axis size."""
    axis = distribution.batch_axis
    mesh = distribution.mesh.dtensor_mesh
    if not axis:
        return 0, 1, 1
    parts = mesh.dim_size(axis)
    coordinates = sorted({loc[axis] for loc in mesh.local_device_locations()})
    first, count = coordinates[0], len(coordinates)
    if coordinates != list(range(first, first + count)):
        raise ValueError(
            f"This process holds batch coordinates {coordinates} of mesh axis "
            f"{axis!r}, which are not contiguous, so it cannot read its rows as one "
            "block. Make the batch axis the mesh's first axis. Received: mesh "
            f"{distribution.mesh.shape}"
        )
    return first, count, parts


def distribute_dataset(dataset, distribution):
    """This process's share of every batch of `dataset` (global batches)."""
    if processes.num_processes() == 1:
        return dataset
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "Only a `tf.data.Dataset` can be split between processes. Received: "
            f"{type(dataset).__name__}"
        )
    first, count, parts = local_batch_coordinates(distribution)
    if count == parts:  # This process's devices hold every row.
        return dataset
    sizes = {
        spec.shape[0] if spec.shape.rank else None
        for spec in tf.nest.flatten(dataset.element_spec)
    }
    global_rows = sizes.pop() if len(sizes) == 1 else None
    if global_rows is None:
        known = int(tf_data_distribute.compute_batch_size(dataset).numpy())
        raise ValueError(
            "Each process must read a share of every batch, so all batches must "
            "have the same, known size: batch the dataset with "
            "`dataset.batch(batch_size, drop_remainder=True)`. Received: batch size "
            f"{known if known > 0 else 'unknown'}, element_spec="
            f"{dataset.element_spec}"
        )
    if global_rows % parts:
        raise ValueError(
            f"The batch size must be divisible by the size of mesh axis "
            f"{distribution.batch_axis!r} ({parts}). Received: batch_size={global_rows}"
        )
    chunk = global_rows // parts

    def rows_of_this_process(*batch):
        def take(x):
            rest = tf.shape(x)[1:]
            x = tf.reshape(x, tf.concat([[parts, chunk], rest], 0))
            return tf.reshape(x[first : first + count], tf.concat([[-1], rest], 0))

        batch = tf.nest.map_structure(take, batch)
        return batch if len(batch) > 1 else batch[0]

    local = dataset.map(rows_of_this_process, num_parallel_calls=tf.data.AUTOTUNE)
    local = local.prefetch(tf.data.AUTOTUNE)
    object.__setattr__(local, _MARK, (first * chunk, count * chunk, global_rows))
    return local


def reading(x):
    """While a model reads `x`: whether its batches are one process's rows
    (`state.Current.local_rows`)."""
    return state.changed(local_rows=getattr(x, _MARK, None))


def local_rows():
    """`(first_row, rows, global_rows)` of the batches being fed, when they are
    this process's rows of each global batch; else `None`."""
    return state.get().local_rows
