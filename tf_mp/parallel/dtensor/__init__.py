"""The one module where tf_mp touches `tf.experimental.dtensor` and Keras internals.

Keras 3 keeps every weight in a `keras.Variable` whose TensorFlow value lives in
`variable._value`. This module makes those values DTensor variables, and makes a
Keras model's `fit` / `evaluate` / `predict` feed its step functions with DTensors:

* Variable creation. While a `ModelParallel` scope (or one of our step functions) is
  active, `keras.src.backend.tensorflow.core.Variable._initialize` is replaced so the
  value becomes a `MeshVariable` (a `dtensor.DVariable`) with the layout the
  distribution resolves from the variable's path. The layout is stored on the Keras
  variable's `_layout`; Keras's optimizer passes `layout=reference._layout` to its
  slot variables, so optimizer moments are sharded like their parameter. The patch
  is removed when the outermost scope exits.
* Models. `TensorFlowTrainer.__init__` is wrapped for the same duration, so models
  built inside the scope get per-instance `make_{train,test,predict}_function`
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
* Eager calls. `model(x)`, `predict_on_batch` & co. on a model on a mesh place
  host inputs on the mesh, run the call in a `tf.function`, and return host
  values (`eager.py`).

Keras internals used here (check them on a Keras upgrade): `Variable._initialize`,
`Variable._value`, `Variable._layout`, `Variable._dtype`, `TensorFlowTrainer.__init__`,
`Trainer.{train,test,predict}_function`, `Trainer.steps_per_execution`,
`Layer.__call__`, `keras.src.random.seed_generator.global_seed_generator`, the
TensorFlow backend's `random` module (`dropout`, `_cast_seed`, `draw_seed`,
`_get_concrete_noise_shape`), the
`_keras_mask` tensor attribute (`keras.src.backend.common.masking`), and, for
distillation, `keras.src.models.functional.Functional` (is a model a graph of
layers) and `keras.src.losses.loss.unscale_loss_for_distribution`.
"""

import contextlib
import functools
import os
import re
import warnings

import numpy as np
import tensorflow as tf
from keras.src import tree
from keras.src.backend.common import masking as _keras_masking
from keras.src.backend.tensorflow import core as _keras_tf_core
from keras.src.backend.tensorflow import trainer as _keras_tf_trainer
from keras.src.losses import loss as _keras_loss
from keras.src.models import functional as _keras_functional
from keras.src.random import seed_generator as _keras_seed_generator
from tensorflow.dtensor.python import api as _dtensor_api
from tensorflow.experimental import dtensor

UNSHARDED = dtensor.UNSHARDED

# ---------------------------------------------------------------------------------
# Meshes and layouts.


# DTensor's all-reduce combining pass reorders collectives across the
# read-modify-write of Adam's moments: a gradient all-reduced over the batch axis
# then feeds a stale read of `m` / `v`, and weights are left unchanged or updated
# as if v = 0. Measured on TF 2.21 / Keras 3.15: a Dense layer on a (2, 1) mesh
# missed its whole first Adam step with the pass on, and matched single-device
# exactly with it off. DTensor reads the flag once, when its device is created
# (the first DTensor call of the process, `is_dtensor` included), so it is set
# when this module is imported.
_COMBINE_ALL_REDUCES = "DTENSOR_ENABLE_COMBINE_ALL_REDUCES_OPTIMIZATION"


def _disable_all_reduce_combining():
    preset = os.environ.get(_COMBINE_ALL_REDUCES)
    device_exists = _dtensor_api._dtensor_singleton is not None
    if preset is None:
        os.environ[_COMBINE_ALL_REDUCES] = "0"
    if preset is not None and preset.strip().lower() not in ("0", "false"):
        reason = f"{_COMBINE_ALL_REDUCES}={preset} is set"
    elif device_exists and preset is None:
        reason = "DTensor was initialised before tf_mp was imported"
    else:
        return
    warnings.warn(
        f"{reason}, so DTensor's all-reduce combining is on. It reorders "
        "optimizer updates (Adam's moments are read before they are written): "
        "training on a batch-sharded mesh can silently differ from single-device. "
        f"Import tf_mp before any DTensor call, and leave {_COMBINE_ALL_REDUCES} "
        "unset or 0.",
        stacklevel=2,
    )


