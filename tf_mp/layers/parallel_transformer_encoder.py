import keras
import keras_hub

from tf_mp.layers import block_parts as parts
from tf_mp.layers.parallel_multi_head_attention import ParallelMultiHeadAttention
from tf_mp.layers.parallel_multi_head_attention import attention_weight_axes
from tf_mp.parallel import api


def encoder_weight_axes(model_axis):
    """Megatron axes of a BERT encoder block's weights, by path regex."""
    m = model_axis
    axes = attention_weight_axes(m, prefix=r"self_attention_layer/")
    axes.update(parts.feedforward_weight_axes(m))
    return axes


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelTransformerEncoder(
    parts.ParallelBlock, keras_hub.layers.TransformerEncoder
):
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

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        return encoder_weight_axes(self.model_axis)

    def build(self, inputs_shape):
        hidden_dim = int(inputs_shape[-1])
        parts.check_block(self, hidden_dim)
        # keras-hub's sublayers, names, shapes and creation order (the order of
        # `get_weights()`), made of tf_mp's parallel layers.
        with api.declare_axes(self.weight_axes()):
            self._self_attention_layer = ParallelMultiHeadAttention(
                num_heads=self.num_heads,
                key_dim=hidden_dim // self.num_heads,
                dropout=self.dropout,
                name="self_attention_layer",
                model_axis=self.model_axis,
                dtype=self.dtype_policy,
                **parts.initializers(self),
            )
            self._self_attention_layer.build(inputs_shape, inputs_shape)
            self._self_attention_layer_norm = parts.layer_norm(
                self, "self_attention_layer_norm", inputs_shape
            )
            self._self_attention_dropout = parts.dropout(self, "self_attention_dropout")
            self._feedforward_layer_norm = parts.layer_norm(
                self, "feedforward_layer_norm", inputs_shape
            )
            self._feedforward_intermediate_dense = parts.intermediate_dense(
                self, inputs_shape
            )
            self._feedforward_output_dense = parts.output_dense(self, inputs_shape)
            self._feedforward_dropout = parts.dropout(self, "feedforward_dropout")
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        outputs = super().call(
            inputs,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )
        # (batch, seq, hidden): replicated between blocks (the feed-forward's
        # partial sums are already reduced; this pins the layout).
        return parts.reduce_first_output(outputs, self.model_axis)
