"""`auto_parallel`: the TPUStrategy engine on a TPU, else a DTensor mesh."""

import tensorflow as tf

from tf_mp.parallel import devices
from tf_mp.parallel import tpu as tpu_lib
from tf_mp.parallel.mesh import Mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.utils.checks import check_number


def auto_parallel(
    model_parallelism=2, layout_map=None, tpu=None, virtual_devices=8, fallback=True
):
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
            TPU or GPU.
        fallback: bool. When `model_parallelism` does not fit the devices
            found (more than there are, or a count it does not divide), warn
            in one line and use the largest model parallelism that fits, so
            the same code runs on one TPU chip (Colab's v5e-1) and on eight
            (Kaggle's v5e-8). `False`: raise a `ValueError` instead.

    Returns:
        A `tf.distribute.TPUStrategy` or a `tf_mp.ModelParallel`.
    """
    if tpu is not None or tpu_lib.tpu_present():
        return tpu_lib.tpu_strategy(model_parallelism, tpu, fallback=fallback)
    check_number("model_parallelism", model_parallelism, integer=True, low=1)
    device_type = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    if device_type == "CPU":
        devices.configure_virtual_devices(virtual_devices)
    count = len(devices.list_devices(device_type))
    model_parallelism = devices.fitting_model_parallelism(
        model_parallelism, count, f"{device_type} device(s)", fallback
    )
    mesh = Mesh(
        {"batch": count // model_parallelism, "model": model_parallelism},
        device_type=device_type,
    )
    if callable(layout_map):
        layout_map = layout_map(mesh)
    return ModelParallel(mesh, layout_map)
