"""The scoped Keras patches: what makes Keras create variables and models on a mesh.

Installed when the first `ModelParallel` scope opens, removed when the last one
closes. The eager-call patch (`eager.py`) is process-wide once a mesh variable
exists, since such a variable outlives every scope.
"""

import contextlib

import tensorflow as tf
from keras.src.backend.tensorflow import core as _keras_tf_core
from keras.src.backend.tensorflow import trainer as _keras_tf_trainer
from keras.src.random import seed_generator as _keras_seed_generator

from tf_mp.parallel.dtensor import generation
from tf_mp.parallel.dtensor import op_rewrites
from tf_mp.parallel.dtensor import preset_loading
from tf_mp.parallel.dtensor import randomness
from tf_mp.parallel.dtensor import state
from tf_mp.parallel.dtensor import steps
from tf_mp.parallel.dtensor import variables

_HOST = "/device:CPU:0"
_ORIGINAL_INITIALIZE = _keras_tf_core.Variable._initialize
_ORIGINAL_TRAINER_INIT = _keras_tf_trainer.TensorFlowTrainer.__init__
_ORIGINAL_GLOBAL_SEED_GENERATOR = _keras_seed_generator.global_seed_generator
_open_scopes = 0  # Scopes open (off_mesh included): the patches stay while > 0.


def _patched_initialize(self, value):
    distribution = state.scope_distribution()
    if distribution is None or isinstance(value, tf.Variable):
        return _ORIGINAL_INITIALIZE(self, value)
    deferred = state.get().deferred
    if deferred is not None and callable(value):
        with tf.init_scope():
            layout = variables.resolve_layout(distribution, self, self._shape)
            empty = deferred.create(self, value, layout)
            self._value = variables.new_mesh_variable(self, empty, layout, distribution)
        return
    # Keras's optimizer creates slots under `colocate_vars_with(parameter)`,
    # which eagerly means "on the DTensor device": compute on the host instead.
    with tf.init_scope(), tf.device(_HOST):
        if callable(value):
            value = value()
        value = tf.convert_to_tensor(value, dtype=self._dtype)
        layout = variables.resolve_layout(distribution, self, value.shape)
        self._value = variables.new_mesh_variable(self, value, layout, distribution)


def _patched_trainer_init(self, *args, **kwargs):
    _ORIGINAL_TRAINER_INIT(self, *args, **kwargs)
    distribution = state.scope_distribution()
    if distribution is not None:
        steps.attach_model(self, distribution)


def _off_mesh_global_seed_generator():
    """Keras's process-wide `SeedGenerator`, created outside every scope."""
    with off_mesh():
        return _ORIGINAL_GLOBAL_SEED_GENERATOR()


def _install():
    _keras_tf_core.Variable._initialize = _patched_initialize
    _keras_tf_trainer.TensorFlowTrainer.__init__ = _patched_trainer_init
    _keras_seed_generator.global_seed_generator = _off_mesh_global_seed_generator
    randomness.install()
    variables.install_layer_patches()
    generation.install()
    op_rewrites.install()
    preset_loading.install()


def _remove():
    _keras_tf_core.Variable._initialize = _ORIGINAL_INITIALIZE
    _keras_tf_trainer.TensorFlowTrainer.__init__ = _ORIGINAL_TRAINER_INIT
    _keras_seed_generator.global_seed_generator = _ORIGINAL_GLOBAL_SEED_GENERATOR
    randomness.uninstall()
    generation.uninstall()
    op_rewrites.uninstall()
    preset_loading.uninstall()


@contextlib.contextmanager
def _patched(**fields):
    global _open_scopes
    if _open_scopes == 0:
        _install()
    _open_scopes += 1
    try:
        with state.changed(**fields):
            yield
    finally:
        _open_scopes -= 1
        if _open_scopes == 0:
            _remove()


_held = False  # Whether `hold` keeps the patches installed outside scopes.


def hold(on):
    """Keeps the patches installed outside every scope (`on=True`), as Keras's
    own distribution, once bridged, may be set at any time; `False` lets them
    go with the last scope. Idempotent."""
    global _held, _open_scopes
    if on == _held:
        return
    _held = on
    if on:
        if _open_scopes == 0:
            _install()
        _open_scopes += 1
    else:
        _open_scopes -= 1
        if _open_scopes == 0:
            _remove()


def variable_scope(distribution):
    """While open, new Keras variables and models are placed on `distribution`."""
    return _patched(scope=distribution)


@contextlib.contextmanager
def off_mesh():
    """Suspends every open scope: variables created inside are plain Keras ones."""
    with state.changed(scope=state.OFF_MESH):
        yield


def step_context(distribution):
    """While open, a step of `distribution` is traced (and its scope is open)."""
    return _patched(scope=distribution, step=distribution)


def declare_axes(table):
    """Weights created inside get the axes of the first regex of `table`
    matching their path (unless the distribution's layout map says otherwise)."""
    return state.changed(declared=state.get().declared + (table,))
