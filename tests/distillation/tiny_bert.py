"""Tiny random-init BERT classifiers and token data for the distillation tests."""

import keras
import keras_hub
import numpy as np
import tensorflow as tf

VOCAB, SEQ = 30, 12


def classifier(
    num_layers=4, hidden=16, heads=4, ff=32, seed=0, classes=2, vocab=VOCAB, dropout=0.0
):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab,
        num_layers=num_layers,
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=ff,
        max_sequence_length=SEQ,
        dropout=dropout,
    )
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=classes, preprocessor=None, dropout=dropout
    )


def data(n=32, seed=0):
    """`(x, y)` with padded sequences of varied length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, SEQ + 1, size=(n, 1))
    mask = (np.arange(SEQ)[None, :] < lengths).astype("int32")
    x = {
        "token_ids": (rng.integers(1, VOCAB, size=(n, SEQ)) * mask).astype("int32"),
        "segment_ids": np.zeros((n, SEQ), "int32"),
        "padding_mask": mask,
    }
    return x, rng.integers(0, 2, size=(n,)).astype("int32")


def dataset(n=32, batch_size=8, seed=0):
    return tf.data.Dataset.from_tensor_slices(data(n, seed)).batch(batch_size)


def compile_distiller(
    distiller, learning_rate=0.01, optimizer="adam", steps_per_execution=1
):
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer]
    distiller.compile(
        optimizer=optimizer(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return distiller
