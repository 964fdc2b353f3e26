import keras

from tf_mp.layers import block_parts as parts
from tf_mp.layers import sharding
from tf_mp.parallel import api


def attention_weight_axes(model_axis, prefix=""):
    """Megatron axes of a `keras.layers.MultiHeadAttention`'s weights."""
    m = model_axis
    return {
        # query/key/value kernel: (hidden, heads, head_dim), bias: (heads, head_dim).
        prefix + r"(query|key|value)/kernel$": (None, m, None),
        prefix + r"(query|key|value)/bias$": (m, None),
        # attention_output kernel: (heads, head_dim, hidden), bias replicated.
        prefix + r"attention_output/kernel$": (m, None, None),
    }


class HeadParallel:
    """What tf_mp's head-parallel attention layers share, mixed into a
    `keras.layers.MultiHeadAttention` subclass: the `model_axis` argument, the
    Megatron weight axes, the divisibility check and, under the TPUStrategy
    engine, per-head annotations of the projections."""

    def __init__(self, num_heads, key_dim, model_axis="model", **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        self.model_axis = model_axis

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        return attention_weight_axes(self.model_axis, prefix="/")

    def build(self, query_shape, value_shape, key_shape=None):
        sharding.check_divisible(self, "num_heads", self.num_heads, self.model_axis)
        with api.declare_axes(self.weight_axes()):
            super().build(query_shape, value_shape, key_shape)

    def _compute_attention(self, query, key, value, *args, **kwargs):
        # Under the TPUStrategy engine: projections (batch, seq, heads, head_dim)
        # and context split by heads, so each core attends with its own heads and
        # XLA places the projection kernels accordingly. No-op elsewhere.
        heads = (None, None, self.model_axis, None)
        query, key, value = (
            api.annotate(t, heads, self.model_axis) for t in (query, key, value)
        )
        output, scores = super()._compute_attention(query, key, value, *args, **kwargs)
        return api.annotate(output, heads, self.model_axis), scores

    def get_config(self):
        config = super().get_config()
        config["model_axis"] = self.model_axis
        return config


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelMultiHeadAttention(HeadParallel, keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with its heads split over a mesh axis.

    The query, key and value projections are column-parallel (each device owns
    `num_heads / k` heads and computes their attention locally) and the output
    projection is row-parallel: one all-reduce per call in the forward pass,
    one in the backward pass. Weight names and shapes are those of
    `keras.layers.MultiHeadAttention`, so weights copy over one to one. Without
    a mesh it is an ordinary `MultiHeadAttention`.

    Args:
        num_heads: int. Number of heads; must be divisible by the `model_axis`
            size.
        key_dim: int. Size of each head for query and key.
        model_axis: str. The mesh axis heads are split over. Defaults to
            `"model"`.
        **kwargs: passed to `keras.layers.MultiHeadAttention`.

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        # Self-attention reads one tensor three times: one backward reduction.
        key = value if key is None else key
        # (batch, seq, hidden) each, replicated.
        query, value, key = api.copy_to_model_parallel_region(query, value, key)
        outputs = super().call(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            use_causal_mask=use_causal_mask,
        )
        return parts.reduce_first_output(outputs, self.model_axis)
