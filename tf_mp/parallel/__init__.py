"""The DTensor model-parallel engine: meshes, layouts, `ModelParallel`."""

from tf_mp.parallel.devices import configure_virtual_devices
from tf_mp.parallel.devices import list_devices
from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import Mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.parallel.model_parallel import gather
from tf_mp.parallel.shard_report import ShardReport
from tf_mp.parallel.shard_report import shard_report