_disable_all_reduce_combining()


def create_mesh(axis_names, shape, device_names, device_type):
    """Builds a `dtensor.Mesh` over `device_names` (full TF device names)."""
    if device_type == "TPU":
        _ensure_tpu_system()
    return dtensor.create_mesh(list(zip(axis_names, shape)), devices=list(device_names))


def _ensure_tpu_system():
    try:
        dtensor.initialize_accelerator_system("TPU")
    except ValueError as error:  # Already initialised by an earlier mesh.
        if "already" not in str(error).lower():
            raise


def make_layout(dtensor_mesh, axes):
    """`axes` is a tuple of mesh axis names or `None` (replicated), one per dim."""
    specs = [UNSHARDED if axis is None else axis for axis in axes]
    return dtensor.Layout(specs, dtensor_mesh)


def layout_axes(layout):
    """The inverse of `make_layout`: a tuple of axis names or `None`."""
    return tuple(None if s == UNSHARDED else s for s in layout.sharding_specs)


def variable_layout(variable):
    """The DTensor layout of a Keras variable, or `None` if it is not on a mesh."""
    value = getattr(variable, "_value", variable)
    if isinstance(value, dtensor.DVariable):
        return value.layout
    return None


# ---------------------------------------------------------------------------------
# Host <-> mesh transfers.


def place(value, layout):
    """Places a host value (or a DTensor with another layout) on `layout`.

    Host values are sliced on the host and each device receives only its shard.
    """
    if tf.is_tensor(value) and dtensor.is_dtensor(value):
        if dtensor.fetch_layout(value) == layout:
            return value
        return dtensor.relayout(value, layout)
    array = np.asarray(value)
    if array.ndim != layout.rank:
        raise ValueError(
            f"Cannot place a value of shape {array.shape} on a layout of rank "
            f"{layout.rank} ({layout_axes(layout)})."
        )
    shards = [
        tf.convert_to_tensor(array[index])
        for index in _shard_indices(layout, array.shape)
    ]
    return dtensor.pack(shards, layout)


def _shard_indices(layout, global_shape):
    """For each local device, in mesh order, the slice of the global value it
    holds under `layout`."""
    mesh = layout.mesh
    indices = []
    for location in mesh.local_device_locations():
        index = []
        for dim, spec in enumerate(layout.sharding_specs):
            if spec == UNSHARDED:
                index.append(slice(None))
                continue
            chunk = global_shape[dim] // mesh.dim_size(spec)
            start = location[spec] * chunk
            index.append(slice(start, start + chunk))
        indices.append(tuple(index))
    return indices


def gather(value):
    """Returns a DTensor's global value as a regular (host) tensor."""
    if isinstance(value, tf.Variable):
        value = value.read_value()
    if not (tf.is_tensor(value) and dtensor.is_dtensor(value)):
        return value
    layout = dtensor.fetch_layout(value)
    shards = dtensor.unpack(value)
    if layout.is_fully_replicated():
        return tf.identity(shards[0])
    global_shape = [int(d) for d in value.shape]
    out = np.empty(global_shape, dtype=value.dtype.as_numpy_dtype)
    for index, shard in zip(_shard_indices(layout, global_shape), shards):
        out[index] = shard.numpy()
    return tf.convert_to_tensor(out)


def replica_values(variables):
    """Each device's own copy of fully replicated mesh variables.

    Returns one list per variable: its value on every device of its mesh, in
    mesh order. `dtensor.unpack` of a replicated value is no witness that the
    copies agree (eagerly it showed equal copies of weights that differed).
    Here each device keeps its own copy as one row of a tensor split over every
    mesh axis, so the rows are what the devices really hold.
    """
    layouts = [variable_layout(v) for v in variables]
    for variable, layout in zip(variables, layouts):
        if layout is None or not layout.is_fully_replicated():
            raise ValueError(
                "`variables` must be fully replicated mesh variables. Received: "
                f"{getattr(variable, 'path', variable)} with layout {layout}"
            )
    values = [getattr(v, "_value", v) for v in variables]

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def rows():
        out = []
        for value, layout in zip(values, layouts):
            mesh = layout.mesh
            axes = tuple(mesh.dim_names)
            copy = tf.convert_to_tensor(value)
            rank = copy.shape.rank
            stacked = tf.tile(tf.expand_dims(copy, 0), [mesh.size] + [1] * rank)
            stacked = tf.reshape(
                stacked, [mesh.dim_size(a) for a in axes] + list(copy.shape)
            )
            out.append(
                dtensor.relayout(stacked, make_layout(mesh, axes + (None,) * rank))
            )
        return out

    return [
        [np.reshape(part.numpy(), variable.shape) for part in dtensor.unpack(row)]
        for variable, row in zip(variables, rows())
    ]


