"""The final candidates, measured: the model copied onto each candidate's mesh
and layout, trained on a synthetic batch; its step time, and the collectives of
its compiled step."""

import statistics
import time

import numpy as np
from keras.src import tree

from tf_mp.parallel import timing

# Timed steps per candidate: at least `MIN_STEPS`, then more until
# `MAX_STEPS` or `TIME_BUDGET_S` (small steps vary by tens of percent from one
# to the next on a shared machine; the median of a few misranks candidates
# 10-20% apart).
MIN_STEPS, MAX_STEPS = 3, 15
TIME_BUDGET_S = 2.0


def synthetic_batch(model, batch_size, sequence_length):
    """`(x, y)`: a batch for `model`'s inputs (ones for integer inputs such as
    token ids and masks, normal noise for float ones) and zero targets shaped
    as its outputs."""
    rng = np.random.default_rng(0)

    def make(shape, dtype):
        shape = [batch_size] + [
            sequence_length if d is None else int(d) for d in shape[1:]
        ]
        if np.issubdtype(np.dtype(dtype), np.integer):
            return np.ones(shape, dtype)
        return rng.standard_normal(shape).astype(dtype)

    try:
        inputs = model.input  # Functional and Sequential models.
    except (AttributeError, ValueError):
        inputs = None
    if inputs is not None:
        x = tree.map_structure(lambda t: make(t.shape, t.dtype), inputs)
    else:
        config = model.get_build_config() or {}
        shape = config.get("input_shape")
        if shape is None:
            raise ValueError(
                f"Cannot make a batch for {type(model).__name__}: it has no "
                "symbolic inputs and no recorded input shape. Pass `measure=0`."
            )
        x = tree.map_shape_structure(lambda s: make(s, "float32"), shape)
    outputs = model(x)
    y = tree.map_structure(lambda t: np.zeros(t.shape, "float32"), outputs)
    return x, y


def train_step(model, batch, optimizer):
    """`(seconds, collectives)`: the median wall time of a train step of
    `model` (already on its mesh) on `batch` over `MIN_STEPS` to `MAX_STEPS`
    steps (as many as `TIME_BUDGET_S` allows), after one step that traces and
    compiles, and the collectives of that compiled step (`None` where none
    was compiled for a mesh)."""
    x, y = batch
    if not isinstance(optimizer, str):  # A fresh copy for each model.
        optimizer = type(optimizer).from_config(optimizer.get_config())
    # `metrics=[]`: keras-hub tasks add accuracy for "auto" and for None.
    loss = tree.map_structure(lambda _: "mse", y)
    model.compile(optimizer=optimizer, loss=loss, metrics=[])
    with timing.watch_collectives() as reading:
        model.train_on_batch(x, y)
    times = []
    while len(times) < MIN_STEPS or (
        len(times) < MAX_STEPS and sum(times) < TIME_BUDGET_S
    ):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), reading.collectives
