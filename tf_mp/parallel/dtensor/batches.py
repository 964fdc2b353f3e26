"""Batches onto the mesh: every input tensor split along the batch axis."""

import numpy as np
import tensorflow as tf
from keras.src import tree

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
    axis = distribution.batch_axis
    parts = distribution.mesh.shape[axis] if axis else 1
    leaves = [x for x in tree.flatten(data) if x is not None]
    sizes = {int(np.shape(x)[0]) for x in leaves if np.ndim(x) > 0}
    size = min(sizes) if sizes else 0
    padded = size
    if size % parts:
        if not pad:
            raise ValueError(
                f"The batch size must be divisible by the size of mesh axis "
                f"'{axis}' ({parts}). Received: batch_size={size}. Batch with a "
                f"multiple of {parts} and drop the remainder (for a dataset, "
                "`dataset.batch(batch_size, drop_remainder=True)`; for arrays, a "
                "sample count that is a multiple of the batch size)."
            )
        padded = size + parts - size % parts

    def shard(x):
        if x is None:
            return None
        if isinstance(x, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(
                "Inputs on a tf_mp mesh must be dense tensors. Received: "
                f"{type(x).__name__}. Convert it with `.to_tensor()` first."
            )
        if is_on_mesh(x):
            return x
        x = np.asarray(x)
        if x.ndim == 0:
            return place(x, replicated_layout(mesh, 0))
        if padded != x.shape[0]:
            extra = np.repeat(x[-1:], padded - x.shape[0], axis=0)
            x = np.concatenate([x, extra], axis=0)
        axes = (axis if parts > 1 else None,) + (None,) * (x.ndim - 1)
        return place(x, make_layout(mesh, axes))

    return tree.map_structure(shard, data), size