def sharding_of(variable):
    """`(axes, local_shape)` of a Keras variable, or `None` if it is off-mesh."""
    layout = variable_layout(variable)
    if layout is None:
        return None
    shape = tuple(int(d) for d in variable.shape)
    local = tuple(
        d if spec == UNSHARDED else d // layout.mesh.dim_size(spec)
        for d, spec in zip(shape, layout.sharding_specs)
    )
    return layout_axes(layout), local


class MeshVariable(dtensor.DVariable):
    """A `DVariable` that accepts host values on assign and gathers on `numpy()`."""

    def _to_mesh(self, value):
        if tf.executing_eagerly() and not (
            tf.is_tensor(value) and dtensor.is_dtensor(value)
        ):
            value = place(tf.cast(value, self.dtype), self.layout)
        return value

    def assign(self, value, use_locking=None, name=None, read_value=True):
        return super().assign(self._to_mesh(value), use_locking, name, read_value)

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        return super().assign_add(self._to_mesh(delta), use_locking, name, read_value)

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        return super().assign_sub(self._to_mesh(delta), use_locking, name, read_value)

    # DTensor has no SPMD rule for the ResourceScatter* ops that Keras's
    # optimizers use for `tf.IndexedSlices` updates (plain SGD on an `Embedding`
    # fails with "'tf.ResourceScatterSub' op does not implement layout
    # propagation"). These dense forms compute the same result: duplicate indices
    # accumulate, as in scatter_add / scatter_sub.

    def scatter_add(self, sparse_delta, use_locking=False, name=None):
        return self.assign_add(tf.convert_to_tensor(sparse_delta), use_locking, name)

    def scatter_sub(self, sparse_delta, use_locking=False, name=None):
        return self.assign_sub(tf.convert_to_tensor(sparse_delta), use_locking, name)

    def scatter_update(self, sparse_delta, use_locking=False, name=None):
        rows = tf.cast(sparse_delta.indices, tf.int32)
        hits = tf.math.unsorted_segment_sum(
            tf.ones_like(rows, self.dtype), rows, tf.shape(self)[0]
        )
        touched = tf.minimum(hits, 1)
        touched = tf.reshape(touched, [-1] + [1] * (self.shape.rank - 1))
        new_rows = tf.convert_to_tensor(sparse_delta)
        return self.assign(
            self.read_value() * (1 - touched) + new_rows, use_locking, name
        )

    def numpy(self):
        return gather(self.read_value()).numpy()


def _new_mesh_variable(keras_variable, value, layout, distribution):
    eager.install()
    keras_variable._layout = layout
    keras_variable._tf_mp_distribution = distribution
    return MeshVariable(
        place(value, layout),
        trainable=keras_variable.trainable,
        name=keras_variable.name,
        aggregation=keras_variable._map_aggregation(keras_variable.aggregation),
        synchronization=keras_variable._map_synchronization(
            keras_variable.synchronization
        ),
    )


# ---------------------------------------------------------------------------------
# The scoped patches.

_ACTIVE = []  # Stack of distributions whose scope is open (innermost last).
_HOST = "/device:CPU:0"
_ORIGINAL_INITIALIZE = _keras_tf_core.Variable._initialize
_ORIGINAL_TRAINER_INIT = _keras_tf_trainer.TensorFlowTrainer.__init__


def _patched_initialize(self, value):
    if not _ACTIVE or isinstance(value, tf.Variable):
        return _ORIGINAL_INITIALIZE(self, value)
    distribution = _ACTIVE[-1]
    # Keras's optimizer creates slots under `colocate_vars_with(parameter)`,
    # which eagerly means "on the DTensor device": compute on the host instead.
    with tf.init_scope(), tf.device(_HOST):
        if callable(value):
            value = value()
        value = tf.convert_to_tensor(value, dtype=self._dtype)
        layout = _resolve_layout(distribution, self, value.shape)
        self._value = _new_mesh_variable(self, value, layout, distribution)


