"""Keras's TensorFlow `distribution_lib`, completed while the bridge is enabled.

`keras.distribution` calls its backend module (`keras.src.backend.
distribution_lib`, on TensorFlow `keras.src.backend.tensorflow.distribution_lib`,
a prototype marked "DO NOT USE"). Keras 3.15's TensorFlow module has
`list_devices`, mesh and layout converters, and a `distribute_value` that
returns `None`; the names the JAX module has besides (`distribute_tensor`, which
`Layer.__call__` calls for `"<path>/output"` layout keys, `initialize`,
`num_processes`, `process_id`, `get_device_count`) are missing, so those public
calls raise `AttributeError` on TensorFlow. `install` sets them on the module,
`uninstall` restores it as it was.

`Distribution.distribute_dataset` is wrapped too: across processes, a model on a
tf_mp mesh must know its batches are this process's rows, so the dataset is
split by tf_mp (the same rows Keras picks, marked as such).
"""

import tensorflow as tf
from keras.src.backend import KerasTensor
from keras.src.backend.common import global_state as _keras_global_state
from keras.src.backend.tensorflow import distribution_lib as _keras_tf_dlib
from keras.src.distribution import distribution_lib as _keras_dlib

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import processes
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.output_layouts import check_axes
from tf_mp.parallel.dtensor.output_layouts import lay_out
from tf_mp.parallel.dtensor.transfer import place

_MISSING = object()
_saved = {}  # name -> the module's own attribute (or _MISSING), while installed
_ORIGINAL_DISTRIBUTE_DATASET = _keras_dlib.Distribution.distribute_dataset


def install(functions, translate):
    """Sets `functions` (`{name: function}`) on Keras's TensorFlow
    `distribution_lib`, and routes `Distribution.distribute_dataset` through
    `translate(keras_distribution)` (a `tf_mp.ModelParallel`) across processes."""
    for name, function in functions.items():
        _saved.setdefault(name, getattr(_keras_tf_dlib, name, _MISSING))
        setattr(_keras_tf_dlib, name, function)

    def distribute_dataset(self, dataset):
        if processes.num_processes() == 1:
            return _ORIGINAL_DISTRIBUTE_DATASET(self, dataset)
        if not self.auto_shard_dataset:
            raise ValueError(
                "On TensorFlow, tf_mp splits each global batch between the "
                "processes itself, so `auto_shard_dataset=False` (a dataset "
                "already split per process) is not supported. Pass every process "
                f"the same global batches. Received: {self!r}"
            )
        return translate(self).distribute_dataset(dataset)

    _keras_dlib.Distribution.distribute_dataset = distribute_dataset


def uninstall():
    """Restores Keras's TensorFlow `distribution_lib` and `distribute_dataset`."""
    for name, original in _saved.items():
        if original is _MISSING:
            delattr(_keras_tf_dlib, name)
        else:
            setattr(_keras_tf_dlib, name, original)
    _saved.clear()
    _keras_dlib.Distribution.distribute_dataset = _ORIGINAL_DISTRIBUTE_DATASET


def lay_out_on_axes(tensor, axes, mesh):
    """`tensor` laid out as `axes` on `mesh` (a `tf_mp.Mesh`).

    Eagerly: a DTensor holding the value, sharded so. Inside a tf_mp step on
    that mesh: the tensor relaid out (Keras's layout hint for an activation).
    Symbolic tensors, graphs traced outside a tf_mp step (Keras's shape
    inference) and eager layer outputs (`Layer.__call__` asks for `/output`
    keys even for a model off the mesh, whose next op could not take a DTensor;
    a model on the mesh runs its eager calls as tf_mp steps) pass through.
    """
    if isinstance(tensor, KerasTensor):
        return tensor
    if tf.executing_eagerly() and _in_layer_call():
        return tensor
    what = f"a tensor of shape {tuple(tensor.shape)}"
    source = "`distribute_tensor`'s layout"
    if tf.executing_eagerly():
        check_axes(tuple(tensor.shape), axes, mesh, what, source)
        return place(tensor, make_layout(mesh.dtensor_mesh, axes))
    distribution = state.step_distribution()
    if distribution is None:
        return tensor
    if distribution.mesh != mesh:
        raise ValueError(
            f"The layout's mesh {mesh!r} is not the mesh of the step being traced "
            f"({distribution.mesh!r}). Received: {what}, axes {tuple(axes)}"
        )
    return lay_out(tensor, axes, distribution, what, source)


def _in_layer_call():
    """Whether a Keras `Layer.__call__` is running (its call context is set)."""
    return _keras_global_state.get_global_attribute("current_call_ctx") is not None
