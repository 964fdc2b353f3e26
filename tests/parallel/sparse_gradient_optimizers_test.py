"""Optimizers that divide an embedding's sparse gradient by a dense tensor
(`op_rewrites.divide`): on a mesh that splits the embedding they failed to
compile ("SPMD expansion resulted in op output inconsistent with the provided
layout"); now they train as on one device."""

import keras
import numpy as np
import pytest

import tf_mp
from tests import tiny_models


def _fit(mesh, optimizer):
    if mesh is None:
        model = tiny_models.embedding_model()
    else:
        with tf_mp.ModelParallel(mesh, tiny_models.embedding_layout_map(mesh)).scope():
            model = tiny_models.embedding_model()
    model.compile(optimizer=optimizer, loss=tiny_models.loss())
    x, y = tiny_models.embedding_data()  # Duplicate token ids in every batch.
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    return history.history["loss"], model.get_weights()


@pytest.mark.parametrize(
    "optimizer, mesh_shape",
    [
        (keras.optimizers.RMSprop, (2, 2)),
        (keras.optimizers.Adagrad, (2, 2)),
        (keras.optimizers.Adadelta, (1, 2)),
        (keras.optimizers.Adafactor, (2, 2)),
    ],
    ids=lambda p: p.__name__ if isinstance(p, type) else "x".join(map(str, p)),
)
def test_a_split_embedding_trains_as_on_one_device(make_mesh, optimizer, mesh_shape):
    expected_loss, expected_weights = _fit(None, optimizer(learning_rate=1e-2))
    loss, weights = _fit(make_mesh(mesh_shape), optimizer(learning_rate=1e-2))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for got, want in zip(weights, expected_weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_zero_divisor_turns_the_loss_nan_as_on_one_device(make_mesh):
    """RMSprop without epsilon divides by the root of a velocity that is 0 in
    the rows no batch touched. One device writes NaN into those rows; the mesh
    writes NaN into the rows the gradient touched, so its loss turns NaN."""
    loss, weights = _fit(None, keras.optimizers.RMSprop(1e-2, epsilon=0.0))
    assert np.isnan(weights[0]).any()  # The embedding.
    loss, weights = _fit(make_mesh((2, 2)), keras.optimizers.RMSprop(1e-2, epsilon=0.0))
    assert np.isnan(weights[0]).any()
    assert np.isnan(loss[-1])
