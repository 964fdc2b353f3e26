"""`tf_mp.plan`'s arguments, checked: the model, memory sizes, the devices and
the meshes they allow, the sequence length."""

import re

import keras
import tensorflow as tf

from tf_mp.parallel.devices import default_device_type
from tf_mp.parallel.devices import list_devices
from tf_mp.planning.groups import REPLICATED
from tf_mp.utils.checks import check_number

UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 model (`keras.Model`). Received: "
            f"model={model!r} of type {type(model).__name__}"
        )
    if not model.built or not model.weights:
        raise ValueError(
            f"`model` must be built before planning: call it on a batch or "
            f"`model.build(input_shape)`. Received: the unbuilt {model.name!r} "
            f"({type(model).__name__})"
        )


def check_settings(batch_size, measure, objective, objectives):
    check_number("batch_size", batch_size, integer=True, low=1)
    check_number("measure", measure, integer=True, low=0)
    if objective not in objectives:
        raise ValueError(
            f"`objective` must be one of {objectives}. "
            f"Received: objective={objective!r}"
        )


def parse_bytes(argument, value):
    """Bytes from an int or a string such as `"2GB"` / `"512 MiB"`."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in UNITS or float(match.group(1)) <= 0:
        raise ValueError(
            f"`{argument}` must be a number of bytes > 0 or a size such as "
            f"'2GB' or '512MiB'. Received: {argument}={value!r}"
        )
    return int(float(match.group(1)) * UNITS[unit])


def candidate_meshes(devices, batch_size, groups):
    """`(device names, device type, [(batch, model)])`: the meshes the plan may
    use. A mesh's batch axis must divide `batch_size`; a model axis over 1 must
    let some group split."""
    names, shapes = _devices_and_shapes(devices)
    device_type = tf.DeviceSpec.from_string(names[0]).device_type
    count = len(names)
    if shapes is None:
        shapes = [(b, count // b) for b in range(1, count + 1) if count % b == 0]
        shapes = [(b, m) for b, m in shapes if batch_size % b == 0]
    else:
        for b, m in shapes:
            if batch_size % b:
                raise ValueError(
                    f"`batch_size={batch_size}` does not divide over the batch "
                    f"axis of the mesh {b}x{m} given in `devices`."
                )
    usable = [(b, m) for b, m in shapes if m == 1 or _splits(groups, m)]
    if not usable:
        tried = ", ".join(f"{b}x{m}" for b, m in shapes) or "none"
        raise ValueError(
            f"No mesh of {count} devices fits: `batch_size={batch_size}` must "
            "divide over the batch axis, and no group of the model splits over "
            f"the model axis that leaves (meshes: {tried}). "
            f"Pass a batch size divisible by {count}, or fewer `devices`."
        )
    return names, device_type, usable


def _splits(groups, model_size):
    return any(
        group.model_dims(option, model_size) is not None
        and any(d is not None for d in group.model_dims(option, model_size))
        for group in groups
        for option in group.options
        if option != REPLICATED
    )


def _devices_and_shapes(devices):
    available = list_devices(default_device_type())
    if devices is None:
        return available, None
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"`devices` must be between 1 and the {len(available)} devices "
                f"present. Received: devices={devices}"
            )
        return available[:devices], None
    if not isinstance(devices, (list, tuple)) or not devices:
        raise ValueError(
            "`devices` must be None, a count, a list of devices or a list of "
            f"mesh shapes. Received: devices={devices!r}"
        )
    if all(isinstance(d, (tuple, list, dict)) for d in devices):
        shapes = [_shape(d) for d in devices]
        sizes = {b * m for b, m in shapes}
        if len(sizes) != 1 or sizes.pop() > len(available):
            raise ValueError(
                "Mesh shapes in `devices` must all span the same number of "
                f"devices, at most the {len(available)} present. Received: "
                f"devices={devices!r}"
            )
        return available[: shapes[0][0] * shapes[0][1]], shapes
    return [getattr(d, "name", d) for d in devices], None


def _shape(entry):
    if isinstance(entry, dict):
        entry = (entry.get("batch"), entry.get("model"))
    if len(entry) != 2 or not all(isinstance(n, int) and n >= 1 for n in entry):
        raise ValueError(
            "A mesh shape in `devices` must be `(batch, model)` or "
            f"{{'batch': b, 'model': m}} with sizes >= 1. Received: {entry!r}"
        )
    return tuple(entry)


def sequence_length_of(model, groups, sequence_length):
    """Tokens per example: `sequence_length`, else the inputs' fixed second
    dimension for models with attention or embeddings, else 1."""
    if sequence_length is not None:
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be an int >= 1. Received: "
                f"sequence_length={sequence_length!r}"
            )
        return sequence_length
    if not any(g.kind in ("attention", "embedding") for g in groups):
        return 1
    try:
        inputs = keras.tree.flatten(model.input)
    except (AttributeError, ValueError):
        inputs = []
    lengths = {t.shape[1] for t in inputs if len(t.shape) >= 2}
    if len(lengths) == 1 and None not in lengths:
        return int(lengths.pop())
    raise ValueError(
        f"Pass `sequence_length`: the inputs of {model.name!r} do not fix it "
        f"(their second dimensions: {sorted(map(str, lengths)) or 'unknown'})."
    )
