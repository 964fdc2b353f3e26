"""Inference latency of a Keras model, measured on the running machine."""

import time

import keras
import numpy as np


def measure_latency(model, example, batch_sizes=(1, 32), repeats=10, warmup=2):
    """Median milliseconds of `model.predict_on_batch` per batch size.

    Args:
        model: a Keras model (plain, or sharded on a tf_mp mesh).
        example: one batch of model inputs (arrays or a dict of arrays); its
            first row is tiled to each batch size.
        batch_sizes: batch sizes to time.
        repeats: timed calls per batch size (the median is reported).
        warmup: untimed calls first (tracing, caches).

    Returns:
        `{batch_size: milliseconds}`.
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1. Received: repeats={repeats}")
    first = keras.tree.map_structure(lambda a: np.asarray(a)[:1], example)
    timings = {}
    for batch_size in batch_sizes:
        batch = keras.tree.map_structure(
            lambda a, n=batch_size: np.repeat(a, n, axis=0), first
        )
        for _ in range(warmup):
            model.predict_on_batch(batch)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict_on_batch(batch)
            seconds.append(time.perf_counter() - start)
        timings[int(batch_size)] = 1000.0 * float(np.median(seconds))
    return timings
