"""Runs a tiny model single-device and sharded, and returns what to compare."""

import keras
import numpy as np
import tensorflow as tf

import tf_mp
from tests import tiny_models


def gradients(model, x, y, distribution=None):
    """Gradients of the training loss, as host arrays (slices made dense)."""
    loss_fn = tiny_models.loss()
    if distribution is not None:
        x, y = distribution.distribute_data((x, y))

    @tf.function
    def compute(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        return [tf.convert_to_tensor(g) for g in grads]

    return [np.asarray(tf_mp.gather(g)) for g in compute(x, y)]


def run(model_name, optimizer_name, mesh=None, epochs=2):
    """Forward output, gradients, `fit` history and final weights of one setup."""
    build, layout_map, data = tiny_models.MODELS[model_name]
    x, y = data()
    distribution = None
    if mesh is None:
        model = build()
    else:
        distribution = tf_mp.ModelParallel(mesh, layout_map(mesh))
        with distribution.scope():
            model = build()
    predictions = model.predict(x, batch_size=tiny_models.BATCH_SIZE, verbose=0)
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
    history = model.fit(
        x, y, batch_size=tiny_models.BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0
    )
    return {
        "model": model,
        "predictions": predictions,
        "gradients": grads,
        "history": history.history,
        "weights": model.get_weights(),
    }


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
