"""`partition_bert` returns a real `BertBackbone`."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests import tiny_models


def _backbone(**kwargs):
    keras.utils.set_random_seed(5)
    config = dict(
        vocabulary_size=tiny_models.VOCAB,
        num_layers=2,
        num_heads=4,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=tiny_models.SEQ,
    )
    return keras_hub.models.BertBackbone(**{**config, **kwargs})


def test_partitioned_backbone_is_a_bert_backbone():
    backbone = _backbone()
    partitioned = tf_mp.models.partition_bert(backbone)
    assert isinstance(partitioned, keras_hub.models.BertBackbone)
    for attribute in ("vocabulary_size", "hidden_dim", "num_layers", "num_heads"):
        assert getattr(partitioned, attribute) == getattr(backbone, attribute)
    assert partitioned.token_embedding.input_dim == tiny_models.VOCAB
    blocks = partitioned.transformer_layers
    assert all(isinstance(b, tf_mp.layers.ParallelTransformerEncoder) for b in blocks)
    config = partitioned.get_config()
    assert config["model_axis"] == "model"
    rebuilt = tf_mp.models.ParallelBertBackbone.from_config(config)
    assert rebuilt.get_config() == config


def test_keras_hub_tasks_take_a_partitioned_backbone():
    partitioned = tf_mp.models.partition_bert(_backbone())
    # Raised "'Functional' object has no attribute 'vocabulary_size'".
    masked_lm = keras_hub.models.BertMaskedLM(partitioned, preprocessor=None)
    x, _ = tiny_models.bert_data()
    x = {
        **x,
        "mask_positions": np.tile(
            np.arange(2, dtype="int32"), (len(x["token_ids"]), 1)
        ),
    }
    logits = masked_lm.predict(x, batch_size=16, verbose=0)
    assert logits.shape == (len(x["token_ids"]), 2, tiny_models.VOCAB)


def test_preset_round_trip(tmp_path):
    partitioned = tf_mp.models.partition_bert(_backbone())
    partitioned.save_to_preset(str(tmp_path))
    loaded = keras_hub.models.BertBackbone.from_preset(str(tmp_path))
    assert isinstance(loaded, tf_mp.models.ParallelBertBackbone)
    x, _ = tiny_models.bert_data()
    expected = partitioned.predict(x, batch_size=16, verbose=0)
    actual = loaded.predict(x, batch_size=16, verbose=0)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16", "float32"])
def test_dtype_policy_is_kept(policy):
    partitioned = tf_mp.models.partition_bert(_backbone(dtype=policy))
    assert partitioned.dtype_policy.name == policy
    classifier = keras_hub.models.BertTextClassifier(
        partitioned, num_classes=2, preprocessor=None
    )
    assert classifier.dtype_policy.name == policy
    compute_dtype = keras.dtype_policies.get(policy).compute_dtype
    for block in partitioned.transformer_layers:
        assert block.compute_dtype == compute_dtype


def test_partitioned_masked_lm_trains_on_a_mesh(make_mesh):
    mesh = make_mesh((2, 2))
    backbone = _backbone()
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        masked_lm = keras_hub.models.BertMaskedLM(
            tf_mp.models.partition_bert(backbone), preprocessor=None
        )
    masked_lm.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, _ = tiny_models.bert_data()
    n = len(x["token_ids"])
    x = {**x, "mask_positions": np.tile(np.arange(2, dtype="int32"), (n, 1))}
    y = x["token_ids"][:, :2]
    history = masked_lm.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
