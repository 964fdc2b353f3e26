"""Helpers tf_mp layers share: the Dense forward pass on both engines, and the
divisibility check. Collectives and axis declarations are in `tf_mp.parallel.api`.
"""

import keras

from tf_mp.parallel import api


def dense_call(layer, inputs, training=None):
    """A `keras.layers.Dense` subclass's forward pass; under the TPUStrategy
    engine, the same math with kernel and bias annotated by `weight_axes()`
    (a quantized layer runs Keras's own quantized call)."""
    if not api.annotations_active() or layer.quantization_mode is not None:
        return keras.layers.Dense.call(layer, inputs, training=training)
    axes = layer.weight_axes()
    kernel = api.annotate_weight(layer.kernel, axes[r"/kernel$"], layer.model_axis)
    outputs = keras.ops.matmul(inputs, kernel)
    if layer.use_bias:
        bias = api.annotate_weight(layer.bias, axes[r"/bias$"], layer.model_axis)
        outputs = keras.ops.add(outputs, bias)
    return layer.activation(outputs) if layer.activation else outputs


def check_divisible(layer, argument, value, axis):
    """Raises if `value` cannot be split over mesh axis `axis` of the open scope."""
    shape = api.active_mesh_shape()
    if not shape or axis not in shape or value % shape[axis] == 0:
        return
    raise ValueError(
        f"{type(layer).__name__} '{layer.name}': `{argument}` must be divisible by "
        f"the size of mesh axis '{axis}' ({shape[axis]}). Received: "
        f"{argument}={value}"
    )
