"""Eager calls of models and layers on a mesh: `model(x)` as Keras users write it.

DTensor runs eager ops on DTensors, but a model's weights are DTensors and a
user's inputs are host values: DTensor refuses to mix them ("SelectV2 got a
regular tensor"), and dropout or gradient tapes need a traced function anyway.
So an eager call of a model built in a `ModelParallel` scope, or of a layer
holding mesh variables, shards its tensor arguments along the batch axis
(padding a batch that does not divide, then trimming the outputs), runs the call
in a `tf.function` with the tf_mp step rules active (activation layouts,
dropout masks), and returns host tensors, as the call would off-mesh. Python
values (`training=True`) stay static arguments of that function. A layer called
eagerly for the first time inside a scope is built by a symbolic call first, so
its variables are on the mesh before it runs.
"""

import numpy as np
import tensorflow as tf
from keras.src import backend as _keras_backend
from keras.src import tree
from keras.src.layers import layer as _keras_layer

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import batches
from tf_mp.parallel.dtensor import output_layouts
from tf_mp.parallel.dtensor import pending_writes as writes_lib
from tf_mp.parallel.dtensor import steps
from tf_mp.parallel.dtensor import transfer

_ORIGINAL_CALL = _keras_layer.Layer.__call__


def _is_tensor_like(x):
    return isinstance(x, (np.ndarray, tf.Tensor, tf.Variable))


def mesh_aware_call_of(original):
    """`Layer.__call__` for `patches.py`: `mesh_aware_call`."""
    return mesh_aware_call


def mesh_aware_call(self, *args, **kwargs):
    """Keras's `Layer.__call__`, run on the mesh for eager calls of a model
    or layer on one (`patches.py` installs it)."""
    if not tf.executing_eagerly() or _keras_backend.any_symbolic_tensors(args, kwargs):
        return _ORIGINAL_CALL(self, *args, **kwargs)
    distribution = steps.layer_distribution(self)
    scope = state.scope_distribution()
    if distribution is None and scope is not None and not self.built:
        _build_symbolically(self, args, kwargs)
        distribution = steps.layer_distribution(self)
    if distribution is None:
        return _ORIGINAL_CALL(self, *args, **kwargs)
    return call_on_mesh(self, distribution, args, kwargs)


def _build_symbolically(layer, args, kwargs):
    def symbolic(x):
        if not _is_tensor_like(x):
            return x
        x = tf.convert_to_tensor(x)
        return _keras_backend.KerasTensor(x.shape, x.dtype)

    symbolic_args, symbolic_kwargs = tree.map_structure(symbolic, (args, kwargs))
    _ORIGINAL_CALL(layer, *symbolic_args, **symbolic_kwargs)


def call_on_mesh(model, distribution, args, kwargs):
    """`model(*args, **kwargs)` on the distribution's mesh, returning host values."""
    tensors = [x for x in tree.flatten((args, kwargs)) if _is_tensor_like(x)]
    if not tensors:
        return _ORIGINAL_CALL(model, *args, **kwargs)
    placed, size = batches.distribute_batch(
        tree.map_structure(
            lambda x: np.asarray(x) if _is_tensor_like(x) else x, tensors
        ),
        distribution,
        pad=True,
    )
    placed = iter(placed)
    args, kwargs = tree.map_structure(
        lambda x: next(placed) if _is_tensor_like(x) else x, (args, kwargs)
    )
    outputs = _eager_function(model, distribution)(args, kwargs)
    return tree.map_structure(
        lambda t: transfer.to_host(t)[:size] if _batched(t) else transfer.to_host(t),
        outputs,
    )


def _batched(t):
    return tf.is_tensor(t) and t.shape.rank


def _eager_function(model, distribution):
    function = model.__dict__.get("_tf_mp_eager_call")
    # Keras layers track attributes; this cache must stay out of their state.
    if function is None:
        output_layouts.pin_layer_outputs(model, distribution)

        def run(args, kwargs):
            with state.step_context(distribution):
                return _ORIGINAL_CALL(model, *args, **kwargs)

        function = tf.function(
            tf.autograph.experimental.do_not_convert(writes_lib.defer_writes(run)),
            reduce_retracing=True,
        )
        object.__setattr__(model, "_tf_mp_eager_call", function)
    return function
