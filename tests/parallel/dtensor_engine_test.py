"""Host <-> mesh transfers and MeshVariable's dense scatter ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.experimental import dtensor

import tf_mp
from tf_mp.parallel import dtensor as bridge


@pytest.mark.parametrize(
    "axes", [(None, None), ("batch", None), (None, "model"), ("model", "batch")]
)
def test_place_then_gather_is_the_identity(make_mesh, axes):
    mesh = make_mesh((2, 4)).dtensor_mesh
    value = np.arange(8 * 16, dtype="float32").reshape(8, 16)
    placed = bridge.place(value, bridge.make_layout(mesh, axes))
    assert bridge.layout_axes(dtensor.fetch_layout(placed)) == axes
    np.testing.assert_array_equal(bridge.to_host(placed).numpy(), value)


def _slices(rows, values):
    return tf.IndexedSlices(
        tf.constant(values, tf.float32),
        tf.constant(rows, tf.int64),
        tf.constant([6, 4], tf.int64),
    )


@pytest.mark.parametrize("op", ["scatter_add", "scatter_sub", "scatter_update"])
def test_mesh_variable_scatter_matches_tf_variable(make_mesh, op):
    mesh = make_mesh((2, 2)).dtensor_mesh
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 4)).astype("float32")
    rows = [4, 1, 4, 0] if op != "scatter_update" else [4, 1, 0]  # Duplicates add.
    values = rng.normal(size=(len(rows), 4)).astype("float32")

    expected = tf.Variable(start)
    getattr(expected, op)(_slices(rows, values))

    variable = bridge.MeshVariable(
        bridge.place(start, bridge.make_layout(mesh, (None, "model")))
    )

    @tf.function
    def update(values):
        getattr(variable, op)(
            tf.IndexedSlices(values, tf.constant(rows, tf.int64), [6, 4])
        )

    update(bridge.place(values, bridge.make_layout(mesh, (None, "model"))))
    np.testing.assert_allclose(variable.numpy(), expected.numpy(), rtol=1e-6)


def test_mesh_variable_assign_accepts_host_values(make_mesh):
    mesh = make_mesh((1, 4)).dtensor_mesh
    variable = bridge.MeshVariable(
        bridge.place(
            np.zeros((4, 8), "float32"), bridge.make_layout(mesh, (None, "model"))
        )
    )
    variable.assign(np.ones((4, 8)))
    variable.assign_add(np.ones((4, 8)))
    variable.assign_sub(np.full((4, 8), 0.5))
    np.testing.assert_array_equal(variable.numpy(), np.full((4, 8), 1.5, "float32"))


def test_a_weight_on_a_mesh_has_the_name_it_has_on_one_device(make_mesh):
    def dense():
        layer = keras.layers.Dense(4, name="up")
        layer.build((None, 3))
        return layer

    expected = dense()
    mesh = make_mesh((1, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map["up/kernel"] = (None, "model")
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        layer = dense()
    assert layer.kernel.value.name == expected.kernel.value.name == "up/kernel:0"
    assert layer.bias.value.name == expected.bias.value.name
