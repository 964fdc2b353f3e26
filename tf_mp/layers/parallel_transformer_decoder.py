import keras
import keras_hub

from tf_mp.layers import block_parts as parts
from tf_mp.layers.parallel_cached_multi_head_attention import (
    ParallelCachedMultiHeadAttention,
)
from tf_mp.layers.parallel_multi_head_attention import attention_weight_axes
from tf_mp.parallel import api


def decoder_weight_axes(model_axis):
    """Megatron axes of a keras-hub decoder block's weights, by path regex."""
    m = model_axis
    axes = attention_weight_axes(m, prefix=r"(self|cross)_attention/")
    axes.update(parts.feedforward_weight_axes(m))
    return axes


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelTransformerDecoder(
    parts.ParallelBlock, keras_hub.layers.TransformerDecoder
):
    """keras-hub's `TransformerDecoder` block (GPT-2's), split Megatron-style.

    Same sublayers, names, weight shapes and creation order as keras-hub's
    block, so its weights copy over one to one. Self-attention (and
    cross-attention, when the block is built with an encoder sequence) is split
    by heads over `model_axis` (`ParallelCachedMultiHeadAttention`, which keeps
    keras-hub's key/value cache arguments), and the feed-forward is split
    column- then row-parallel: one all-reduce after each attention and one
    after the feed-forward in the forward pass. Causal masks, padding masks,
    `normalize_first`, dtype policies and serialization are inherited. Without
    a mesh it is keras-hub's `TransformerDecoder`.

    Args:
        intermediate_dim: int. Feed-forward size; must be divisible by the
            `model_axis` size.
        num_heads: int. Number of heads; must be divisible by the `model_axis`
            size.
        model_axis: str. The tensor-parallel mesh axis. Defaults to `"model"`.
        **kwargs: passed to `keras_hub.layers.TransformerDecoder`.

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        return decoder_weight_axes(self.model_axis)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        self._decoder_sequence_shape = decoder_sequence_shape
        self._encoder_sequence_shape = encoder_sequence_shape
        hidden_dim = int(decoder_sequence_shape[-1])
        parts.check_block(self, hidden_dim)
        head_dim = hidden_dim // self.num_heads
        with api.declare_axes(self.weight_axes()):
            self._self_attention_layer = self._attention("self_attention", head_dim)
            self._self_attention_layer.build(
                decoder_sequence_shape, decoder_sequence_shape
            )
            self._self_attention_layer_norm = parts.layer_norm(
                self, "self_attention_layer_norm", decoder_sequence_shape
            )
            self._self_attention_dropout = parts.dropout(self, "self_attention_dropout")
            self._cross_attention_layer = None
            if encoder_sequence_shape:
                self._cross_attention_layer = self._attention(
                    "cross_attention", head_dim, value_dim=head_dim
                )
                self._cross_attention_layer.build(
                    decoder_sequence_shape, encoder_sequence_shape
                )
                self._cross_attention_layer_norm = parts.layer_norm(
                    self, "cross_attention_layer_norm", decoder_sequence_shape
                )
                self._cross_attention_dropout = parts.dropout(
                    self, "cross_attention_dropout"
                )
            self._feedforward_intermediate_dense = parts.intermediate_dense(
                self, decoder_sequence_shape
            )
            self._feedforward_output_dense = parts.output_dense(
                self, decoder_sequence_shape
            )
            self._feedforward_layer_norm = parts.layer_norm(
                self, "feedforward_layer_norm", decoder_sequence_shape
            )
            self._feedforward_dropout = parts.dropout(self, "feedforward_dropout")
        self.built = True

    def _attention(self, name, head_dim, **kwargs):
        return ParallelCachedMultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=head_dim,
            dropout=self.dropout,
            name=name,
            model_axis=self.model_axis,
            dtype=self.dtype_policy,
            **parts.initializers(self),
            **kwargs,
        )

    # keras-hub's signature, spelled out: Keras passes `training` (dropout) and
    # masks only to a `call` that names them.
    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        use_causal_mask=True,
        training=None,
    ):
        outputs = super().call(
            decoder_sequence,
            encoder_sequence,
            decoder_padding_mask=decoder_padding_mask,
            decoder_attention_mask=decoder_attention_mask,
            encoder_padding_mask=encoder_padding_mask,
            encoder_attention_mask=encoder_attention_mask,
            self_attention_cache=self_attention_cache,
            self_attention_cache_update_index=self_attention_cache_update_index,
            cross_attention_cache=cross_attention_cache,
            cross_attention_cache_update_index=cross_attention_cache_update_index,
            use_causal_mask=use_causal_mask,
            training=training,
        )
        # (batch, seq, hidden): replicated between blocks.
        return parts.reduce_first_output(outputs, self.model_axis)