def _patched_trainer_init(self, *args, **kwargs):
    _ORIGINAL_TRAINER_INIT(self, *args, **kwargs)
    if _ACTIVE:
        attach_model(self, _ACTIVE[-1])


_ORIGINAL_GLOBAL_SEED_GENERATOR = _keras_seed_generator.global_seed_generator


def _off_mesh_global_seed_generator():
    """Keras's process-wide `SeedGenerator`, created outside every scope."""
    with off_mesh():
        return _ORIGINAL_GLOBAL_SEED_GENERATOR()


@contextlib.contextmanager
def off_mesh():
    """Suspends every open scope: variables created inside are plain Keras ones."""
    saved = _ACTIVE[:]
    del _ACTIVE[:]
    try:
        yield
    finally:
        _ACTIVE[:] = saved


def _install_patches():
    _keras_tf_core.Variable._initialize = _patched_initialize
    _keras_tf_trainer.TensorFlowTrainer.__init__ = _patched_trainer_init
    _keras_seed_generator.global_seed_generator = _off_mesh_global_seed_generator
    randomness.install()


def _remove_patches():
    _keras_tf_core.Variable._initialize = _ORIGINAL_INITIALIZE
    _keras_tf_trainer.TensorFlowTrainer.__init__ = _ORIGINAL_TRAINER_INIT
    _keras_seed_generator.global_seed_generator = _ORIGINAL_GLOBAL_SEED_GENERATOR
    randomness.uninstall()


@contextlib.contextmanager
def variable_scope(distribution):
    """While open, new Keras variables and models are placed on `distribution`."""
    _ACTIVE.append(distribution)
    if len(_ACTIVE) == 1:
        _install_patches()
    try:
        yield
    finally:
        _ACTIVE.pop()
        if not _ACTIVE:
            _remove_patches()


def active_distribution():
    """The distribution whose scope is open (innermost), else `None`."""
    return _ACTIVE[-1] if _ACTIVE else None


def tracing_distribution():
    """The distribution whose step (or, else, whose scope) is open, or `None`."""
    if _STEP:
        return _STEP[-1]
    return _ACTIVE[-1] if _ACTIVE else None


def _resolve_layout(distribution, keras_variable, shape):
    """The variable's layout: an inherited DTensor layout (optimizer slots take
    their parameter's) or what the distribution's layout map says for its path."""
    inherited = getattr(keras_variable, "_layout", None)
    if isinstance(inherited, dtensor.Layout):
        if inherited.mesh == distribution.mesh.dtensor_mesh:
            return inherited
        return make_layout(distribution.mesh.dtensor_mesh, layout_axes(inherited))
    path = keras_variable.path
    axes = distribution.get_variable_axes(path, tuple(shape), _declared_axes(path))
    return make_layout(distribution.mesh.dtensor_mesh, axes)


# ---------------------------------------------------------------------------------
# Sharding declared by layers (tf_mp.layers), as data.

_DECLARED = []  # Stack of {path regex: axes} tables of layers being built.


@contextlib.contextmanager
def declare_axes(table):
    """Weights created inside get the axes of the first regex matching their path
    (unless the distribution's layout map says otherwise)."""
    _DECLARED.append(table)
    try:
        yield
    finally:
        _DECLARED.pop()


def _declared_axes(path):
    for table in reversed(_DECLARED):
        for regex, axes in table.items():
            if re.search(regex, path):
                return axes
    return None


def active_mesh_shape():
    """`{axis: size}` of the distribution whose scope is open, else `None`."""
    return dict(_ACTIVE[-1].mesh.shape) if _ACTIVE else None


_STEP = []  # The distribution of the tf_mp step being traced, if any.


def constrain(x, feature_axes):
    """Lays out an activation while a tf_mp step is traced.

    Dimension 0 goes on the batch axis, the trailing dimensions on
    `feature_axes`, the rest is replicated. A no-op elsewhere (no mesh, Keras's
    symbolic builds, user functions), where DTensor propagates layouts itself.
    Axes the mesh lacks mean "replicated".
    """
    if not _STEP or not isinstance(x, tf.Tensor):
        return x
    distribution = _STEP[-1]
    mesh = distribution.mesh
    rank = x.shape.rank
    axes = (distribution.batch_axis,) + (None,) * (rank - 1 - len(feature_axes))
    axes = axes + tuple(feature_axes)
    axes = tuple(a if a in mesh.shape else None for a in axes)
    return dtensor.relayout(x, make_layout(mesh.dtensor_mesh, axes))


