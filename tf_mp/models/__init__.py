"""BERT-specific layouts and converters."""

from tf_mp.models.bert_layout_map import bert_layout_map
from tf_mp.models.parallel_bert_backbone import ParallelBertBackbone
from tf_mp.models.partition_bert import partition_bert
