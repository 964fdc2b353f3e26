"""Checkpoints move between sharded and unsharded models without loss."""

import keras
import numpy as np
import pytest
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models


def _sharded_bert(mesh):
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        return tiny_models.bert_classifier()


def _trained(model):
    x, y = tiny_models.bert_data()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model


def _predict(model):
    return model.predict(tiny_models.bert_data()[0], batch_size=16, verbose=0)


def _assert_same_predictions(actual, expected):
    # Sharded and unsharded kernels sum in different orders: equal up to float32
    # rounding. The weights themselves are compared exactly.
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def _is_sharded(model):
    kernel = next(w for w in model.weights if w.path.endswith("query/kernel"))
    return isinstance(kernel.value, dtensor.DVariable) and "model" in (
        kernel.value.layout.sharding_specs
    )


@pytest.mark.parametrize("direction", ["sharded_to_unsharded", "unsharded_to_sharded"])
def test_save_weights_round_trip(make_mesh, tmp_path, direction):
    mesh = make_mesh((2, 2))
    if direction == "sharded_to_unsharded":
        source, target = _trained(_sharded_bert(mesh)), tiny_models.bert_classifier()
    else:
        source, target = _trained(tiny_models.bert_classifier()), _sharded_bert(mesh)
    path = str(tmp_path / "model.weights.h5")
    source.save_weights(path)
    target.load_weights(path)
    _assert_same_predictions(_predict(target), _predict(source))
    for got, want in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_weights_move_between_mesh_shapes(make_mesh, tmp_path):
    source = _trained(_sharded_bert(make_mesh((2, 2))))
    path = str(tmp_path / "model.weights.h5")
    source.save_weights(path)
    target = _sharded_bert(make_mesh((1, 4)))
    target.load_weights(path)
    assert _is_sharded(target)
    _assert_same_predictions(_predict(target), _predict(source))


def test_set_weights_places_values_on_the_mesh(make_mesh):
    reference = tiny_models.bert_classifier()
    target = _sharded_bert(make_mesh((1, 2)))
    rng = np.random.default_rng(0)
    new = [
        (0.05 * rng.normal(size=w.shape)).astype(w.dtype)
        for w in reference.get_weights()
    ]
    reference.set_weights(new)
    target.set_weights(new)
    assert _is_sharded(target)
    np.testing.assert_allclose(
        _predict(target), _predict(reference), rtol=1e-5, atol=1e-6
    )


def test_keras_file_loads_sharded_or_unsharded(make_mesh, tmp_path):
    mesh = make_mesh((2, 2))
    source = _trained(_sharded_bert(mesh))
    path = str(tmp_path / "model.keras")
    source.save(path)
    expected = _predict(source)

    unsharded = keras.models.load_model(path)
    assert not _is_sharded(unsharded)
    _assert_same_predictions(_predict(unsharded), expected)

    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        resharded = keras.models.load_model(path)
    assert _is_sharded(resharded)
    _assert_same_predictions(_predict(resharded), expected)


def test_keras_file_keeps_optimizer_state_and_training_continues(make_mesh, tmp_path):
    # keras-hub tasks override `compile`, so Keras does not restore their
    # optimizer from a .keras file (with or without tf_mp); a plain model does.
    x, y = tiny_models.mlp_data()
    mesh = make_mesh((2, 2))
    distribution = tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh))
    with distribution.scope():
        source = tiny_models.mlp()
    source.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
    source.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    path = str(tmp_path / "mlp.keras")
    source.save(path)

    unsharded = keras.models.load_model(path)
    with distribution.scope():
        resharded = keras.models.load_model(path)
    for loaded in (unsharded, resharded):
        assert int(loaded.optimizer.iterations) == 2
        for got, want in zip(loaded.optimizer.variables, source.optimizer.variables):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert isinstance(resharded.optimizer.variables[-1].value, dtensor.DVariable)

    expected = source.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for loaded in (unsharded, resharded):
        history = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        np.testing.assert_allclose(
            history.history["loss"], expected.history["loss"], rtol=1e-5
        )


class _FailsToSave(keras.layers.Layer):
    """A layer whose saving fails halfway through the file (a user's bug)."""

    def save_own_variables(self, store):
        raise RuntimeError("this layer cannot be saved")


@pytest.mark.parametrize("name", ["m.weights.h5", "m.keras"])
def test_a_failed_save_leaves_the_previous_file_whole(make_mesh, tmp_path, name):
    mesh = make_mesh((1, 2))
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    save = model.save_weights if name.endswith(".weights.h5") else model.save
    path = tmp_path / name
    save(path)
    complete = path.read_bytes()
    assert len(complete) > 1000

    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        failing = keras.Sequential([tiny_models.mlp(), _FailsToSave()])
    failing.build((None, 8))
    save = failing.save_weights if name.endswith(".weights.h5") else failing.save
    with pytest.raises(RuntimeError, match="cannot be saved"):
        save(path)
    assert path.read_bytes() == complete
    assert [p.name for p in tmp_path.iterdir()] == [name]  # No temporary left.
