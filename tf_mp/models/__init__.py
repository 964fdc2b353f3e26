"""keras-hub backbones on a mesh: layouts and converters, by family."""

from tf_mp.models.bert_layout_map import bert_layout_map
from tf_mp.models.layout_maps import backbone_layout_map
from tf_mp.models.parallel_backbones import parallel_backbone_class
from tf_mp.models.parallel_bert_backbone import ParallelBertBackbone
from tf_mp.models.partition import SUPPORTED
from tf_mp.models.partition import is_supported
from tf_mp.models.partition import move_to_mesh
from tf_mp.models.partition import partition
from tf_mp.models.partition import unpartition
from tf_mp.models.partition_bert import partition_bert