def gradient_fan_in(x):
    """`x` through an identity while a tf_mp step traces, keeping its Keras mask.

    When one tensor feeds several column-parallel projections (attention's query,
    key and value), each backward matmul leaves a partial sum that DTensor
    all-reduces on its own. Reading `x` through one identity makes the tape add
    those partial gradients in one `AddN` of all-reduces only, which DTensor's
    `DTensorAllReduceSumOptimization` folds into one all-reduce of the sum:
    Megatron's `f`. A no-op elsewhere.
    """
    if not _STEP or not isinstance(x, tf.Tensor):
        return x
    y = tf.identity(x)
    mask = _keras_masking.get_keras_mask(x)
    if mask is not None:
        _keras_masking.set_keras_mask(y, mask)
    return y


@contextlib.contextmanager
def step_context(distribution):
    with variable_scope(distribution):
        _STEP.append(distribution)
        try:
            yield
        finally:
            _STEP.pop()


def adopt_variable(keras_variable, distribution):
    """Moves a Keras variable created off-mesh onto the distribution's mesh."""
    raw = getattr(keras_variable, "_value", None)
    if raw is None or isinstance(raw, dtensor.DVariable):
        return
    if tf.DeviceSpec.from_string(raw.device).device_type == "CUSTOM":
        # Created outside the scope, colocated with a mesh variable: its value
        # was computed on the DTensor device without a layout and is unusable.
        raise ValueError(
            f"The variable '{keras_variable.path}' was created outside "
            "`ModelParallel.scope()` next to a variable on the mesh (Keras places "
            "optimizer slots beside their parameter). Create it inside the scope, "
            "e.g. `with distribution.scope(): optimizer.build(model.trainable_"
            "variables)`, or let `fit` build the optimizer."
        )
    with tf.init_scope():
        value = raw.read_value()
        layout = _resolve_layout(distribution, keras_variable, value.shape)
        keras_variable._value = _new_mesh_variable(
            keras_variable, value, layout, distribution
        )


# ---------------------------------------------------------------------------------
# Models: per-instance step functions fed with DTensors.


def attach_model(model, distribution):
    """Routes `model.fit` / `evaluate` / `predict` through DTensor step
    functions."""
    object.__setattr__(model, "_tf_mp_distribution", distribution)
    for kind in ("train", "test", "predict"):
        maker = functools.partial(_make_function, model, kind)
        object.__setattr__(model, f"make_{kind}_function", maker)


def distribution_of(model):
    """The `ModelParallel` a model was built in the scope of, else `None`."""
    return getattr(model, "_tf_mp_distribution", None)


def layer_distribution(layer):
    """The `ModelParallel` of a model or of the first mesh variable of a
    layer, else `None`."""
    distribution = distribution_of(layer)
    if distribution is not None:
        return distribution
    for variable in layer.weights:
        distribution = getattr(variable, "_tf_mp_distribution", None)
        if distribution is not None:
            return distribution
    return None


def _adopt_model_state(model, distribution):
    variables = list(model.variables) + list(model.metrics_variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not isinstance(optimizer, str):
        variables += list(optimizer.variables)
    for variable in variables:
        adopt_variable(variable, distribution)
    # Nested models made outside the scope (a distiller's teacher) now hold mesh
    # variables: their own fit / evaluate / predict must run on the mesh too.
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, _keras_tf_trainer.TensorFlowTrainer) and (
            distribution_of(layer) is None
        ):
            attach_model(layer, distribution)


def _make_function(model, kind, force=False):
    attribute = f"{kind}_function"
    if getattr(model, attribute) is not None and not force:
        return getattr(model, attribute)
    distribution = model._tf_mp_distribution
    if model.run_eagerly:
        warnings.warn(
            "`run_eagerly=True` is ignored for models on a tf_mp mesh: DTensor "
            "steps must run inside a `tf.function`.",
            stacklevel=3,
        )
    _adopt_model_state(model, distribution)
    step = getattr(model, f"{kind}_step")
    step = tf.function(
        tf.autograph.experimental.do_not_convert(step), reduce_retracing=True
    )
    if kind == "predict":
        function = functools.partial(_run_predict, model, step, distribution)
    else:
        function = functools.partial(_run_steps, model, step, distribution)
    setattr(model, attribute, function)
    return function


