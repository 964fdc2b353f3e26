"""Models on a mesh: per-instance step functions fed with DTensors.

Keras's own step functions call `iterator.get_next()` inside a `tf.function`,
which DTensor rejects. A model built in a `ModelParallel` scope gets its own
`make_{train,test,predict}_function`: each batch is pulled eagerly, split along
the batch axis, and the model's own `train_step` / `test_step` /
`predict_step` runs in a `tf.function` on the mesh.

With `steps_per_execution=k`, up to `MAX_STEPS_PER_CALL` batches go into one
function call that runs the step once per batch: one dispatch, one
host-to-mesh transfer per input (the batches stacked) and one host round trip
for the outputs instead of k. The steps run in a `tf.while_loop` whose state is
the values of the model's, optimizer's and metrics' variables, the last step
after it (`pending_writes.loop_steps`): unrolled, k steps cost DTensor a compile
time that grows faster than k. Step i+1 reads step i's new values as data, not
through the variables, so DTensor cannot group the all-reduces of different
steps. As in Keras's own trainer, whose default is the same loop; a model with
Keras's `unrolled_steps_per_execution` above 1, or whose step writes any other
mesh variable, runs the call's steps unrolled instead, one set of pending
writes shared by the steps (`pending_writes.py`).
"""

import functools
import warnings

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as _keras_tf_trainer

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import array_epochs
from tf_mp.parallel.dtensor import datasets
from tf_mp.parallel.dtensor import generation
from tf_mp.parallel.dtensor import output_layouts
from tf_mp.parallel.dtensor import pending_writes as writes_lib
from tf_mp.parallel.dtensor import processes
from tf_mp.parallel.dtensor import saving
from tf_mp.parallel.dtensor import variables
from tf_mp.parallel.dtensor.batches import batch_of_stacked
from tf_mp.parallel.dtensor.batches import distribute_batch
from tf_mp.parallel.dtensor.batches import distribute_stacked_batches
from tf_mp.parallel.dtensor.batches import unstack_batches
from tf_mp.parallel.dtensor.loop_names import call_replacing_stale_functions
from tf_mp.parallel.dtensor.transfer import to_host

# Steps per function call at most: their batches are stacked on the mesh.
MAX_STEPS_PER_CALL = 8


def attach_model(model, distribution):
    """Routes `model.fit` / `evaluate` / `predict` through DTensor step
    functions."""
    object.__setattr__(model, "_tf_mp_distribution", distribution)
    for kind in ("train", "test", "predict"):
        maker = functools.partial(_make_function, model, kind)
        object.__setattr__(model, f"make_{kind}_function", maker)
    object.__setattr__(model, "reset_metrics", functools.partial(_reset_metrics, model))
    saving.attach_saving(model, distribution)
    generation.attach_generation(model, distribution)
    for name in ("fit", "evaluate", "predict"):
        method = functools.partial(_reading_inputs, model, getattr(type(model), name))
        functools.update_wrapper(method, getattr(type(model), name))
        object.__setattr__(model, name, method)


