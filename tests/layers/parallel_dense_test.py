import keras
import numpy as np
import pytest
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models
from tests.parallel import equivalence


def _mlp(column=tf_mp.layers.ColumnParallelDense, row=tf_mp.layers.RowParallelDense):
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((8,)),
            column(16, activation="gelu", name="up"),
            row(8, name="down"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="megatron_mlp",
    )


def _megatron_mlp():
    return _mlp()


def _plain_mlp():
    return _mlp(keras.layers.Dense, keras.layers.Dense)


def test_without_a_mesh_they_are_dense_layers():
    x, _ = tiny_models.mlp_data()
    np.testing.assert_allclose(
        _megatron_mlp().predict(x, verbose=0), _plain_mlp().predict(x, verbose=0)
    )


@pytest.mark.parametrize(
    "layer",
    [
        tf_mp.layers.ColumnParallelDense(6, model_axis="tp", gather_output=True),
        tf_mp.layers.RowParallelDense(6, input_is_parallel=False, use_bias=False),
    ],
)
def test_config_round_trip_and_keras_file(layer, tmp_path):
    restored = type(layer).from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((4,)), layer])
    path = str(tmp_path / "layer.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize("mesh_shape", [(1, 2), (2, 2), (2, 4)])
def test_layers_shard_their_own_weights_and_train_like_dense(make_mesh, mesh_shape):
    mesh = make_mesh(mesh_shape)
    with tf_mp.ModelParallel(mesh).scope():  # No layout map: layers declare it.
        model = _megatron_mlp()
    layouts = {w.path: w.value.layout.sharding_specs for w in model.weights}
    assert layouts["megatron_mlp/up/kernel"] == [dtensor.UNSHARDED, "model"]
    assert layouts["megatron_mlp/up/bias"] == ["model"]
    assert layouts["megatron_mlp/down/kernel"] == ["model", dtensor.UNSHARDED]
    assert layouts["megatron_mlp/down/bias"] == [dtensor.UNSHARDED]

    x, y = tiny_models.mlp_data()
    results = []
    for candidate in (_plain_mlp(), model):
        candidate.compile(
            optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss()
        )
        history = candidate.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        results.append((history.history["loss"], candidate.get_weights()))
    (expected_loss, expected_weights), (loss, weights) = results
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for got, want in zip(weights, expected_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_gradients_match_dense(make_mesh):
    mesh = make_mesh((2, 2))
    distribution = tf_mp.ModelParallel(mesh)
    with distribution.scope():
        model = _megatron_mlp()
    x, y = tiny_models.mlp_data()
    expected = equivalence.gradients(_plain_mlp(), x, y)
    actual = equivalence.gradients(model, x, y, distribution)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_layout_map_entry_overrides_the_declaration(make_mesh):
    mesh = make_mesh((1, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"up/kernel"] = (None, None)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        model = _megatron_mlp()
    kernel = next(w for w in model.weights if w.path.endswith("up/kernel"))
    assert kernel.value.layout.is_fully_replicated()


@pytest.mark.parametrize(
    "layer, message",
    [
        (
            tf_mp.layers.ColumnParallelDense(30, name="up"),
            r"ColumnParallelDense 'up': `units` must be divisible by the size of "
            r"mesh axis 'model' \(4\)\. Received: units=30",
        ),
        (
            tf_mp.layers.RowParallelDense(8, name="down"),
            r"RowParallelDense 'down': `input feature size` .*\(4\)\. Received: "
            r"input feature size=6",
        ),
    ],
)
def test_sizes_that_do_not_divide_the_model_axis_are_refused(make_mesh, layer, message):
    with tf_mp.ModelParallel(make_mesh((1, 4))).scope():
        with pytest.raises(ValueError, match=message):
            keras.Sequential([keras.Input((6,)), layer])
