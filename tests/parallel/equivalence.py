"""Runs a tiny model single-device and sharded, and returns what to compare."""

import contextlib
import functools
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tf_mp
from tests import tiny_models
from tf_mp.parallel import dtensor as engine
from tf_mp.utils.classifiers import build_optimizer


def gradients(model, x, y, distribution=None):
    """Gradients of the training loss, as host arrays (slices made dense).

    A custom step on a mesh is traced in the distribution's scope, so dropout
    follows the mesh's random-number rule (masks drawn at the global shape).
    """
    loss_fn = tiny_models.loss()
    scope = contextlib.nullcontext()
    if distribution is not None:
        x, y = distribution.distribute_data((x, y))
        scope = distribution.scope()

    @tf.function
    def compute(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        return [tf.convert_to_tensor(g) for g in grads]

    with scope:
        grads = compute(x, y)
    return [np.asarray(tf_mp.gather(g)) for g in grads]


def run(model_name, optimizer_name, mesh=None, epochs=2, per_process_dataset=False):
    """Forward output, gradients, `fit` history and final weights of one setup.

    With `per_process_dataset`, `fit` and `predict` read a `tf.data` pipeline of
    the same batches through `distribution.distribute_dataset` (each process
    of a multi-process mesh reads only its rows).
    """
    build, layout_map, data = tiny_models.MODELS[model_name]
    x, y = data()
    distribution = None
    if mesh is None:
        model = build()
    else:
        distribution = tf_mp.ModelParallel(mesh, layout_map(mesh))
        with distribution.scope():
            model = build()
    fit_inputs = dict(x=x, y=y, batch_size=tiny_models.BATCH_SIZE)
    predict_inputs = dict(x=x, batch_size=tiny_models.BATCH_SIZE)
    if per_process_dataset:
        batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(
            tiny_models.BATCH_SIZE, drop_remainder=True
        )
        fit_inputs = dict(x=distribution.distribute_dataset(batched))
        predict_inputs = dict(
            x=distribution.distribute_dataset(batched.map(lambda x, y: x))
        )
    predictions = model.predict(**predict_inputs, verbose=0)
    grads = gradients(model, x, y, distribution)
    model.compile(
        optimizer=tiny_models.OPTIMIZERS[optimizer_name](),
        loss=tiny_models.loss(),
        # Stateful metrics: their variables are built before the first step.
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(
                name="crossentropy", from_logits=True
            ),
        ],
    )
    if mesh is None:
        # As `compile_from_config` does: without it, Keras on TensorFlow traces
        # the first train step twice (once to create the optimizer's slots).
        build_optimizer(model)
    history = model.fit(**fit_inputs, epochs=epochs, shuffle=False, verbose=0)
    return {
        "model": model,
        "x": x,
        "predictions": predictions,
        "gradients": grads,
        "history": history.history,
        "weights": model.get_weights(),
    }


def assert_replicas_identical(model):
    """Every fully replicated variable (weights, optimizer slots, metric state)
    holds bitwise the same value on every device of its mesh."""
    variables = list(model.variables) + list(model.optimizer.variables)
    replicated = [
        v
        for v in variables
        if (layout := engine.variable_layout(v)) is not None
        and layout.is_fully_replicated()
    ]
    assert replicated, "no replicated mesh variable to check"
    for variable, copies in zip(replicated, engine.replica_values(replicated)):
        for device, copy in enumerate(copies[1:], start=1):
            np.testing.assert_array_equal(
                copy, copies[0], err_msg=f"{variable.path} on device {device}"
            )


@functools.cache
def _single_device_model(model_name):
    """One single-device model per name and process, loaded afresh by each
    check (its `predict` is traced once)."""
    return tiny_models.MODELS[model_name][0]()


def assert_saved_weights_reproduce(run_result, model_name):
    """A single-device model loaded from the trained model's saved weights
    predicts what the trained model predicts: the file holds what was trained."""
    model = run_result["model"]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "trained.weights.h5")
        model.save_weights(path)
        fresh = _single_device_model(model_name)
        fresh.load_weights(path)
    x = run_result["x"]
    batch = tiny_models.BATCH_SIZE
    np.testing.assert_allclose(
        fresh.predict(x, batch_size=batch, verbose=0),
        model.predict(x, batch_size=batch, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def assert_same_run(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(
        actual["predictions"], expected["predictions"], rtol=rtol, atol=atol
    )
    assert len(actual["gradients"]) == len(expected["gradients"])
    for got, want in zip(actual["gradients"], expected["gradients"]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert set(actual["history"]) == set(expected["history"])
    for key, values in expected["history"].items():
        np.testing.assert_allclose(
            actual["history"][key], values, rtol=rtol, err_msg=key
        )
    for got, want in zip(actual["weights"], expected["weights"]):
        # Weights accumulate float32 rounding from reordered reductions.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
