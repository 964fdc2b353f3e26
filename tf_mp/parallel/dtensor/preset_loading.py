"""Loading a keras-hub preset straight onto the mesh.

keras-hub's `from_preset` builds the backbone (every variable filled by its
initializer) and then reads the weights file into it. On a mesh the first
step is wasted work and memory: while `KerasPresetLoader.load_backbone` or
`load_task` loads weights in a scope, variables are created on the mesh
without computing their initializers (each device allocates only its shard,
left unwritten), the file fills them, and a variable the file did not fill
gets its initializer's value afterwards. keras-hub frees the initial values
on JAX for the same reason (`jax_memory_cleanup`).
"""

import contextlib

import tensorflow as tf
from tensorflow.experimental import dtensor

from tf_mp.parallel import state


class DeferredVariables:
    """The variables created without their initial value, and how to get it."""

    def __init__(self):
        self._initializers = []  # (keras variable, () -> initial value)

    def create(self, keras_variable, initializer, layout):
        """An unwritten DTensor of `keras_variable`'s shape on `layout`: one
        uninitialized buffer per local device (`Empty`), packed; the file's
        values then overwrite it in place, so its pages are touched once.
        (`tf.zeros` run on the mesh kept a buffer per variable alive after the
        variable was gone, and the first assignment allocated anew; figures in
        `benchmarks/README.md`.) Never read before written:
        `initialize_unfilled` writes what the file did not."""
        self._initializers.append((keras_variable, initializer))
        shape = layout.local_shape_from_global_shape(list(keras_variable._shape))
        shards = []
        for device in layout.mesh.local_devices():
            with tf.device(device):
                shards.append(
                    tf.raw_ops.Empty(shape=shape, dtype=keras_variable._dtype)
                )
        return dtensor.pack(shards, layout)

    def initialize_unfilled(self):
        """Gives every variable no assignment has written since its creation
        its initializer's value."""
        for keras_variable, initializer in self._initializers:
            if not getattr(keras_variable._value, "tf_mp_written", False):
                with tf.init_scope():
                    keras_variable.assign(initializer())
        self._initializers = []


@contextlib.contextmanager
def deferred_initialization():
    """While open, new variables in a scope are created without their
    initializer's value (`DeferredVariables`)."""
    deferred = DeferredVariables()
    with state.changed(deferred=deferred):
        yield deferred
    deferred.initialize_unfilled()


def deferring(load):
    """keras-hub's `load`, with its variables deferred when it loads weights
    onto a mesh."""

    def run(self, cls, load_weights, *args, **kwargs):
        if not load_weights or state.scope_distribution() is None:
            return load(self, cls, load_weights, *args, **kwargs)
        with deferred_initialization():
            return load(self, cls, load_weights, *args, **kwargs)

    run.tf_mp_original = load
    return run
