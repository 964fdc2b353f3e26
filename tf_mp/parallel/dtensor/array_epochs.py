"""Array inputs checked before the first step: every batch of an epoch must
divide the mesh's batch axis.

A batch is split along the batch axis, so one that the axis does not divide is
refused (`batches.py`). For a `tf.data` pipeline that is known only when the
batch arrives; for arrays, the batches are known before `fit` starts: full ones
of `batch_size` and a last, partial one of the rest (Keras's `ArrayDataAdapter`,
and keras-hub's tasks, which batch arrays the same way before preprocessing).
`fit` and `evaluate` refuse such an epoch before the first step, rather than
after the steps of the full batches (and, for validation data, after a whole
epoch of training).
"""

import inspect
import math

from keras.src import tree
from keras.src.trainers.data_adapters import array_slicing
from keras.src.trainers.data_adapters import data_adapter_utils

# Keras's batch size for arrays when neither `batch_size` nor steps are given.
_KERAS_DEFAULT_BATCH_SIZE = 32


def check_epochs(model, keras_method, args, kwargs, distribution):
    """Raises a `ValueError` when `model.fit` / `model.evaluate`, called with
    `args` and `kwargs`, would feed arrays in a batch that the batch axis of
    `distribution` does not divide."""
    axis, parts = distribution.batch_axis, distribution.num_replicas_in_sync
    if parts <= 1 or keras_method.__name__ not in ("fit", "evaluate"):
        return
    signature = inspect.signature(keras_method)
    given = _arguments(signature, model, args, kwargs)
    if given is None:
        return  # Keras reports the bad call itself.
    data = (given.get("x"), given.get("y"), given.get("sample_weight"))
    batch_size = given.get("batch_size")
    if keras_method.__name__ == "evaluate":
        _check(data, batch_size, given.get("steps"), parts, axis, "evaluate")
        return
    samples = _samples(data)
    validation = given.get("validation_data")
    split = given.get("validation_split")
    validation_rows = None
    if split and validation is None and samples:
        training = math.floor(samples * (1.0 - split))
        if training in (0, samples):
            return  # Keras refuses the split.
        samples, validation_rows = training, samples - training
    steps = given.get("steps_per_epoch")
    _check_rows(samples, batch_size, steps, parts, axis, "fit")
    if not _validates(model, given):
        return
    if "validation_batch_size" in signature.parameters:
        batch_size = given.get("validation_batch_size") or batch_size
    steps = given.get("validation_steps")
    what = "fit's validation data"
    if validation_rows is not None:
        _check_rows(validation_rows, batch_size, steps, parts, axis, what)
    elif validation is not None:
        validation = data_adapter_utils.unpack_x_y_sample_weight(validation)
        _check(validation, batch_size, steps, parts, axis, what)


def _arguments(signature, model, args, kwargs):
    """The call's arguments by name, `**kwargs` included; `None` if they do
    not bind."""
    try:
        bound = signature.bind(model, *args, **kwargs).arguments
    except TypeError:
        return None
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            bound = {**bound, **bound.pop(name, {})}
    return bound


def _validates(model, given):
    """Whether `fit` evaluates its validation data in any of its epochs."""
    frequency = given.get("validation_freq", 1)
    epochs = range(given.get("initial_epoch", 0), given.get("epochs", 1))
    return any(model._should_eval(epoch, frequency) for epoch in epochs)


def _samples(data):
    """The sample count of array inputs; `None` for a dataset or generator,
    whose batches are checked as they come."""
    leaves = [x for x in tree.flatten(data) if x is not None]
    if not leaves or not all(array_slicing.can_slice_array(x) for x in leaves):
        return None
    shape = getattr(leaves[0], "shape", None)
    return int(shape[0]) if shape and shape[0] is not None else None


def _check(data, batch_size, steps, parts, axis, what):
    _check_rows(_samples(data), batch_size, steps, parts, axis, what)


def _check_rows(samples, batch_size, steps, parts, axis, what):
    if not samples:
        return
    if not batch_size:
        batch_size = math.ceil(samples / steps) if steps else _KERAS_DEFAULT_BATCH_SIZE
    if min(batch_size, samples) % parts:
        raise ValueError(
            f"{what}: the batch size must be divisible by the size of mesh axis "
            f"'{axis}' ({parts}). Received: batch_size={batch_size} and "
            f"{samples} samples"
        )
    last = samples % batch_size if batch_size < samples else 0
    if steps is None and last % parts:  # With `steps` the last may not be read.
        raise ValueError(
            f"{what}: the last batch would hold {last} samples ({samples} "
            f"samples in batches of {batch_size}), which mesh axis '{axis}' "
            f"({parts}) does not divide. Drop the last {last % parts} samples, or "
            f"pick a batch size that leaves a multiple of {parts}. Received: "
            f"batch_size={batch_size} and {samples} samples"
        )
