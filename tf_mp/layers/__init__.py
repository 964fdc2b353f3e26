"""Keras layers that declare Megatron-style sharding of their own weights."""

from tf_mp.layers.column_parallel_dense import ColumnParallelDense
from tf_mp.layers.parallel_cached_multi_head_attention import (
    ParallelCachedMultiHeadAttention,
)
from tf_mp.layers.parallel_multi_head_attention import ParallelMultiHeadAttention
from tf_mp.layers.parallel_transformer_decoder import ParallelTransformerDecoder
from tf_mp.layers.parallel_transformer_encoder import ParallelTransformerEncoder
from tf_mp.layers.row_parallel_dense import RowParallelDense