def _reading_inputs(model, keras_method, *args, **kwargs):
    """Keras's `fit` / `evaluate` / `predict`, told whether `x` holds only this
    process's rows of each batch (`datasets.distribute_dataset`)."""
    array_epochs.check_epochs(model, keras_method, args, kwargs, distribution_of(model))
    x = args[0] if args else kwargs.get("x")
    with datasets.reading(x):
        return keras_method(model, *args, **kwargs)


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
    model_variables = list(model.variables) + list(model.metrics_variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not isinstance(optimizer, str):
        model_variables += list(optimizer.variables)
    for variable in model_variables:
        variables.adopt_variable(variable, distribution)
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
    output_layouts.pin_layer_outputs(model, distribution)
    step = getattr(model, f"{kind}_step")
    if kind == "predict":
        step = _traced(step)
        function = functools.partial(_run_predict, model, step, distribution)
    else:

        def steps_on_batches(batches):
            outputs = None
            for data in batches:
                outputs = step(data)
            return outputs

        def steps_on_stacked_batches(stacked, steps):
            if _unrolled(model):
                return steps_on_batches(unstack_batches(stacked, steps))
            return writes_lib.loop_steps(
                step,
                functools.partial(batch_of_stacked, stacked),
                steps,
                _loop_variables(model),
            )

        # Traced functions keep the step's name ("train_step"): DTensor names its
        # MLIR dumps after them (`tests/layers/count_collectives.py`).
        steps_on_batches.__name__ = steps_on_batches.__qualname__ = step.__name__
        steps_on_stacked_batches.__name__ = f"stacked_{step.__name__}s"
        steps_on_stacked_batches.__qualname__ = steps_on_stacked_batches.__name__

        function = functools.partial(
            _run_steps,
            model,
            _traced(steps_on_batches),
            _traced(steps_on_stacked_batches),
            distribution,
        )
    setattr(model, attribute, function)
    return function


def _traced(function):
    return tf.function(
        tf.autograph.experimental.do_not_convert(writes_lib.defer_writes(function)),
        reduce_retracing=True,
    )


# A process of the mesh that vanished is named in the error.
@processes.reporting_lost_processes()
def _run_steps(model, on_batches, on_stacked_batches, distribution, iterator):
    """Runs up to `steps_per_execution` steps, `MAX_STEPS_PER_CALL` per call."""
    outputs = None
    chunk = []
    for step in range(model.steps_per_execution):
        try:
            data = next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            if step == 0:
                raise
            break
        if step == 0:
            _build_compiled_state(model, distribution, data)
        chunk.append(data)
        if len(chunk) == MAX_STEPS_PER_CALL:
            outputs = _run_chunk(
                model, chunk, on_batches, on_stacked_batches, distribution
            )
            chunk = []
    if chunk:
        outputs = _run_chunk(model, chunk, on_batches, on_stacked_batches, distribution)
    return tree.map_structure(to_host, outputs)


def _run_chunk(model, chunk, on_batches, on_stacked_batches, distribution):
    if len(chunk) > 1:
        # One host-to-mesh transfer per input for the whole chunk.
        stacked = distribute_stacked_batches(chunk, distribution)
        if stacked is not None:
            try:
                return _call_on_mesh(
                    on_stacked_batches, distribution, stacked, len(chunk)
                )
            except writes_lib.NotCarried:
                # A step writes a variable outside the model, its optimizer and
                # metrics: the steps run unrolled (retraced) from now on.
                object.__setattr__(model, "_tf_mp_unrolled_steps", True)
                return _call_on_mesh(
                    on_stacked_batches, distribution, stacked, len(chunk)
                )
    batches = [distribute_batch(data, distribution, pad=False)[0] for data in chunk]
    return _call_on_mesh(on_batches, distribution, batches)


def _unrolled(model):
    """Whether a call's steps run unrolled: asked for with Keras's own
    `model.unrolled_steps_per_execution` above 1 (tf_mp then unrolls the whole
    call), or needed by a step that writes a variable the loop does not carry."""
    return getattr(model, "unrolled_steps_per_execution", 1) > 1 or model.__dict__.get(
        "_tf_mp_unrolled_steps", False
    )


def _loop_variables(model):
    """The mesh variables a step may write: the model's (seed generators'
    states included), its optimizer's and its metrics'."""
    found, seen = [], set()
    optimizer = getattr(model, "optimizer", None)
    candidates = list(model.variables) + list(model.metrics_variables)
    if optimizer is not None and not isinstance(optimizer, str):
        candidates += list(optimizer.variables)
    for variable in candidates:
        value = getattr(variable, "_value", variable)
        if isinstance(value, variables.MeshVariable) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def _call_on_mesh(function, distribution, *args):
    with state.step_context(distribution):
        return call_replacing_stale_functions(function, *args)


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


def _reset_metrics(model):
    """Keras's `reset_metrics`, in one call on the mesh.

    Eagerly, each metric variable's reset is a host-to-mesh transfer and an
    eager DTensor op (about 4 ms each on 2 CPU devices): `train_on_batch` and
    `evaluate`, which reset every call, paid ~18 ms a call for a model with two
    metrics. One traced function per set of metric variables does them all.
    """
    metric_variables = list(model.metrics_variables)
    if not metric_variables or not all(
        isinstance(getattr(v, "_value", None), variables.MeshVariable)
        for v in metric_variables
    ):
        return type(model).reset_metrics(model)
    key = tuple(id(v) for v in metric_variables)
    cache = model.__dict__.setdefault("_tf_mp_reset_functions", {})
    function = cache.get(key)
    if function is None:

        def reset():
            for metric in model.metrics:
                metric.reset_state()

        function = _traced(reset)
        cache[key] = function
    _call_on_mesh(function, model._tf_mp_distribution)


@processes.reporting_lost_processes()
def _run_predict(model, step, distribution, batches):
    results = []
    for data in batches:
        data, size = distribute_batch(data, distribution, pad=True)
        outputs = _call_on_mesh(step, distribution, data)
        results.append(tree.map_structure(lambda t, n=size: to_host(t)[:n], outputs))
    if len(results) == 1:
        return results[0]
    return tree.map_structure(lambda *parts: tf.concat(parts, axis=0), *results)
