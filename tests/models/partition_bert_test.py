import functools

import keras
import keras_hub
import numpy as np
import pytest
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models


def _backbone():
    return tiny_models.bert_classifier().backbone


def _outputs(model, x):
    return model.predict(x, batch_size=16, verbose=0)


def test_blocks_are_replaced_and_outputs_are_unchanged_without_a_mesh():
    backbone = _backbone()
    partitioned = tf_mp.models.partition_bert(backbone)
    blocks = [b for b in partitioned.layers if "transformer_layer" in b.name]
    assert len(blocks) == 2
    assert all(isinstance(b, tf_mp.layers.ParallelTransformerEncoder) for b in blocks)
    assert set(partitioned.output) == {"sequence_output", "pooled_output"}
    x, _ = tiny_models.bert_data()
    expected, actual = _outputs(backbone, x), _outputs(partitioned, x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7)


def _classifier(backbone):
    keras.utils.set_random_seed(9)
    model = keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=0.0
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
    return model


def _fit(model, x, y):
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"]


@functools.cache
def _original_outputs_and_losses():
    """The original backbone's outputs and its classifier's `fit` losses (the
    same for every mesh)."""
    backbone = _backbone()
    x, y = tiny_models.bert_data()
    return _outputs(backbone, x), _fit(_classifier(backbone), x, y)


@pytest.mark.parametrize("mesh_shape", [(1, 2), (1, 4), (2, 2)])
def test_on_a_mesh_outputs_and_fit_match_the_original(make_mesh, mesh_shape):
    partitioned = tf_mp.models.partition_bert(_backbone(), make_mesh(mesh_shape))
    query = next(w for w in partitioned.weights if w.path.endswith("query/kernel"))
    assert query.value.layout.sharding_specs[1] == "model"
    embedding = next(w for w in partitioned.weights if "token_embedding" in w.path)
    assert embedding.value.layout.sharding_specs == [dtensor.UNSHARDED, "model"]

    x, y = tiny_models.bert_data()
    expected, losses = _original_outputs_and_losses()
    actual = _outputs(partitioned, x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6)

    # A model that holds sharded layers is built in a scope on the same mesh,
    # like any model that trains on the mesh.
    with tf_mp.ModelParallel(make_mesh(mesh_shape)).scope():
        classifier = _classifier(partitioned)
    np.testing.assert_allclose(_fit(classifier, x, y), losses, rtol=1e-5)


def test_only_bert_backbones_are_accepted():
    with pytest.raises(TypeError, match="BertBackbone"):
        tf_mp.models.partition_bert(tiny_models.mlp())


@pytest.mark.slow
@pytest.mark.parametrize("mesh_shape", [(1, 2), (1, 4), (2, 2)])
def test_pretrained_minilm_outputs_match(make_mesh, minilm_path, mesh_shape):
    backbone = keras_hub.models.BertBackbone.from_preset(minilm_path, dropout=0.0)
    partitioned = tf_mp.models.partition_bert(backbone, make_mesh(mesh_shape))
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1000, 30000, size=(8, 32)).astype("int32"),
        "segment_ids": np.zeros((8, 32), "int32"),
        "padding_mask": (np.arange(32)[None, :] < rng.integers(5, 33, (8, 1))).astype(
            "int32"
        ),
    }
    expected, actual = _outputs(backbone, x), _outputs(partitioned, x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-5)
