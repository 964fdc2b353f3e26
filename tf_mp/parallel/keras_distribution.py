"""Keras's own `keras.distribution` API, sharding for real on TensorFlow.

On the TensorFlow backend, Keras 3.15's `keras.distribution` is a silent no-op:
a model built under `keras.distribution.ModelParallel` gets plain variables.
After `tf_mp.enable_keras_distribution()`, the Keras distribution that is set
(`keras.distribution.set_distribution(...)` or `with distribution.scope():`)
works as an open `tf_mp.ModelParallel` scope: `DataParallel` and
`ModelParallel` become `ModelParallel.from_keras(distribution)`, and Keras's
backend functions that TensorFlow lacks (`distribute_tensor`, `initialize`,
`get_device_count`, `num_processes`, `process_id`) run on tf_mp's engine.

Why a call, not `import tf_mp`: importing tf_mp starts nothing (not even
TensorFlow: the `tf-mp` command splits the CPU into virtual devices before
TensorFlow starts), and enabling the bridge changes Keras for the whole
process. Code that imports tf_mp for its layers, `Distiller` or Keras Tuner
helpers keeps stock Keras; one explicit line turns Keras's API on, and
`disable_keras_distribution()` turns it off again.
"""

import keras

from tf_mp.parallel import keras_compat
from tf_mp.parallel import processes as _processes
from tf_mp.parallel import state
from tf_mp.parallel.dtensor import keras_backend as _keras_backend
from tf_mp.parallel.dtensor import patches as _patches
from tf_mp.parallel.keras_conversion import mesh_from_keras
from tf_mp.parallel.model_parallel import ModelParallel


def enable_keras_distribution():
    """Makes `keras.distribution` shard for real on TensorFlow, through tf_mp.

    Afterwards, Keras variables created while a `keras.distribution.DataParallel`
    or `ModelParallel` is set are DTensor variables on its mesh, laid out by its
    `LayoutMap` with Keras's rules (an exact key, else the one key that
    `re.fullmatch`es the path; several matching keys are an error), and models
    built so train with plain `fit` / `evaluate` / `predict`, batches split
    along `batch_dim_name`. An open `tf_mp.ModelParallel` scope takes
    precedence. Idempotent.

    Example (the Keras distribution guide, on TensorFlow):

    ```python
    tf_mp.configure_virtual_devices(8)  # on a CPU-only machine
    tf_mp.enable_keras_distribution()
    mesh = keras.distribution.DeviceMesh(
        (2, 4), ["data", "model"], keras.distribution.list_devices()
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["d1/kernel"] = (None, "model")
    layout_map["d1/bias"] = ("model",)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="data")
    )
    model = ...  # built as usual; "d1"'s weights are split four ways
    model.fit(dataset)
    ```
    """
    if keras_distribution_enabled():
        return
    _patches.install_bridge(
        {
            "distribute_tensor": distribute_tensor,
            "distribute_value": distribute_tensor,
            "initialize": _processes.initialize,
            "num_processes": _processes.num_processes,
            "process_id": _processes.process_id,
            "get_device_count": _get_device_count,
        },
        translate=_from_keras,
    )
    _patches.hold(True)
    state.process().keras_fallback = _current_keras_distribution


def disable_keras_distribution():
    """Undoes `enable_keras_distribution`: Keras's distribution no longer
    places models on a mesh, and its TensorFlow `distribution_lib` is stock
    again. Models already on a mesh stay there."""
    if not keras_distribution_enabled():
        return
    _patches.hold(False)
    state.process().keras_fallback = None
    _patches.remove_bridge()


def keras_distribution_enabled():
    """Whether `enable_keras_distribution()` is in effect."""
    return state.process().keras_fallback is not None


def _current_keras_distribution():
    distribution = keras.distribution.distribution()
    return None if distribution is None else _from_keras(distribution)


def _from_keras(distribution):
    """The cached `ModelParallel` for a Keras distribution; made again when its
    layout map or batch axis changed since."""
    signature = _signature(distribution)
    translations = state.process().keras_translations
    cached = translations.get(distribution)
    if cached is not None and cached[0] == signature:
        return cached[1]
    translated = ModelParallel.from_keras(distribution)
    translations[distribution] = (signature, translated)
    return translated


def _signature(distribution):
    entries = ()
    if isinstance(distribution, keras.distribution.ModelParallel):
        layout_map = keras_compat.keras_layout_map(distribution)
        entries = tuple((key, tuple(layout_map[key].axes)) for key in layout_map)
    return (id(distribution.device_mesh), distribution.batch_dim_name, entries)


def distribute_tensor(tensor, layout):
    """`keras.distribution.distribute_tensor` on TensorFlow.

    Eagerly, a DTensor holding `tensor` laid out as `layout` (a
    `keras.distribution.TensorLayout`, whose mesh defaults to the current
    distribution's). Inside a step of a model on that mesh (`fit`,
    `evaluate`, `predict`, an eager call), the activation relaid out so.
    """
    if not hasattr(layout, "axes"):
        raise TypeError(
            "`layout` must be a `keras.distribution.TensorLayout`. Received: "
            f"layout={layout!r} of type {type(layout).__name__}"
        )
    axes = tuple(layout.axes)
    device_mesh = layout.device_mesh
    if device_mesh is not None:
        mesh = mesh_from_keras(device_mesh)
    else:
        current = state.scope_distribution()
        if current is None:
            raise ValueError(
                "The `TensorLayout` has no `device_mesh`, and no distribution is "
                f"set to take one from. Received: layout={layout!r}"
            )
        mesh = current.mesh
    return _keras_backend.lay_out_on_axes(tensor, axes, mesh)


def _get_device_count(device_type=None):
    return len(keras.distribution.list_devices(device_type))
