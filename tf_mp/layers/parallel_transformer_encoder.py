import keras
import keras_hub

from tf_mp.layers import sharding
from tf_mp.layers.parallel_multi_head_attention import attention_weight_axes


def encoder_weight_axes(model_axis):
    """Megatron axes of a BERT encoder block's weights, by path regex."""
    m = model_axis
    axes = attention_weight_axes(m, prefix=r"self_attention_layer/")
    # feedforward_intermediate_dense kernel: (hidden, ff), bias: (ff,).
    axes[r"feedforward_intermediate_dense/kernel$"] = (None, m)
    axes[r"feedforward_intermediate_dense/bias$"] = (m,)
    # feedforward_output_dense kernel: (ff, hidden), bias replicated.
    axes[r"feedforward_output_dense/kernel$"] = (m, None)
    return axes


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelTransformerEncoder(keras_hub.layers.TransformerEncoder):
    """A BERT encoder block (post-norm, GELU) split Megatron-style.

    Same sublayers, names and weight shapes as keras-hub's `TransformerEncoder`,
    so keras-hub weights copy over one to one. Attention heads are split over
    `model_axis` (query/key/value column-parallel, output row-parallel) and so
    is the feed-forward (intermediate column-parallel, output row-parallel):
    one all-reduce after attention and one after the feed-forward in the forward
    pass, their mirrors in the backward pass. Without a mesh it is keras-hub's
    `TransformerEncoder`. Masks (`padding_mask`, `attention_mask`), dtype
    policies such as `"mixed_bfloat16"` and serialization are inherited.

    Args:
        intermediate_dim: int. Feed-forward size; must be divisible by the
            `model_axis` size.
        num_heads: int. Number of heads; must be divisible by the `model_axis`
            size.
        model_axis: str. The tensor-parallel mesh axis. Defaults to `"model"`.
        **kwargs: passed to `keras_hub.layers.TransformerEncoder` (dropout,
            activation, layer_norm_epsilon, normalize_first, ...).

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def __init__(self, intermediate_dim, num_heads, model_axis="model", **kwargs):
        super().__init__(intermediate_dim, num_heads, **kwargs)
        self.model_axis = model_axis

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        return encoder_weight_axes(self.model_axis)

    def build(self, inputs_shape):
        sharding.check_divisible(self, "num_heads", self.num_heads, self.model_axis)
        sharding.check_divisible(
            self, "intermediate_dim", self.intermediate_dim, self.model_axis
        )
        with sharding.declare_axes(self.weight_axes()):
            super().build(inputs_shape)

    def call(self, inputs, *args, **kwargs):
        outputs = super().call(inputs, *args, **kwargs)
        # (batch, seq, hidden): replicated between blocks.
        return sharding.constrain(outputs, (None,), self.model_axis)

    def get_config(self):
        config = super().get_config()
        config["model_axis"] = self.model_axis
        return config
