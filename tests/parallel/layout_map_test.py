import keras
import pytest

import tf_mp
from tests import tiny_models


@pytest.fixture
def mesh(make_mesh):
    return make_mesh((2, 4))


def test_first_matching_regex_wins_and_unmatched_is_replicated(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"dense/kernel"] = (None, "model")
    layout_map[r"kernel"] = ("model", None)
    assert layout_map.axes_for("net/dense/kernel", (8, 16)) == (None, "model")
    assert layout_map.axes_for("net/other/kernel", (8, 16)) == ("model", None)
    assert layout_map.axes_for("net/dense/bias", (16,)) == (None,)


def test_unknown_axis_name_is_rejected_when_set(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    with pytest.raises(
        ValueError, match=r"Unknown mesh axis 'modle'.*\('batch', 'model'\)"
    ):
        layout_map[r"kernel"] = (None, "modle")


def test_wrong_rank_names_the_variable_and_layout(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"kernel"] = (None, "model", None)
    with pytest.raises(
        ValueError, match=r"rank 3.*'net/dense/kernel' \(shape \(8, 16\)"
    ):
        layout_map.axes_for("net/dense/kernel", (8, 16))


def test_non_divisible_dimension_names_the_variable_and_sizes(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"kernel"] = (None, "model")
    with pytest.raises(
        ValueError,
        match=r"Dimension 1 of variable 'net/dense/kernel'.*axis 'model' \(4\)\. "
        r"Received: 6",
    ):
        layout_map.axes_for("net/dense/kernel", (8, 6))


def test_an_axis_may_split_one_dimension_only(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    with pytest.raises(ValueError, match="only one dimension"):
        layout_map[r"kernel"] = ("model", "model")


def test_layouts_must_be_tuples(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    with pytest.raises(TypeError, match="tuple of mesh axis names"):
        layout_map[r"kernel"] = "model"


def test_a_keras_layout_map_converts(mesh):
    keras_mesh = tiny_models.keras_device_mesh((2, 4))
    keras_map = keras.distribution.LayoutMap(keras_mesh)
    keras_map[r"dense.*kernel"] = (None, "model")
    distribution = tf_mp.ModelParallel(layout_map=keras_map)
    assert distribution.mesh == mesh
    assert distribution.get_variable_axes("dense_1/kernel", (4, 8)) == (None, "model")


def test_bert_layout_map_follows_megatron(make_mesh):
    layout_map = tf_mp.bert_layout_map(make_mesh((1, 2)))
    block = "transformer_layer_0/"
    attention = block + "self_attention_layer/"
    expected = {
        attention + "query/kernel": ((16, 4, 4), (None, "model", None)),
        attention + "value/bias": ((4, 4), ("model", None)),
        attention + "attention_output/kernel": ((4, 4, 16), ("model", None, None)),
        attention + "attention_output/bias": ((16,), (None,)),
        block + "feedforward_intermediate_dense/kernel": ((16, 32), (None, "model")),
        block + "feedforward_intermediate_dense/bias": ((32,), ("model",)),
        block + "feedforward_output_dense/kernel": ((32, 16), ("model", None)),
        "token_embedding/embeddings": ((64, 16), (None, "model")),
        "position_embedding/embeddings": ((8, 16), (None, None)),
    }
    for path, (shape, axes) in expected.items():
        assert layout_map.axes_for(path, shape) == axes, path


def test_bert_layout_map_can_keep_the_embedding_replicated(make_mesh):
    layout_map = tf_mp.bert_layout_map(make_mesh((1, 2)), shard_embeddings=False)
    assert layout_map.axes_for("token_embedding/embeddings", (64, 16)) == (None, None)


def test_bert_layout_map_needs_the_model_axis(make_mesh):
    with pytest.raises(ValueError, match=r"model_axis.*Received: model_axis='model'"):
        tf_mp.bert_layout_map(make_mesh((2,), axis_names=("batch",)))


def test_output_keys_lay_out_layer_outputs_not_variables(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"dense/output$"] = ("batch", None)
    layout_map[r"dense"] = (None, "model")
    assert layout_map.output_axes("net/dense") == (r"dense/output$", ("batch", None))
    assert layout_map.output_axes("net/other") == (None, None)
    # A variable is never matched by an output key, only by variable keys.
    assert layout_map.match("net/dense/kernel") == (r"dense", (None, "model"))
    assert layout_map.axes_for("net/output", (8,)) == (None,)


def test_bert_layout_map_gathers_the_embedding_output(make_mesh):
    layout_map = tf_mp.bert_layout_map(make_mesh((2, 2)))
    _, axes = layout_map.output_axes("token_embedding")
    assert axes == ("batch", None, None)
    model_only = tf_mp.bert_layout_map(make_mesh((2,), axis_names=("model",)))
    assert model_only.output_axes("token_embedding")[1] == (None, None, None)
    replicated = tf_mp.bert_layout_map(make_mesh((1, 2)), shard_embeddings=False)
    assert replicated.output_axes("token_embedding") == (None, None)
