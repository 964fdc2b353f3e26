"""One test per silent trap listed in DESIGN.md; each fails if its fix is removed."""

import os

import keras
import numpy as np
import pytest
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models


def _train_steps(model, optimizer, x, y, steps=2):
    model.compile(optimizer=optimizer, loss=tiny_models.loss())
    for step in range(steps):
        rows = slice(step * 16 % len(x), step * 16 % len(x) + 16)
        model.train_on_batch(x[rows], y[rows])
    return model.get_weights()


def _replicated_mlp(mesh):
    with tf_mp.ModelParallel(mesh).scope():
        return tiny_models.mlp()


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
@pytest.mark.parametrize("mesh_shape", [(4, 1), (2, 2)])
def test_sparse_embedding_gradients_train_like_single_device(
    make_mesh, mesh_shape, optimizer_name
):
    # Trap 1. The Embedding gradient is a tf.IndexedSlices with duplicate rows.
    # DTensor has no layout rule for the scatter ops SGD uses on slices, and
    # densifying the slices would change Keras Adam's result (it squares rows
    # before summing duplicates), so both optimizers are checked.
    x, y = tiny_models.embedding_data()
    expected = _train_steps(
        tiny_models.embedding_model(), tiny_models.OPTIMIZERS[optimizer_name](), x, y
    )
    mesh = make_mesh(mesh_shape)
    with tf_mp.ModelParallel(mesh, tiny_models.embedding_layout_map(mesh)).scope():
        model = tiny_models.embedding_model()
    actual = _train_steps(model, tiny_models.OPTIMIZERS[optimizer_name](), x, y)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mesh_shape", [(2, 1), (4, 1), (2, 2)])
def test_adam_updates_replicated_weights_on_a_batch_sharded_mesh(make_mesh, mesh_shape):
    # Trap 2. With DTensor's all-reduce combining on, Adam read its moments before
    # writing them: replicated weights stayed unchanged or jumped (v read as 0).
    # The pass is on (it groups the gradients' all-reduces); tf_mp's steps defer
    # their writes to the end, which is what this checks.
    assert os.environ["DTENSOR_ENABLE_COMBINE_ALL_REDUCES_OPTIMIZATION"] == "1"
    x, y = tiny_models.mlp_data()
    initial = tiny_models.mlp().get_weights()
    expected = _train_steps(
        tiny_models.mlp(), keras.optimizers.Adam(0.01), x, y, steps=1
    )
    actual = _train_steps(
        _replicated_mlp(make_mesh(mesh_shape)), keras.optimizers.Adam(0.01), x, y, 1
    )
    for got, want, start in zip(actual, expected, initial):
        assert not np.allclose(got, start), "Adam left a weight unchanged"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_optimizer_slots_created_outside_the_scope_live_on_the_mesh(make_mesh):
    # Trap 3. `compile` runs outside the scope and Adam creates its slots lazily
    # in the first step: they must be sharded like their parameter.
    mesh = make_mesh((2, 2))
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    x, y = tiny_models.mlp_data()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    layouts = {v.path: v.value.layout for v in model.trainable_weights}
    slots = 0
    for variable in model.optimizer.variables:
        assert isinstance(variable.value, dtensor.DVariable), variable.path
        for path, layout in layouts.items():
            if variable.path.endswith(path.replace("/", "_") + "_momentum"):
                assert variable.value.layout == layout, variable.path
                slots += 1
    assert slots == len(layouts)


def test_an_optimizer_built_in_the_scope_before_fit_matches_single_device(make_mesh):
    x, y = tiny_models.mlp_data()
    reference = tiny_models.mlp()
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(reference.trainable_variables)
    expected = _train_steps(reference, optimizer, x, y)

    mesh = make_mesh((1, 2))
    distribution = tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh))
    with distribution.scope():
        model = tiny_models.mlp()
        optimizer = keras.optimizers.Adam(0.01)
        optimizer.build(model.trainable_variables)
    actual = _train_steps(model, optimizer, x, y)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert all(isinstance(v.value, dtensor.DVariable) for v in optimizer.variables)


def test_an_optimizer_built_outside_the_scope_is_refused_clearly(make_mesh):
    mesh = make_mesh((1, 2))
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    before = model.get_weights()
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)  # Slots land beside mesh variables.
    model.compile(optimizer=optimizer, loss=tiny_models.loss())
    x, y = tiny_models.mlp_data()
    with pytest.raises(ValueError, match=r"created outside `ModelParallel.scope\(\)`"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "shape, source, target",
    [
        ((2, 8, 2, 4), 1, 2),  # (batch, seq, heads, head_dim): seq -> heads
        ((2, 8, 2, 4), 2, 3),
        ((1, 2, 8, 2, 4), 3, 4),  # a key cache's heads -> head_dim
    ],
)
def test_moving_a_mesh_axis_between_dimensions_keeps_the_values(
    make_mesh, shape, source, target
):
    # Trap 8. DTensor relayouts `(.., "model", None)` -> `(.., None, "model")` with
    # one all-to-all, which returned other values for these tensors (TF 2.21,
    # CPU), eagerly and traced, with no error. tf_mp turns the all-to-all off.
    assert os.environ["DTENSOR_USE_ALL_TO_ALL_RELAYOUT"] == "0"
    mesh = make_mesh((1, 2)).dtensor_mesh
    axes = [dtensor.UNSHARDED] * len(shape)
    before, after = list(axes), list(axes)
    before[source], after[target] = "model", "model"
    value = np.arange(np.prod(shape), dtype="float32").reshape(shape)
    placed = dtensor.relayout(
        dtensor.copy_to_mesh(value, dtensor.Layout.replicated(mesh, len(shape))),
        dtensor.Layout(before, mesh),
    )
    moved = dtensor.relayout(placed, dtensor.Layout(after, mesh))
    np.testing.assert_array_equal(tf_mp.parallel.gather(moved), value)
