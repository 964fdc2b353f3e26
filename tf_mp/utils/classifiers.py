"""What every classifier tf_mp trains shares: compile arguments and accuracy.

Keras is imported on first use: the `tf-mp` commands import this module, and
must start (and check their arguments) without starting TensorFlow.
"""

import numpy as np


def compile_arguments(optimizer, metric_name="accuracy"):
    """`compile` keywords for a classifier that outputs logits: sparse
    categorical cross-entropy and accuracy (logged as `metric_name`)."""
    import keras

    return dict(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name=metric_name)],
    )


def accuracy(model, x, labels, batch_size=64):
    """The fraction of `labels` that `model`'s arg-max prediction on `x` hits."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))
