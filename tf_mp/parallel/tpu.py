"""The TPUStrategy engine: tf_mp layouts as XLA SPMD annotations on Cloud TPUs.

Inside `tf.distribute.TPUStrategy(..., experimental_spmd_xla_partitioning=True)`
with k cores per replica, tf_mp layers translate the axes they declare into
`partition_dimensions` and annotate tensors as
`strategy.experimental_split_to_logical_devices` does. XLA then splits the
computation and activations over the k cores. Unlike a DTensor TPU mesh, this
engine keeps a full copy of each variable per core (`TPUReplicatedVariable`):
it splits compute, not parameter memory.
"""

import glob
import os

import numpy as np
import tensorflow as tf
from tensorflow.python.compiler.xla.experimental import xla_sharding

from tf_mp.parallel import devices
from tf_mp.parallel import state
from tf_mp.utils.checks import check_number

TENSORFLOW_TPU_VERSION = "2.20"


def partition_dimensions(axes, shape, model_parallelism, model_axis="model"):
    """Translates a tf_mp layout into TPUStrategy `partition_dimensions`.

    Args:
        axes: one mesh axis name or `None` per dimension, as layers declare.
        shape: the tensor's shape (`None` for unknown dimensions).
        model_parallelism: int. Cores per replica (logical devices).
        model_axis: str. The axis that maps to the cores. Other axes (the batch
            axis) are handled by the replicas and map to 1.

    Returns:
        A list of ints, one per dimension, whose product is `model_parallelism`
        when the layout splits a dimension, else all ones.
    """
    if len(axes) != len(shape):
        raise ValueError(
            f"The layout {tuple(axes)} has rank {len(axes)} but the tensor has "
            f"shape {tuple(shape)}."
        )
    dims = [model_parallelism if axis == model_axis else 1 for axis in axes]
    if dims.count(model_parallelism) > 1 and model_parallelism > 1:
        raise ValueError(
            f"Mesh axis {model_axis!r} may split only one dimension. "
            f"Received: {tuple(axes)}"
        )
    for dim, (size, parts) in enumerate(zip(shape, dims)):
        if size is not None and size % parts:
            raise ValueError(
                f"Dimension {dim} of a tensor of shape {tuple(shape)} must be "
                f"divisible by model_parallelism={model_parallelism}. "
                f"Received: {size}"
            )
    return dims


def _logical_devices_per_replica():
    forced = state.get().tpu_cores
    if forced is not None:
        return forced
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, (tf.distribute.TPUStrategy,)):
        return None
    return strategy.extended._tpu_devices.shape[1]


def annotations_active():
    """Whether tensors are annotated here (TPU engine, > 1 core per replica)."""
    k = _logical_devices_per_replica()
    return bool(k and k > 1)


def annotate(tensor, axes, model_axis="model"):
    """Annotates `tensor` with the XLA sharding of `axes` under the TPU engine.

    A no-op outside a TPU replica context with more than one core per replica
    (and outside `logical_device_annotations`).
    """
    k = _logical_devices_per_replica()
    if not k or k == 1 or not isinstance(tensor, tf.Tensor):
        return tensor
    dims = partition_dimensions(axes, tensor.shape.as_list(), k, model_axis)
    if np.prod(dims) != k:
        return tensor  # Replicated over the cores: nothing to annotate.
    # What `TPUStrategy.experimental_split_to_logical_devices` emits.
    return xla_sharding.tile(tensor, np.arange(k).reshape(dims), use_sharding_op=True)


def logical_device_annotations(model_parallelism):
    """Annotates as if under a TPUStrategy with `model_parallelism` cores per
    replica. For inspecting the annotated graph on machines without a TPU."""
    return state.changed(tpu_cores=int(model_parallelism))


def tpu_strategy(model_parallelism=1, tpu=None, fallback=True):
    """A `TPUStrategy` with `model_parallelism` cores per replica (XLA SPMD).

    Args:
        model_parallelism: int. Cores that split each replica's model; the
            others become data-parallel replicas.
        tpu: `None` or `"local"` for the TPU VM the code runs on (Colab's
            v5e-1, Kaggle's v5e-8), or a TPU name / `grpc://` address.
        fallback: bool. When `model_parallelism` does not fit the topology
            found (more cores than there are, a count that does not divide
            them or cannot be placed on the chip grid), warn in one line and
            use the largest that fits. `False`: raise a `ValueError`.

    Returns:
        `tf.distribute.TPUStrategy` with `experimental_spmd_xla_partitioning`
        when a replica has more than one core.
    """
    check_number("model_parallelism", model_parallelism, integer=True, low=1)
    target = "local" if tpu is None else tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        if target != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        topology = tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError) as error:
        raise _explain(error, target) from error
    assignment = device_assignment(topology, model_parallelism, fallback)
    return tf.distribute.TPUStrategy(
        resolver,
        experimental_device_assignment=assignment,
        experimental_spmd_xla_partitioning=assignment.num_cores_per_replica > 1,
    )


def device_assignment(topology, model_parallelism, fallback=True):
    """The `tf.tpu.experimental.DeviceAssignment` of `tpu_strategy`: replicas
    of `model_parallelism` neighbouring cores (see `fallback` there)."""
    cores = topology.num_tasks * topology.num_tpus_per_task
    model_parallelism = devices.fitting_model_parallelism(
        model_parallelism,
        cores,
        f"TPU core(s) (topology {list(topology.mesh_shape)})",
        fallback,
        fits=lambda k: _computation_shape(topology, k) is not None,
    )
    return tf.tpu.experimental.DeviceAssignment.build(
        topology,
        computation_shape=_computation_shape(topology, model_parallelism),
        num_replicas=cores // model_parallelism,
    )


def _computation_shape(topology, model_parallelism):
    """The block of cores one replica takes, as `[x, y, z, core]`: the cores of
    a chip first (2 on v2/v3, 1 on v4 and later), then chips along x, y and z;
    None when `model_parallelism` cores do not make a block that tiles the
    topology."""
    shape = [1, 1, 1, 1]
    remaining = model_parallelism
    for dim in (3, 0, 1, 2):
        size = int(topology.mesh_shape[dim])
        shape[dim] = max(
            d for d in range(1, size + 1) if size % d == remaining % d == 0
        )
        remaining //= shape[dim]
    return shape if remaining == 1 else None


def tpu_present():
    """Whether this machine has TPU hardware: TPU VMs expose /dev/accel* (v2-v4)
    or /dev/vfio/<n> (v5+) and set TPU_* variables. Needs no TPU kernels."""
    if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):
        return True
    return any(v in os.environ for v in ("TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR"))


def _explain(error, target):
    text = str(error)
    missing_kernels = "ConfigureDistributedTPU" in text or "No OpKernel" in text
    if missing_kernels and (target != "local" or tpu_present()):
        return RuntimeError(
            f"A TPU was found, but TensorFlow {tf.__version__} has no TPU kernels. "
            f"Install the matching pair: pip install 'tensorflow=="
            f"{TENSORFLOW_TPU_VERSION}.*' 'tensorflow-tpu=={TENSORFLOW_TPU_VERSION}.*' "
            "(or tf_mp's `[tpu]` extra), then restart the runtime."
        )
    where = (
        "this machine (no /dev/accel* or /dev/vfio TPU devices)"
        if target == "local"
        else f"tpu={target!r} ({text.strip().splitlines()[0] if text.strip() else ''})"
    )
    return RuntimeError(
        f"No TPU found on {where}. On Colab choose a TPU runtime; on CPU or GPU "
        "use `tf_mp.Mesh` and `tf_mp.ModelParallel` instead."
    )
