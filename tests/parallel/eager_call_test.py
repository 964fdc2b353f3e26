"""Models on a mesh called eagerly, as Keras users and keras-hub's tests do."""

import keras
import numpy as np
import pytest

import tf_mp
from tests import tiny_models


def _pair(mesh):
    reference = tiny_models.bert_classifier()
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        sharded = tiny_models.bert_classifier()
    for model in (reference, sharded):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=tiny_models.loss())
    return reference, sharded


def _first(x, n):
    return {key: value[:n] for key, value in x.items()}


@pytest.mark.parametrize("mesh_shape", [(1, 2), (2, 2)], ids=["1x2", "2x2"])
def test_eager_call_matches_one_device(make_mesh, mesh_shape):
    reference, sharded = _pair(make_mesh(mesh_shape))
    x, _ = tiny_models.bert_data()
    x = _first(x, 5)  # Not a multiple of the batch axis: padded, then trimmed.
    actual = sharded(x)
    assert not hasattr(actual, "layout")  # A host tensor, as off-mesh.
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(reference(x)), rtol=1e-5, atol=1e-6
    )
    # Python arguments stay Python: training=True runs the training branch.
    assert tuple(sharded(x, training=True).shape) == (5, 2)
    backbone_outputs = sharded.backbone(x)
    assert tuple(backbone_outputs["sequence_output"].shape) == (5, tiny_models.SEQ, 16)


@pytest.mark.parametrize("mesh_shape", [(1, 2), (2, 2)], ids=["1x2", "2x2"])
def test_on_batch_methods_match_one_device(make_mesh, mesh_shape):
    reference, sharded = _pair(make_mesh(mesh_shape))
    x, y = tiny_models.bert_data()
    x, y = _first(x, 4), y[:4]
    np.testing.assert_allclose(
        sharded.predict_on_batch(x), reference.predict_on_batch(x), rtol=1e-5, atol=1e-6
    )
    for _ in range(2):  # The second step sees the first one's update.
        np.testing.assert_allclose(
            sharded.train_on_batch(x, y), reference.train_on_batch(x, y), rtol=1e-5
        )
    np.testing.assert_allclose(
        sharded.test_on_batch(x, y), reference.test_on_batch(x, y), rtol=1e-5
    )
