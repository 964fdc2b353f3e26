"""How tf_mp layers declare, check and apply their own sharding.

One declaration drives both engines: on a DTensor mesh it becomes layouts of
variables and activations; under the TPUStrategy engine, XLA SPMD annotations.
"""

import keras
import tensorflow as tf

from tf_mp import tpu
from tf_mp.parallel import _dtensor_bridge

declare_axes = _dtensor_bridge.declare_axes


def constrain(x, feature_axes, model_axis):
    """Lays out an activation: dim 0 on the batch, trailing dims on `feature_axes`."""
    x = _dtensor_bridge.constrain(x, feature_axes)
    if hasattr(x, "shape") and x.shape.rank is not None:
        leading = (None,) * (x.shape.rank - len(feature_axes))
        x = tpu.annotate(x, leading + tuple(feature_axes), model_axis)
    return x


def fan_out(*tensors):
    """The tensors, each read through one gradient fan-in point.

    Pass every input of the column-parallel projections that read it (the same
    tensor may appear several times): their partial input gradients are summed
    before one reduction in the backward pass, not reduced one by one.
    """
    merged = {}
    for x in tensors:
        if id(x) not in merged:
            merged[id(x)] = _dtensor_bridge.gradient_fan_in(x)
    return tuple(merged[id(x)] for x in tensors)


def annotate(x, axes, model_axis):
    """Annotates an activation under the TPUStrategy engine only (one axis per
    dimension); DTensor propagates these layouts from the weights."""
    if hasattr(x, "shape") and x.shape.rank == len(axes):
        x = tpu.annotate(x, tuple(axes), model_axis)
    return x


def annotate_weight(variable, axes, model_axis):
    """The variable's value, annotated under the TPUStrategy engine."""
    return tpu.annotate(tf.convert_to_tensor(variable), axes, model_axis)


def dense_call(layer, inputs, training=None):
    """A `keras.layers.Dense` subclass's forward pass; under the TPUStrategy
    engine, the same math with kernel and bias annotated by `weight_axes()`."""
    if not tpu.annotations_active():
        return keras.layers.Dense.call(layer, inputs, training=training)
    axes = layer.weight_axes()
    kernel = annotate_weight(layer.kernel, axes[r"/kernel$"], layer.model_axis)
    outputs = keras.ops.matmul(inputs, kernel)
    if layer.use_bias:
        bias = annotate_weight(layer.bias, axes[r"/bias$"], layer.model_axis)
        outputs = keras.ops.add(outputs, bias)
    return layer.activation(outputs) if layer.activation else outputs


def check_divisible(layer, argument, value, axis):
    """Raises if `value` cannot be split over mesh axis `axis` of the open scope."""
    shape = _dtensor_bridge.active_mesh_shape()
    if not shape or axis not in shape or value % shape[axis] == 0:
        return
    raise ValueError(
        f"{type(layer).__name__} '{layer.name}': `{argument}` must be divisible by "
        f"the size of mesh axis '{axis}' ({shape[axis]}). Received: "
        f"{argument}={value}"
    )
