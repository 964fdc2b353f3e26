"""Layer outputs laid out as the layout map's `"<layer path>/output"` keys say.

Keras applies such keys in `Layer.__call__` under its own distribution (JAX);
here the layers of a model on a mesh whose path matches one get their `call`
wrapped when the model's step functions are made. The wrapper changes nothing
outside a traced tf_mp step.
"""

import tensorflow as tf
from keras.src import tree
from keras.src.backend.common import masking as _keras_masking
from tensorflow.experimental import dtensor

from tf_mp.parallel import state
from tf_mp.parallel.dtensor.layouts import make_layout


def pin_layer_outputs(model, distribution):
    """Wraps the `call` of every layer of `model` that has an output key."""
    for layer in model._flatten_layers(include_self=False):
        regex, axes = distribution.layout_map.output_axes(layer.path)
        if axes is not None:
            _wrap(layer, regex, axes)


def _wrap(layer, regex, axes):
    original = getattr(layer, "_tf_mp_original_call", None) or layer.call

    def call(*args, **kwargs):
        outputs = original(*args, **kwargs)
        return tree.map_structure(lambda x: _pin(x, layer, regex, axes), outputs)

    object.__setattr__(layer, "_tf_mp_original_call", original)
    object.__setattr__(layer, "call", call)


def _pin(x, layer, regex, axes):
    distribution = state.step_distribution()
    if distribution is None or not isinstance(x, tf.Tensor):
        return x
    return lay_out(
        x,
        axes,
        distribution,
        f"the output of layer '{layer.path}'",
        f"the layout-map key {regex!r}",
    )


def lay_out(x, axes, distribution, what, source):
    """`x`, a tensor of a step traced on `distribution`'s mesh, relaid out to
    `axes`; errors name `what` the tensor is and the `source` of `axes`."""
    check_axes(tuple(x.shape), axes, distribution.mesh, what, source)
    y = dtensor.relayout(x, make_layout(distribution.mesh.dtensor_mesh, axes))
    mask = _keras_masking.get_keras_mask(x)
    if mask is not None:
        _keras_masking.set_keras_mask(y, mask)
    return y


def check_axes(shape, axes, mesh, what, source):
    """Raises a `ValueError` naming `what` and `source` unless `axes` fits a
    tensor of `shape` on `mesh` (rank, axis names, divisibility)."""
    if len(shape) != len(axes):
        raise ValueError(
            f"The layout {tuple(axes)} ({source}) has rank {len(axes)}, but {what} "
            f"has shape {shape}. Give one entry (an axis name or None) per dimension."
        )
    sizes = mesh.shape
    for dim, axis in enumerate(axes):
        if axis is not None and axis not in sizes:
            raise ValueError(
                f"Unknown mesh axis {axis!r} in the layout {tuple(axes)} ({source}) "
                f"for {what}. The mesh has axes {mesh.axis_names}."
            )
        if axis is not None and shape[dim] is not None and shape[dim] % sizes[axis]:
            raise ValueError(
                f"Dimension {dim} of {what} (shape {shape}) must be divisible by "
                f"the size of mesh axis {axis!r} ({sizes[axis]}), as {source} asks."
            )
