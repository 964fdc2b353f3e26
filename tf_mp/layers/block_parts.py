"""Sublayers tf_mp's parallel transformer blocks build the way keras-hub's
`TransformerEncoder` and `TransformerDecoder` do: same names, shapes and
initializers, so weights copy over one to one."""

import keras

from tf_mp.layers import sharding
from tf_mp.layers.column_parallel_dense import ColumnParallelDense
from tf_mp.layers.row_parallel_dense import RowParallelDense
from tf_mp.parallel import api

_BUILD_SHAPES = ("decoder_sequence_shape", "encoder_sequence_shape")


class ParallelBlock:
    """What tf_mp's parallel transformer blocks share, mixed into a keras-hub
    block class: the `model_axis` argument and its config entry."""

    def __init__(self, intermediate_dim, num_heads, model_axis="model", **kwargs):
        # keras-hub's decoder builds itself in `__init__` when its config
        # carries its input shapes (as `from_config` passes them); the split
        # needs `model_axis` first.
        shapes = {k: kwargs.pop(k) for k in _BUILD_SHAPES if k in kwargs}
        super().__init__(intermediate_dim, num_heads, **kwargs)
        self.model_axis = model_axis
        if shapes.get("decoder_sequence_shape"):
            self.build(**shapes)

    def get_config(self):
        config = super().get_config()
        config["model_axis"] = self.model_axis
        return config


def feedforward_weight_axes(model_axis):
    """Megatron axes of a keras-hub block's feed-forward, by path regex."""
    m = model_axis
    return {
        # feedforward_intermediate_dense kernel: (hidden, ff), bias: (ff,).
        r"feedforward_intermediate_dense/kernel$": (None, m),
        r"feedforward_intermediate_dense/bias$": (m,),
        # feedforward_output_dense kernel: (ff, hidden), bias replicated.
        r"feedforward_output_dense/kernel$": (m, None),
    }


def initializers(block):
    """A fresh initializer per sublayer, as keras-hub's `clone_initializer`."""
    return {
        "kernel_initializer": _clone(block.kernel_initializer),
        "bias_initializer": _clone(block.bias_initializer),
    }


def layer_norm(block, name, inputs_shape):
    layer = keras.layers.LayerNormalization(
        epsilon=block.layer_norm_epsilon, dtype=block.dtype_policy, name=name
    )
    layer.build(inputs_shape)
    return layer


def dropout(block, name):
    return keras.layers.Dropout(block.dropout, dtype=block.dtype_policy, name=name)


def intermediate_dense(block, inputs_shape):
    """The column-parallel first feed-forward projection, built."""
    layer = ColumnParallelDense(
        block.intermediate_dim,
        activation=block.activation,
        name="feedforward_intermediate_dense",
        model_axis=block.model_axis,
        dtype=block.dtype_policy,
        **initializers(block),
    )
    layer.build(inputs_shape)
    return layer


def output_dense(block, inputs_shape):
    """The row-parallel second feed-forward projection, built."""
    layer = RowParallelDense(
        int(inputs_shape[-1]),
        name="feedforward_output_dense",
        model_axis=block.model_axis,
        dtype=block.dtype_policy,
        **initializers(block),
    )
    layer.build(tuple(inputs_shape[:-1]) + (block.intermediate_dim,))
    return layer


def check_block(block, hidden_dim):
    """Raises unless `block`'s heads fit its hidden size and its heads and
    feed-forward can be split over its `model_axis`."""
    if hidden_dim < block.num_heads:
        raise ValueError(
            f"{type(block).__name__} '{block.name}': the hidden size must be >= "
            f"`num_heads`. Received: hidden size={hidden_dim}, "
            f"num_heads={block.num_heads}"
        )
    sharding.check_divisible(block, "num_heads", block.num_heads, block.model_axis)
    sharding.check_divisible(
        block, "intermediate_dim", block.intermediate_dim, block.model_axis
    )


def reduce_first_output(outputs, model_axis):
    """A block's or attention layer's `(batch, seq, hidden)` output replicated
    (partial sums reduced, or the layout pinned); attention scores or a cache
    returned with it (a tuple) are left as they are."""
    if isinstance(outputs, tuple):
        first = api.replicate_from_model_parallel_region(outputs[0], model_axis)
        return (first, *outputs[1:])
    return api.replicate_from_model_parallel_region(outputs, model_axis)


def _clone(initializer):
    return initializer.__class__.from_config(initializer.get_config())
