"""Model parallelism on TensorFlow: two engines and what picks between them.

* The DTensor engine: `Mesh`, `LayoutMap`, `ModelParallel` (`mesh.py`,
  `layout_map.py`, `model_parallel.py`), built on the private `dtensor/`
  package, the one place tf_mp calls DTensor and patches Keras.
* The TPUStrategy engine: `tpu.py` (XLA SPMD annotations on Cloud TPUs).
* `auto_parallel.py`: the TPUStrategy engine on a TPU, else a DTensor mesh.
* `processes.py`: `initialize`, one mesh over several processes (DTensor's
  multi-client mode).
* `keras_distribution.py`: Keras's own `keras.distribution` API on the DTensor
  engine (`enable_keras_distribution`).
* `api.py`: what tf_mp layers call to shard themselves on either engine.
* `keras_compat.py`: the Keras and keras-hub internals that are not about DTensor.
"""

from tf_mp.parallel.auto_parallel import auto_parallel
from tf_mp.parallel.devices import configure_virtual_devices
from tf_mp.parallel.devices import list_devices
from tf_mp.parallel.keras_distribution import disable_keras_distribution
from tf_mp.parallel.keras_distribution import enable_keras_distribution
from tf_mp.parallel.keras_distribution import keras_distribution_enabled
from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import Mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.parallel.model_parallel import gather
from tf_mp.parallel.processes import initialize
from tf_mp.parallel.processes import num_processes
from tf_mp.parallel.processes import process_id
from tf_mp.parallel.shard_report import ShardReport
from tf_mp.parallel.shard_report import shard_report
