"""BERT-specific layouts and converters."""

from tf_mp.models.bert_layout_map import bert_layout_map
