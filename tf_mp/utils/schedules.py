"""How many steps a trial's `fit` runs: what a decaying learning rate spans."""

import inspect
import math

import keras
import tensorflow as tf

LR_SCHEDULES = ("constant", "linear")
_FIT = inspect.signature(keras.Model.fit)


def learning_rate(rate, schedule, steps):
    """`rate` for `schedule="constant"`; for `"linear"`, a schedule from `rate`
    down to 0 at `steps`."""
    if schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(rate, steps, 0.0)
    return rate


def fit_steps(x, args, kwargs, counted=None):
    """The optimizer steps of `model.fit(x, *args, **kwargs)`: epochs (after
    `initial_epoch`) times `steps_per_epoch`, or times the batches of `x` (a
    finite `tf.data.Dataset`, counted once when its size is unknown; or arrays
    in batches of `batch_size`, Keras's default 32, less `validation_split`'s
    rows). `counted`: an optional dict that keeps the batches counted of a
    dataset for the next call with the same `x` (a search's trials)."""
    given = _FIT.bind(None, x, *args, **kwargs).arguments
    epochs = given.get("epochs", 1) - given.get("initial_epoch", 0)
    per_epoch = given.get("steps_per_epoch")
    if per_epoch is None:
        per_epoch = _batches(
            x, given.get("batch_size"), given.get("validation_split", 0.0), counted
        )
    steps = int(epochs) * int(per_epoch)
    if steps < 1:
        raise ValueError(
            "A linear `lr_schedule` needs at least one training step. Received: "
            f"epochs={given.get('epochs', 1)}, "
            f"initial_epoch={given.get('initial_epoch', 0)}, "
            f"steps_per_epoch={per_epoch}"
        )
    return steps


def _batches(x, batch_size, validation_split, counted):
    if isinstance(x, tf.data.Dataset):
        size = int(x.cardinality())
        if size == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "A linear `lr_schedule` needs the number of steps: pass "
                "`steps_per_epoch` with an infinite dataset. Received: x with "
                "infinite cardinality"
            )
        if size == tf.data.UNKNOWN_CARDINALITY:
            counted = {} if counted is None else counted
            if id(x) not in counted:
                counted[id(x)] = (x, sum(1 for _ in x))  # `x` alive: ids unique.
            size = counted[id(x)][1]
        return size
    rows = len(keras.tree.flatten(x)[0])
    rows = math.floor(rows * (1.0 - validation_split))  # Keras's split.
    return math.ceil(rows / (batch_size or 32))
