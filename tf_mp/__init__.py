"""tf_mp: model parallelism, distillation and AutoML for BERT-style Keras 3 models on
TensorFlow."""

from tf_mp import automl
from tf_mp import distillation
from tf_mp import layers
from tf_mp import models
from tf_mp import tpu
from tf_mp.auto_parallel import auto_parallel
from tf_mp.distillation import Distiller
from tf_mp.models.bert_layout_map import bert_layout_map
from tf_mp.parallel import LayoutMap
from tf_mp.parallel import Mesh
from tf_mp.parallel import ModelParallel
from tf_mp.parallel import ShardReport
from tf_mp.parallel import configure_virtual_devices
from tf_mp.parallel import gather
from tf_mp.parallel import shard_report

__version__ = "0.1.0"
