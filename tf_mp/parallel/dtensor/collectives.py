"""Activation layouts inside a tf_mp step: the collectives of tensor parallelism.

Each function is a no-op outside a traced tf_mp step (no mesh, Keras's symbolic
builds, user functions), where DTensor propagates layouts from the weights.
"""

import tensorflow as tf
from keras.src.backend.common import masking as _keras_masking
from tensorflow.experimental import dtensor

from tf_mp.parallel import state
from tf_mp.parallel.dtensor.layouts import make_layout


def relayout(x, feature_axes):
    """Dimension 0 on the batch axis, the trailing dimensions on `feature_axes`,
    the rest replicated. Axes the mesh lacks mean "replicated".

    What this costs depends on `x`'s layout before: from partial sums over an
    axis, an all-reduce; from a dimension split over an axis now replicated, an
    all-gather; from replicated to split, a local slice.
    """
    distribution = state.step_distribution()
    if distribution is None or not isinstance(x, tf.Tensor):
        return x
    mesh = distribution.mesh
    rank = x.shape.rank
    axes = (distribution.batch_axis,) + (None,) * (rank - 1 - len(feature_axes))
    axes = axes + tuple(feature_axes)
    axes = tuple(a if a in mesh.shape else None for a in axes)
    return dtensor.relayout(x, make_layout(mesh.dtensor_mesh, axes))


def gradient_sum_point(x):
    """`x` through an identity, keeping its Keras mask.

    When one tensor feeds several column-parallel projections (attention's query,
    key and value), each backward matmul leaves a partial sum that DTensor
    all-reduces on its own. Reading `x` through one identity makes the tape add
    those partial gradients in one `AddN` of all-reduces only, which DTensor's
    `DTensorAllReduceSumOptimization` folds into one all-reduce of the sum:
    Megatron's `f`.
    """
    if state.step_distribution() is None or not isinstance(x, tf.Tensor):
        return x
    y = tf.identity(x)
    mask = _keras_masking.get_keras_mask(x)
    if mask is not None:
        _keras_masking.set_keras_mask(y, mask)
    return y
