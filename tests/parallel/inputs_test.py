"""Inputs: tf.data, dict inputs, evaluate, validation, uneven batches."""

import numpy as np
import pytest
import tensorflow as tf

import tf_mp
from tests import tiny_models


def _bert(mesh=None):
    if mesh is None:
        model = tiny_models.bert_classifier()
    else:
        with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
            model = tiny_models.bert_classifier()
    model.compile(
        optimizer=tiny_models.OPTIMIZERS["adam"](),
        loss=tiny_models.loss(),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def test_tf_data_dict_inputs_fit_and_evaluate_like_single_device(make_mesh):
    x, y = tiny_models.bert_data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    results = []
    for mesh in (None, make_mesh((2, 2))):
        model = _bert(mesh)
        history = model.fit(dataset, validation_data=dataset, epochs=2, verbose=0)
        results.append(
            (history.history, model.evaluate(dataset, return_dict=True, verbose=0))
        )
    (expected_history, expected_eval), (history, evaluation) = results
    assert set(history) == set(expected_history)
    for key in expected_history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-5)
    for key in expected_eval:
        np.testing.assert_allclose(evaluation[key], expected_eval[key], rtol=1e-5)


def test_a_batch_that_does_not_divide_the_batch_axis_is_refused(make_mesh):
    x, y = tiny_models.bert_data()
    model = _bert(make_mesh((2, 1)))
    before = model.get_weights()
    with pytest.raises(
        ValueError, match=r"axis 'batch' \(2\)\. Received: batch_size=15"
    ):
        model.fit(x, y, batch_size=15, epochs=1, verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def _mlp(mesh):
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    model.compile(optimizer="adam", loss=tiny_models.loss())
    return model


def _first_rows(data, rows):
    return (
        {k: v[:rows] for k, v in data.items()}
        if isinstance(data, dict)
        else data[:rows]
    )


# Keras's own `fit` signature (the MLP) and keras-hub's `Task.fit`, which
# batches arrays itself before preprocessing (the BERT classifier).
@pytest.mark.parametrize("name", ["mlp", "bert"])
def test_arrays_whose_last_batch_does_not_divide_are_refused_before_a_step(
    make_mesh, name
):
    """32 samples; on a batch axis of 4, 22 in batches of 8 leave a last batch
    of 6. Each call is refused before its first step: no weight moves."""
    model = (_mlp if name == "mlp" else _bert)(make_mesh((4, 2)))
    x, y = (tiny_models.mlp_data if name == "mlp" else tiny_models.bert_data)()
    x22, y22 = _first_rows(x, 22), y[:22]
    before = model.get_weights()
    last_batch = r"the last batch would hold 6 samples \(22 samples in batches of 8\)"
    calls = [
        ("fit", lambda: model.fit(x22, y22, batch_size=8, verbose=0)),
        ("evaluate", lambda: model.evaluate(x22, y22, batch_size=8, verbose=0)),
        (
            "fit's validation data",
            lambda: model.fit(
                x, y, batch_size=8, validation_data=(x22, y22), verbose=0
            ),
        ),
        # 30% of 32 for validation leaves 22 to train on.
        ("fit", lambda: model.fit(x, y, batch_size=8, validation_split=0.3, verbose=0)),
    ]
    for what, call in calls:
        with pytest.raises(ValueError, match=f"^{what}: {last_batch}.*'batch' \\(4\\)"):
            call()
    with pytest.raises(ValueError, match=r"Received: batch_size=6 and 32 samples"):
        model.fit(x, y, batch_size=6, verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    # What Keras never feeds is not refused: validation data that no epoch
    # evaluates, and a last batch that `steps_per_epoch` stops short of.
    model.fit(
        x, y, batch_size=8, validation_data=(x22, y22), validation_freq=2, verbose=0
    )
    model.fit(x22, y22, batch_size=8, steps_per_epoch=2, verbose=0)
    assert any(
        not np.array_equal(got, want) for got, want in zip(model.get_weights(), before)
    )


def test_predict_pads_uneven_batches_and_trims_the_output(make_mesh):
    x, _ = tiny_models.bert_data()
    x = {k: v[:13] for k, v in x.items()}
    expected = _bert().predict(x, batch_size=5, verbose=0)
    actual = _bert(make_mesh((4, 1))).predict(x, batch_size=5, verbose=0)
    assert actual.shape == (13, 2)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_batch_axis_none_feeds_every_device_the_whole_batch(make_mesh):
    x, y = tiny_models.mlp_data()
    reference = tiny_models.mlp()
    reference.compile(optimizer="sgd", loss=tiny_models.loss())
    expected = reference.fit(x, y, batch_size=7, epochs=1, verbose=0, shuffle=False)
    mesh = make_mesh((2,), axis_names=("model",))
    with tf_mp.ModelParallel(
        mesh, tiny_models.mlp_layout_map(mesh), batch_axis=None
    ).scope():
        model = tiny_models.mlp()
    model.compile(optimizer="sgd", loss=tiny_models.loss())
    actual = model.fit(x, y, batch_size=7, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(
        actual.history["loss"], expected.history["loss"], rtol=1e-5
    )


def test_unknown_batch_axis_is_refused(make_mesh):
    with pytest.raises(ValueError, match=r"batch_axis.*Received: batch_axis='data'"):
        tf_mp.ModelParallel(make_mesh((2, 2)), batch_axis="data")


def test_a_non_divisible_layout_fails_when_the_variable_is_created(make_mesh):
    mesh = make_mesh((1, 4))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"hidden/kernel"] = (None, "model")
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        with pytest.raises(
            ValueError, match=r"'mlp/hidden/kernel'.*\(4\)\. Received: 6"
        ):
            import keras

            keras.Sequential(
                [keras.Input((8,)), keras.layers.Dense(6, name="hidden")], name="mlp"
            )


def _dtensor_compiles():
    from tensorflow.dtensor.python import api as dtensor_api

    return dtensor_api._dtensor_device()._get_stats().get("function_manager.miss", 0)


@pytest.mark.parametrize("mesh_shape", [(1, 2), (2, 2)])
def test_small_integer_batches_compile_each_step_function_once(make_mesh, mesh_shape):
    """Labels of 16 int32 values: DTensor turns a replicated small integer
    input into a constant and compiles again when its value changes. Every
    batch has different labels here, and each function compiles once."""
    mesh = make_mesh(mesh_shape)
    x, y = tiny_models.mlp_data()
    y = y.astype("int32")
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    model.compile(optimizer="sgd", loss=tiny_models.loss())
    batch = tiny_models.BATCH_SIZE
    assert len({tuple(y[i : i + batch]) for i in range(0, len(y), batch)}) > 1
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # Compiles the step.
    before = _dtensor_compiles()
    model.fit(x[::-1], y[::-1], batch_size=batch, epochs=2, verbose=0)
    model.evaluate(x, y, batch_size=batch, verbose=0)  # Compiles the test step.
    model.evaluate(x[::-1], y[::-1], batch_size=batch, verbose=0)
    assert _dtensor_compiles() - before == 1
