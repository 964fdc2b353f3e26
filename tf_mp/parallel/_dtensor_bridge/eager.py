"""Eager calls of a model on a mesh: `model(x)` as Keras users write it.

DTensor runs eager ops on DTensors, but a model's weights are DTensors and a
user's inputs are host values: DTensor refuses to mix them ("SelectV2 got a
regular tensor"), and dropout or gradient tapes need a traced function anyway.
So an eager call of a model attached to a mesh shards its tensor arguments along
the batch axis (padding a batch that does not divide, then trimming the outputs),
runs the call in a `tf.function` with the tf_mp step rules active (activation
layouts, dropout masks), and returns host tensors, as the call would off-mesh.
Python values (`training=True`) stay static arguments of that function.
"""

import numpy as np
import tensorflow as tf
from keras.src import backend as _keras_backend
from keras.src import tree
from keras.src.models import model as _keras_model

from tf_mp.parallel import _dtensor_bridge as bridge

_ORIGINAL_MODEL_CALL = _keras_model.Model.__call__


def _is_tensor_like(x):
    return isinstance(x, (np.ndarray, tf.Tensor, tf.Variable))


def _mesh_aware_call(self, *args, **kwargs):
    distribution = bridge.distribution_of(self)
    if (
        distribution is None
        or not tf.executing_eagerly()
        or _keras_backend.any_symbolic_tensors(args, kwargs)
    ):
        return _ORIGINAL_MODEL_CALL(self, *args, **kwargs)
    return call_on_mesh(self, distribution, args, kwargs)


def call_on_mesh(model, distribution, args, kwargs):
    """`model(*args, **kwargs)` on the distribution's mesh, returning host values."""
    tensors = [x for x in tree.flatten((args, kwargs)) if _is_tensor_like(x)]
    if not tensors:
        return _ORIGINAL_MODEL_CALL(model, *args, **kwargs)
    placed, size = bridge.distribute_batch(
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
        lambda t: bridge.gather(t)[:size] if _batched(t) else bridge.gather(t),
        outputs,
    )


def _batched(t):
    return tf.is_tensor(t) and t.shape.rank


def _eager_function(model, distribution):
    function = model.__dict__.get("_tf_mp_eager_call")
    if function is None:

        def run(args, kwargs):
            with bridge.step_context(distribution):
                return _ORIGINAL_MODEL_CALL(model, *args, **kwargs)

        function = tf.function(
            tf.autograph.experimental.do_not_convert(run), reduce_retracing=True
        )
        object.__setattr__(model, "_tf_mp_eager_call", function)
    return function


def install():
    """Makes eager calls of models on a mesh work (idempotent, process-wide:
    models off-mesh take one attribute lookup more per call)."""
    _keras_model.Model.__call__ = _mesh_aware_call
