"""Host arrays written to weights on a mesh, one shard at a time.

What a weights file gives each weight is a host array (NumPy, or a
`weight_files.FileArray`): Keras's `Variable.assign` would convert it to one
whole tensor and assign that. For a weight on a mesh, these replacements of
Keras's TensorFlow `Variable._convert_to_tensor` and `Variable.assign`
(installed by `patches.py`) place it shard by shard, and write each device's
part of the variable by itself.
"""

import numpy as np
import tensorflow as tf
from keras.src.backend.common.stateless_scope import in_stateless_scope

from tf_mp.parallel.dtensor import pending_writes as writes_lib
from tf_mp.parallel.dtensor import transfer
from tf_mp.parallel.dtensor import variables
from tf_mp.parallel.dtensor import weight_files


def mesh_target(keras_variable, value):
    """`keras_variable`'s `MeshVariable` when `value` is a host array of its
    shape (NumPy, or a weight of a weights file) met eagerly, else `None`."""
    target = keras_variable.__dict__.get("_value")
    if (
        isinstance(target, variables.MeshVariable)
        and isinstance(value, np.ndarray | weight_files.FileArray)
        and value.shape == tuple(keras_variable._shape)
        and tf.executing_eagerly()
    ):
        return target
    return None


def convert_on_mesh(original):
    """A host array converted for a weight on a mesh goes to its layout shard
    by shard, without a whole tensor on the host first; a `FileArray` is read
    from its file shard by shard too."""

    def convert(self, value, dtype=None):
        target = mesh_target(self, value)
        if target is not None:
            dtype = tf.as_dtype(dtype or self._dtype).as_numpy_dtype
            return transfer.place(value, target.layout, dtype=dtype)
        if isinstance(value, weight_files.FileArray):
            value = np.asarray(value)
        return original(self, value, dtype)

    return convert


def assign_on_mesh(original):
    """A host array assigned to a weight on a mesh (what a weights file gives
    each weight) is written into each device's part of it one shard at a time
    (`MeshVariable.assign_host_array`), outside Keras's stateless scopes and
    tf_mp's deferred writes."""

    def assign(self, value):
        target = mesh_target(self, value)
        if (
            target is None
            or in_stateless_scope()
            or writes_lib.pending_writes() is not None
        ):
            return original(self, value)
        target.assign_host_array(value, dtype=target.dtype.as_numpy_dtype)
        return target.read_value()

    return assign
