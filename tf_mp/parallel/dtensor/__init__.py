"""The DTensor engine's internals: the one place tf_mp calls `tf.experimental.dtensor`
and patches Keras.

Keras 3 keeps every weight in a `keras.Variable` whose TensorFlow value lives in
`variable._value`. This package makes those values DTensor variables, and makes a
Keras model's `fit` / `evaluate` / `predict` feed its step functions with DTensors:

* Variable creation. While a `ModelParallel` scope (or one of our step functions) is
  active, the patched `keras.src.backend.tensorflow.core.Variable._initialize` makes
  the value a `MeshVariable` (a `dtensor.DVariable`) with the layout the
  distribution resolves from the variable's path. The layout is stored on the Keras
  variable's `_layout`; Keras's optimizer passes `layout=reference._layout` to its
  slot variables, so optimizer moments are sharded like their parameter. The
  patches are installed by the first scope and kept (`patches.py`); outside a
  scope they act as the originals.
* Models. `TensorFlowTrainer.__init__` is wrapped too, so models
  built inside a scope get per-instance `make_{train,test,predict}_function`
  methods. Those pull each batch eagerly (Keras's own functions call
  `iterator.get_next()` inside a `tf.function`, which DTensor rejects), shard it
  along the batch axis, and run the model's own `train_step` / `test_step` /
  `predict_step` in a `tf.function`. Variables created outside the scope (an
  optimizer or metrics made by `compile`) are moved onto the mesh before tracing.
* Values. `MeshVariable.assign` places host values onto the mesh with the
  variable's layout, and `numpy()` gathers shards, so `set_weights`,
  `load_weights`, `save_weights` and `.keras` files work unchanged.

* Randomness. Random draws traced for a mesh are made at the global shape
  (`randomness.py` states the rule and why DTensor's own expansion is not used).
  Keras's process-wide state (the global `SeedGenerator` of unseeded
  `keras.random.*` calls) is created off-mesh even inside a scope: it belongs to
  no model, and pinning it to one mesh broke every later unseeded draw outside
  that mesh.
* Writes. A step (and Keras's `optimizer.apply` on mesh variables, in custom
  loops too) writes each variable once, at its end: reads see pending values.
  That keeps DTensor's all-reduce combining pass, which groups the gradients'
  all-reduces, from reordering reads and writes (`pending_writes.py`). The steps of
  one call (`steps_per_execution`) run in a `tf.while_loop` whose state is the
  variables' values (`pending_writes.loop_steps`): one traced step whatever their
  number.
* Layer outputs. Layers whose `"<path>/output"` matches an output key of the
  layout map (Keras's convention) have their outputs relaid out inside a step
  (`output_layouts.py`).
* Eager calls. `model(x)`, `predict_on_batch` & co. on a model on a mesh place
  host inputs on the mesh, run the call in a `tf.function`, and return host
  values (`eager.py`).

One concern per module:

* `flags.py`: DTensor's all-reduce combining, on unless `TF_MP_GROUP_ALL_REDUCES=0`
  (set on import).
* `pending_writes.py`: steps and optimizer updates that write variables at their end.
* `layouts.py`: tf_mp axis tuples <-> `dtensor.Layout`; meshes.
* `transfer.py`: host values onto a layout (`place`), DTensors home (`to_host`).
* `variables.py`: `MeshVariable`, layouts of new and adopted variables.
* `../state.py` (engine-neutral): the current distribution (scope, step being
  traced, declared axes) and the process-wide record; `step_context`,
  `off_mesh`, `declare_axes`.
* `patches.py`: every patch of Keras, keras-hub and TensorFlow, in one table;
  `variable_scope`.
* `collectives.py`: activation layouts inside a step (the layers' collectives).
* `processes.py`: DTensor's multi-client mode (one mesh over several processes).
* `steps.py`: models' `fit` / `evaluate` / `predict` step functions.
* `saving.py`: `save_weights` / `save` written atomically, by one process.
* `batches.py`: batches split along the batch axis.
* `datasets.py`: datasets read per process (`distribute_dataset`).
* `output_layouts.py`: layer outputs pinned by `/output` layout-map keys.
* `randomness.py`, `eager.py`: random draws and eager calls on a mesh.
* `timing.py`: a matmul and an all-reduce timed on a mesh (the planner's
  constants).
* `compiled_collectives.py`: the collectives of a compiled step, read from the
  function DTensor lowered it to (the planner's compiled counts).
* `keras_backend.py`: Keras's TensorFlow `distribution_lib`, completed for
  `tf_mp.enable_keras_distribution()`.

Only `tf_mp/parallel` imports this package; layers reach it through
`tf_mp.parallel.api`. Keras helpers that are not about DTensor (is a model
functional, unscale a loss, keras-hub's BERT block class) live in
`tf_mp.parallel.keras_compat`.

Models on a mesh get per-instance `fit` / `evaluate` / `predict` (which note
whether `x` is a per-process dataset) and `save` / `save_weights` (atomic, one
writer), wrapping Keras's public methods.

Keras internals used here (check them on a Keras upgrade): `Variable._initialize`,
`Variable._value`, `Variable._layout`, `Variable._dtype`, `TensorFlowTrainer.__init__`,
`Trainer.{train,test,predict}_function`, `Trainer.steps_per_execution`,
`Layer.__call__`, `Layer.call` and `Layer._flatten_layers`,
`BaseOptimizer.apply`, the TensorFlow backend's `core.cond`,
`keras.src.random.seed_generator.global_seed_generator`, Keras's TensorFlow
`distribution_lib` module and `Distribution.distribute_dataset`, the
`"current_call_ctx"` global attribute (`keras_backend.py`), the TensorFlow
backend's `random` module (`dropout`, `_cast_seed`, `draw_seed`,
`_get_concrete_noise_shape`), the `_keras_mask` tensor attribute
(`keras.src.backend.common.masking`), and, in `keras_compat`,
`keras.src.models.functional.Functional`,
`keras.src.losses.loss.unscale_loss_for_distribution` and keras-hub's
`bert_backbone.TransformerEncoder`. TensorFlow internals: DTensor's
`DVariable._read_variable_op` (overridden), `resource_variable_ops.variable_accessed`
and `eager.record.record_operation` (a pending value read as the variable),
`tf.data.experimental.ops.distribute.compute_batch_size` (as Keras uses it).
"""

