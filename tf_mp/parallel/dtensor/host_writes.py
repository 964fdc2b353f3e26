"""Host arrays written to weights on a mesh, placed one shard at a time.

What a weights file gives each weight is a host array (NumPy, or a
`weight_files.FileArray`): Keras's `Variable.assign` would convert it to one
whole host tensor first. For a weight on a mesh, this replacement of Keras's
TensorFlow `Variable._convert_to_tensor` (installed by `patches.py`) places it
on the weight's layout shard by shard, each shard made on its device.
"""

import numpy as np
import tensorflow as tf

from tf_mp.parallel.dtensor import transfer
from tf_mp.parallel.dtensor import variables
from tf_mp.parallel.dtensor import weight_files


def convert_on_mesh(original):
    """A host array of a weight's shape converted eagerly for a weight on a
    mesh goes to its layout shard by shard, without a whole tensor on the host
    first; a `FileArray` is read from its file shard by shard too."""

    def convert(self, value, dtype=None):
        target = self.__dict__.get("_value")
        if (
            isinstance(target, variables.MeshVariable)
            and isinstance(value, np.ndarray | weight_files.FileArray)
            and value.shape == tuple(self._shape)
            and tf.executing_eagerly()
        ):
            dtype = tf.as_dtype(dtype or self._dtype).as_numpy_dtype
            return transfer.place(value, target.layout, dtype=dtype)
        if isinstance(value, weight_files.FileArray):
            value = np.asarray(value)
        return original(self, value, dtype)

    return convert
