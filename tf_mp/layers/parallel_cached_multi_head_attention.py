import keras
import keras_hub

from tf_mp.layers import block_parts as parts
from tf_mp.layers.parallel_multi_head_attention import HeadParallel
from tf_mp.parallel import api


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelCachedMultiHeadAttention(
    HeadParallel, keras_hub.layers.CachedMultiHeadAttention
):
    """keras-hub's `CachedMultiHeadAttention` (the attention of its decoder
    blocks) with its heads split over a mesh axis.

    As `tf_mp.layers.ParallelMultiHeadAttention`: query, key and value
    projections column-parallel, the output projection row-parallel, one
    all-reduce per call forward and one backward. The key/value `cache` and
    `cache_update_index` arguments are keras-hub's; the returned cache holds
    each device's heads. Without a mesh it is keras-hub's layer.

    Args:
        num_heads: int. Number of heads; must be divisible by the `model_axis`
            size.
        key_dim: int. Size of each head for query and key.
        model_axis: str. The mesh axis heads are split over. Defaults to
            `"model"`.
        **kwargs: passed to `keras_hub.layers.CachedMultiHeadAttention`.
    """

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        training=None,
    ):
        key = value if key is None else key
        # (batch, seq, hidden) each, replicated; one backward reduction for
        # the projections that read the same tensor.
        query, value, key = api.copy_to_model_parallel_region(query, value, key)
        outputs = super().call(
            query,
            value,
            key,
            attention_mask=attention_mask,
            cache=cache,
            cache_update_index=cache_update_index,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        return parts.reduce_first_output(outputs, self.model_axis)
