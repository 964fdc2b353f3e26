"""What every classifier tf_mp trains shares: compile arguments, an optimizer
built before the first step, and accuracy.

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


def build_optimizer(model):
    """Builds `model.optimizer` for the model's trainable variables now, as
    `keras.Model.compile_from_config` does. Left to the first traced step (as
    `fit` does without a distribution strategy), it makes TensorFlow trace
    that step twice: once to create the variables, once to run."""
    model.optimizer.build(model.trainable_variables)


def accuracy(model, x, labels, batch_size=64):
    """The fraction of `labels` that `model`'s arg-max prediction on `x` hits."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))
