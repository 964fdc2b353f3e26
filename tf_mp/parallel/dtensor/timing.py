"""Timings of the mesh itself, for the planner's cost model: a matmul on every
device at once (the flop rate each device gets while all compute) and an
all-reduce over all devices."""

import time

import tensorflow as tf
from tensorflow.experimental import dtensor

from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.transfer import place


def _best_seconds(function, args, repeats):
    dtensor.unpack(function(*args))[0].numpy()  # Trace and compile.
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dtensor.unpack(function(*args))[0].numpy()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_seconds(mesh, size, repeats=5):
    """Seconds for every device of `mesh` (a 1-D tf_mp-style DTensor mesh with
    axis `"devices"`) to multiply two `size x size` float32 matrices at once."""
    n = mesh.size
    a = place(
        tf.random.stateless_normal([n * size, size], seed=[1, 2]).numpy(),
        make_layout(mesh, ("devices", None)),
    )
    b = place(
        tf.random.stateless_normal([size, size], seed=[3, 4]).numpy(),
        make_layout(mesh, (None, None)),
    )
    return _best_seconds(tf.function(tf.matmul), (a, b), repeats)


def all_reduce_seconds(mesh, elements, repeats=5):
    """Seconds of one all-reduce of `elements` float32 values over `mesh`."""
    n = mesh.size
    x = place(tf.ones([n, elements]).numpy(), make_layout(mesh, ("devices", None)))
    total = tf.function(lambda x: tf.reduce_sum(x, axis=0))
    return _best_seconds(total, (x,), repeats)