def _run_steps(model, step, distribution, iterator):
    outputs = None
    for _ in range(model.steps_per_execution):
        try:
            data = next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            if outputs is None:
                raise
            break
        if outputs is None:
            _build_compiled_state(model, distribution, data)
        data, _ = distribute_batch(data, distribution, pad=False)
        with step_context(distribution):
            outputs = step(data)
    return tree.map_structure(gather, outputs)


def _build_compiled_state(model, distribution, data):
    """Builds `compile`'s metrics and loss before the first step is traced.

    Without a `tf.distribute` strategy, Keras's TF trainer defers building them
    to the first traced train step. Variables created inside a DTensor trace
    are not mesh variables: the step updates a broadcast copy, so e.g. the
    training accuracy stayed 0 while the loss was right. Keras's symbolic build
    (what it runs under a strategy) creates them first, in the scope.
    """
    metrics = model._compile_metrics
    loss = model._compile_loss
    if (metrics is not None and not metrics.built) or (
        loss is not None and not loss.built
    ):
        with distribution.scope():
            model._symbolic_build(data_batch=data)
        _adopt_model_state(model, distribution)


def _run_predict(model, step, distribution, batches):
    results = []
    for data in batches:
        data, size = distribute_batch(data, distribution, pad=True)
        with step_context(distribution):
            outputs = step(data)
        results.append(tree.map_structure(lambda t, n=size: gather(t)[:n], outputs))
    if len(results) == 1:
        return results[0]
    return tree.map_structure(lambda *parts: tf.concat(parts, axis=0), *results)


def distribute_batch(data, distribution, pad=False):
    """Shards every tensor in `data` along the distribution's batch axis.

    Returns `(data, batch_size)`. With `pad=True` a batch that does not divide is
    padded by repeating its last row (callers trim the outputs); otherwise it
    raises a `ValueError`.
    """
    mesh = distribution.mesh.dtensor_mesh
    axis = distribution.batch_axis
    parts = distribution.mesh.shape[axis] if axis else 1
    leaves = [x for x in tree.flatten(data) if x is not None]
    sizes = {int(np.shape(x)[0]) for x in leaves if np.ndim(x) > 0}
    size = min(sizes) if sizes else 0
    padded = size
    if size % parts:
        if not pad:
            raise ValueError(
                f"The batch size must be divisible by the size of mesh axis "
                f"'{axis}' ({parts}). Received: batch_size={size}. Batch with a "
                f"multiple of {parts} and drop the remainder (for a dataset, "
                "`dataset.batch(batch_size, drop_remainder=True)`; for arrays, a "
                "sample count that is a multiple of the batch size)."
            )
        padded = size + parts - size % parts

    def shard(x):
        if x is None:
            return None
        if isinstance(x, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(
                "Inputs on a tf_mp mesh must be dense tensors. Received: "
                f"{type(x).__name__}. Convert it with `.to_tensor()` first."
            )
        if tf.is_tensor(x) and dtensor.is_dtensor(x):
            return x
        x = np.asarray(x)
        if x.ndim == 0:
            return place(x, dtensor.Layout.replicated(mesh, 0))
        if padded != x.shape[0]:
            extra = np.repeat(x[-1:], padded - x.shape[0], axis=0)
            x = np.concatenate([x, extra], axis=0)
        axes = (axis if parts > 1 else None,) + (None,) * (x.ndim - 1)
        return place(x, make_layout(mesh, axes))

    return tree.map_structure(shard, data), size


def is_functional(model):
    """Whether `model` is a Keras functional model (a graph of layers)."""
    return isinstance(model, _keras_functional.Functional)


def unscale_loss_for_distribution(value):
    """A loss scaled by Keras for a `tf.distribute` replica, back to its mean."""
    return _keras_loss.unscale_loss_for_distribution(value)


from tf_mp.parallel._dtensor_bridge import eager  # noqa: E402
from tf_mp.parallel._dtensor_bridge import randomness  # noqa: E402
