"""`tf_mp.parallel.timing.watch_collectives`: the collectives of a compiled
step, read in-process (checked against DTensor's MLIR dump in
`tests/layers/megatron_communication_test.py`)."""

import keras
import numpy as np

import tf_mp
from tf_mp.parallel import timing


def _mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="up"),
            keras.layers.Dense(4, name="down"),
        ]
    )


def _batch():
    return np.ones((4, 8), "float32"), np.zeros((4, 4), "float32")


def test_a_mesh_step_reads_by_op_and_axis_and_only_when_compiled(make_mesh):
    mesh = make_mesh((2, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map["up/kernel"] = (None, "model")
    layout_map["up/bias"] = ("model",)
    layout_map["down/kernel"] = ("model", None)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        model = _mlp()
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    with timing.watch_collectives() as reading:
        model.train_on_batch(*_batch())
    # Forward, `down`'s partial sums (2 rows of 4 float32 per device) over the
    # model axis; the loss and every gradient grouped into one buffer over the
    # batch axis (DTensor pads it to 1024 float32). `up` reads the input, so
    # no input gradient is reduced.
    assert reading.collectives == {
        "all_reduce@model": {"count": 1, "bytes": 2 * 4 * 4},
        "all_reduce@batch": {"count": 1, "bytes": 1024 * 4},
    }
    with timing.watch_collectives() as again:
        model.train_on_batch(*_batch())  # Compiled already: nothing new.
    assert again.collectives is None


def test_a_step_off_the_mesh_reads_as_none():
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    with timing.watch_collectives() as reading:
        model.train_on_batch(*_batch())
    assert reading.collectives is None
