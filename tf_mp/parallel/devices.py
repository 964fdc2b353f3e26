"""Logical devices: splitting one physical CPU (or GPU) into several."""

import warnings

import tensorflow as tf

from tf_mp.parallel.dtensor import processes

_PREFERENCE = ("TPU", "GPU", "CPU")


def configure_virtual_devices(n, device_type="CPU", memory_limit=None):
    """Splits the first physical `device_type` device into `n` logical devices.

    Must run before TensorFlow initialises its devices (before the first op),
    and before `tf_mp.initialize()`, which starts them. It runs no op itself,
    so the two set-up calls go at the top of a script in this order. It is
    idempotent: calling it again with the same `n` is a no-op. List the
    devices afterwards with `tf_mp.list_devices()` (which starts TensorFlow).

    Args:
        n: int. The number of logical devices. Must be >= 1.
        device_type: str. `"CPU"` or `"GPU"`. Defaults to `"CPU"`.
        memory_limit: int. Megabytes per logical GPU; required for `"GPU"`.

    Example:

    ```python
    import tf_mp
    tf_mp.configure_virtual_devices(8)  # 8 logical CPUs for a 2x4 mesh
    ```
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"`n` must be an int. Received: n={n!r}")
    if n < 1:
        raise ValueError(f"`n` must be >= 1. Received: n={n}")
    device_type = str(device_type).upper()
    if device_type not in ("CPU", "GPU"):
        raise ValueError(
            "`device_type` must be 'CPU' or 'GPU'. "
            f"Received: device_type={device_type!r}"
        )
    if device_type == "GPU" and memory_limit is None:
        raise ValueError(
            "`memory_limit` (megabytes per logical GPU) is required when splitting "
            "a GPU. Received: memory_limit=None"
        )
    physical = tf.config.list_physical_devices(device_type)
    if not physical:
        raise RuntimeError(f"TensorFlow sees no physical {device_type} device.")
    current = tf.config.get_logical_device_configuration(physical[0]) or []
    if len(current) == n:
        return
    config = tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit)
    try:
        tf.config.set_logical_device_configuration(physical[0], [config] * n)
    except RuntimeError as error:
        # This process's own devices: after `tf_mp.initialize` TensorFlow
        # lists every process's.
        existing = len(list_devices(device_type, local=True))
        if existing == n:
            return
        if processes.started() is not None:
            started_by = (
                "`tf_mp.initialize()` started them when it joined the cluster. "
                f"Call `tf_mp.configure_virtual_devices({n})` before it, or set "
                f"TF_MP_VIRTUAL_DEVICES={n} for `tf_mp.initialize()` to split them."
            )
        else:
            started_by = (
                "Something ran a TensorFlow op or listed TensorFlow's logical "
                f"devices first. Call `tf_mp.configure_virtual_devices({n})` "
                "before that (at the top of your script, or in a pytest "
                "conftest), or restart the Python process."
            )
        raise RuntimeError(
            f"TensorFlow has already initialised {existing} logical {device_type} "
            f"device(s) in this process, so they cannot be split into n={n} any "
            f"more. {started_by}"
        ) from error


def default_device_type():
    """The preferred accelerator present: TPU, then GPU, then CPU."""
    for device_type in _PREFERENCE:
        if tf.config.list_logical_devices(device_type):
            return device_type
    return "CPU"


def list_devices(device_type=None, local=False):
    """Full names of the logical devices of `device_type` (default: preferred).

    After `tf_mp.initialize` joined several processes, TensorFlow lists the
    devices of all of them; `local=True` keeps this process's own.
    """
    device_type = (device_type or default_device_type()).upper()
    if device_type not in _PREFERENCE:
        raise ValueError(
            "`device_type` must be one of 'TPU', 'GPU', 'CPU'. "
            f"Received: device_type={device_type!r}"
        )
    names = [d.name for d in tf.config.list_logical_devices(device_type)]
    if local:
        task = processes.process_id()
        names = [n for n in names if tf.DeviceSpec.from_string(n).task in (None, task)]
    return names


def fitting_model_parallelism(model_parallelism, count, what, fallback, fits=None):
    """The model parallelism to use on `count` devices.

    `model_parallelism` when it divides `count` (and `fits(k)`, a topology's
    own condition, holds); else, with `fallback`, the largest `k` below it
    that does, with a one-line warning (a v5e-1 Colab runtime has one core:
    the same notebook runs there with `model_parallelism=1`); without
    `fallback`, a `ValueError`. `what` names the devices in the messages.
    """
    fitting = [
        k
        for k in range(min(model_parallelism, count), 0, -1)
        if count % k == 0 and (fits is None or fits(k))
    ]
    if fitting[0] == model_parallelism:
        return model_parallelism
    if not fallback:
        raise ValueError(
            f"`model_parallelism` must divide the {count} {what} found. Received: "
            f"model_parallelism={model_parallelism} (with fallback=False; "
            f"model_parallelism={fitting[0]} fits)"
        )
    warnings.warn(
        f"model_parallelism={model_parallelism} does not fit the {count} {what} "
        f"found: using model_parallelism={fitting[0]}.",
        stacklevel=3,
    )
    return fitting[0]
