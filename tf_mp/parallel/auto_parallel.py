"""`auto_parallel`: the TPUStrategy engine on a TPU, else a DTensor mesh."""

import tensorflow as tf

from tf_mp.parallel import devices
from tf_mp.parallel import tpu as tpu_lib
from tf_mp.parallel.mesh import Mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.utils.checks import check_number


def auto_parallel(model_parallelism=2, layout_map=None, tpu=None, virtual_devices=8):
    """A model-parallel distribution for the hardware at hand.

    On a TPU (or with `tpu` given) it is `tf_mp.tpu.tpu_strategy(
    model_parallelism, tpu)`. Elsewhere it is a `tf_mp.ModelParallel` on a
    `batch x model` mesh of all GPUs, or of `virtual_devices` logical CPUs when
    there is no GPU, with `model_parallelism` devices on the model axis. Both
    have `scope()` and `num_replicas_in_sync`, so code written against one runs
    on the other.

    Args:
        model_parallelism: int. Cores or devices that split each model replica.
        layout_map: for the DTensor mesh, a `tf_mp.LayoutMap`, or a callable
            taking the `tf_mp.Mesh` and returning one (e.g.
            `tf_mp.bert_layout_map`). Defaults to `None`: tf_mp layers shard
            themselves, other weights are replicated.
        tpu: `None` (use a local TPU if one is present), `"local"`, or a TPU
            name / `grpc://` address.
        virtual_devices: int. Logical CPU devices to create when there is no
            TPU or GPU. Must be a multiple of `model_parallelism`.

    Returns:
        A `tf.distribute.TPUStrategy` or a `tf_mp.ModelParallel`.
    """
    if tpu is not None or tpu_lib.tpu_present():
        return tpu_lib.tpu_strategy(model_parallelism=model_parallelism, tpu=tpu)
    check_number("model_parallelism", model_parallelism, integer=True, low=1)
    device_type = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    if device_type == "CPU":
        devices.configure_virtual_devices(virtual_devices)
    count = len(devices.list_devices(device_type))
    if count % model_parallelism:
        raise ValueError(
            f"`model_parallelism` must divide the {count} {device_type} device(s). "
            f"Received: model_parallelism={model_parallelism}"
        )
    mesh = Mesh(
        {"batch": count // model_parallelism, "model": model_parallelism},
        device_type=device_type,
    )
    if callable(layout_map):
        layout_map = layout_map(mesh)
    return ModelParallel(mesh, layout_map)