from tf_mp.parallel.dtensor import flags

flags.configure_all_reduce_grouping()
flags.configure_relayouts()

from tf_mp.parallel.dtensor.batches import distribute_batch  # noqa: E402
from tf_mp.parallel.dtensor.collectives import gradient_sum_point  # noqa: E402
from tf_mp.parallel.dtensor.collectives import relayout  # noqa: E402
from tf_mp.parallel.dtensor.compiled_collectives import watch as watch_collectives  # noqa: E402, E501
from tf_mp.parallel.dtensor.datasets import distribute_dataset  # noqa: E402
from tf_mp.parallel.dtensor.layouts import create_mesh  # noqa: E402
from tf_mp.parallel.dtensor.layouts import layout_axes  # noqa: E402
from tf_mp.parallel.dtensor.layouts import make_layout  # noqa: E402
from tf_mp.parallel.dtensor.layouts import sharding_of  # noqa: E402
from tf_mp.parallel.dtensor.layouts import variable_layout  # noqa: E402
from tf_mp.parallel.dtensor.patches import variable_scope  # noqa: E402
from tf_mp.parallel.dtensor.processes import create_global_mesh  # noqa: E402
from tf_mp.parallel.dtensor.steps import distribution_of  # noqa: E402
from tf_mp.parallel.dtensor.steps import layer_distribution  # noqa: E402
from tf_mp.parallel.dtensor.timing import all_reduce_seconds  # noqa: E402
from tf_mp.parallel.dtensor.timing import matmul_seconds  # noqa: E402
from tf_mp.parallel.dtensor.transfer import place  # noqa: E402
from tf_mp.parallel.dtensor.transfer import replica_values  # noqa: E402
from tf_mp.parallel.dtensor.transfer import to_host  # noqa: E402
from tf_mp.parallel.dtensor.variables import MeshVariable  # noqa: E402
from tf_mp.parallel.dtensor.variables import relayout as relayout_variable  # noqa: E402
from tf_mp.parallel.state import declare_axes  # noqa: E402
from tf_mp.parallel.state import off_mesh  # noqa: E402
from tf_mp.parallel.state import step_context  # noqa: E402
