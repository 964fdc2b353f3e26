"""What tf_mp layers call to shard themselves, on either engine.

One declaration drives both engines: on a DTensor mesh (`ModelParallel`) it
becomes layouts of variables and activations; under the TPUStrategy engine
(`tf_mp.parallel.tpu`), XLA SPMD annotations; `active_engine()` says which
one acts where a layer is called. Layers import this module only.

The collectives of tensor parallelism are named as in Megatron-LM's
`tensor_parallel/mappings.py`, by what they do to a tensor's layout in the
forward pass and to its gradient in the backward pass. Shapes are
`(batch, ..., features)`; "split" means the feature dimension is split over
`model_axis`. Outside a traced tf_mp step (and off the TPU engine) each is the
identity.
"""

import tensorflow as tf

from tf_mp.parallel import dtensor as _engine
from tf_mp.parallel import state
from tf_mp.parallel import tpu as _tpu

declare_axes = _engine.declare_axes


def active_mesh_shape():
    """`{axis: size}` of the `ModelParallel` whose scope is open, else `None`."""
    distribution = state.scope_distribution()
    return dict(distribution.mesh.shape) if distribution is not None else None


DTENSOR = "dtensor"
TPU = "tpu"


def active_engine():
    """Which engine shards what a layer computes here: `DTENSOR` while a tf_mp
    step is traced on a mesh, `TPU` while the TPUStrategy engine annotates
    (more than one core per replica), else `None` (everything is the
    identity)."""
    if state.step_distribution() is not None:
        return DTENSOR
    if _tpu.annotations_active():
        return TPU
    return None


def _lay_out(x, feature_axes, model_axis):
    engine = active_engine()
    if engine == DTENSOR:
        return _engine.relayout(x, feature_axes)
    if engine == TPU and hasattr(x, "shape") and x.shape.rank is not None:
        leading = (None,) * (x.shape.rank - len(feature_axes))
        return _tpu.annotate(x, leading + tuple(feature_axes), model_axis)
    return x


def copy_to_model_parallel_region(*tensors):
    """Megatron's `f`, before column-parallel layers that read a replicated input.

    Forward: identity (each tensor stays replicated). Backward: the partial input
    gradients of every projection reading the same tensor are summed first, then
    all-reduced once over `model_axis`, instead of one all-reduce each. Pass
    every input of the projections (the same tensor may appear several times).
    """
    merged = {}
    for x in tensors:
        if id(x) not in merged:
            merged[id(x)] = _engine.gradient_sum_point(x)
    return tuple(merged[id(x)] for x in tensors)


def scatter_to_model_parallel_region(x, model_axis):
    """Forward: `(..., features)` split over `model_axis`: a local slice of a
    replicated tensor, no communication; nothing at all for a tensor already
    split (a column-parallel output, whose layout this pins). Backward: the
    gradient stays split where the next layer consumes it split."""
    return _lay_out(x, (model_axis,), model_axis)


def replicate_from_model_parallel_region(x, model_axis):
    """`(..., features)` -> replicated over `model_axis`. DTensor picks the
    collective from the input's layout, so one function stands for two of
    Megatron's: after row-parallel layers (Megatron's `g`,
    `reduce_from_model_parallel_region`) per-device partial sums become their
    sum (one all-reduce forward, identity backward); after a column-parallel
    layer that gathers its output (`gather_from_model_parallel_region`) a split
    tensor is all-gathered (each device keeps its slice of the gradient)."""
    return _lay_out(x, (None,), model_axis)


def annotate(x, axes, model_axis):
    """Annotates an activation under the TPUStrategy engine only (one axis per
    dimension); DTensor propagates these layouts from the weights."""
    if active_engine() == TPU and hasattr(x, "shape") and x.shape.rank == len(axes):
        x = _tpu.annotate(x, tuple(axes), model_axis)
    return x


def annotate_weight(variable, axes, model_axis):
    """The variable's value, annotated under the TPUStrategy engine."""
    value = tf.convert_to_tensor(variable)
    return _tpu.annotate(value, axes, model_axis) if active_engine() == TPU else value


def annotations_active():
    """Whether the TPUStrategy engine annotates tensors here."""
    return active_engine() == TPU
