"""`tf_mp.models.partition` on every keras-hub family it supports: the
rebuilt backbone computes and trains as the original, single-device and on
meshes, with its attention and feed-forward weights (and Adam moments) split."""

import functools
import re

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests import tiny_models
from tests.models import families
from tf_mp.utils.classifiers import build_optimizer

MESHES = [(1, 2), (2, 2)]
# BERT's case is `partition_bert`'s, tested on (1,2), (1,4) and (2,2) there;
# `XLMRobertaBackbone` is `RobertaBackbone` with presets and no code of its own
# (keras-hub 0.32), so its mesh cases would repeat RoBERTa's.
MESH_FAMILIES = [f for f in families.FAMILIES if f not in ("bert", "xlm_roberta")]
# Every family runs on 2x2 (both axes). Families with a map of their own also
# run on 1x2, as slow cases (about 60 s on 2 cores all told): 2x2 splits the
# model axis the same two ways, and the equivalence matrix checks 1x2 itself.
MESH_CASES = [
    pytest.param(family, mesh_shape, marks=[pytest.mark.slow] * (mesh_shape != (2, 2)))
    for family in MESH_FAMILIES
    for mesh_shape in MESHES
    if family not in families.SAME_MAP_AS_ANOTHER or mesh_shape == (2, 2)
]
# Weights Megatron splits, in every family's naming.
SPLIT = re.compile(
    r"(query|key|value|attention_output)/kernel$|(query|key|value)/bias$|"
    r"(feedforward_\w+_dense|ffw_\w+)/kernel$"
)
PARALLEL_BLOCKS = (
    tf_mp.layers.ParallelTransformerEncoder,
    tf_mp.layers.ParallelTransformerDecoder,
)


def _sequence(outputs):
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


def _predict(model, x):
    return _sequence(model.predict(x, batch_size=families.BATCH_SIZE, verbose=0))


def _fit(model, x, y, sample_weight=None):
    history = model.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=families.BATCH_SIZE,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    return history.history["loss"]


@functools.cache
def _reference_fit(family):
    """The single-device classifier's losses (the same for every mesh)."""
    backbone = families.backbone(family)
    x, y = families.inputs(backbone), families.labels()
    model = families.classifier(backbone)
    build_optimizer(model)  # One trace of the train step, not two.
    return tuple(_fit(model, x, y))


@pytest.mark.parametrize("family", families.FAMILIES)
def test_without_a_mesh_the_same_class_computes_the_same(family):
    backbone = families.backbone(family)
    partitioned = tf_mp.models.partition(backbone)
    assert isinstance(partitioned, type(backbone))
    blocks = [b for b in partitioned.layers if isinstance(b, PARALLEL_BLOCKS)]
    own_blocks = family in families.OWN_BLOCKS
    assert bool(blocks) != own_blocks
    extra = {} if own_blocks else {"model_axis": "model"}
    assert partitioned.get_config() == backbone.get_config() | extra
    x = families.inputs(backbone)
    expected = _predict(backbone, x)
    np.testing.assert_array_equal(_predict(partitioned, x), expected)


@pytest.mark.parametrize("family", ["roberta", "albert", "gpt2"])
def test_a_saved_partitioned_backbone_reloads_as_itself(tmp_path, family):
    backbone = families.backbone(family)
    partitioned = tf_mp.models.partition(backbone)
    assert type(partitioned).__name__ == "Parallel" + type(backbone).__name__
    path = str(tmp_path / "backbone.keras")
    partitioned.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(partitioned)
    x = families.inputs(backbone)
    np.testing.assert_array_equal(_predict(reloaded, x), _predict(backbone, x))


@pytest.mark.parametrize("family,mesh_shape", MESH_CASES)
def test_on_a_mesh_outputs_fit_and_shards_match(make_mesh, family, mesh_shape):
    mesh = make_mesh(mesh_shape)
    backbone = families.backbone(family)
    x, y = families.inputs(backbone), families.labels()
    layout_map = tf_mp.models.backbone_layout_map(backbone, mesh)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        partitioned = tf_mp.models.partition(backbone)
        model = families.classifier(partitioned)
    np.testing.assert_allclose(
        _predict(partitioned, x), _predict(backbone, x), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(_fit(model, x, y), _reference_fit(family), rtol=1e-5)

    report = tf_mp.shard_report(model, include_optimizer=True)
    kernels = [r for r in report.rows if SPLIT.search(r.path)]
    names = {r.path.replace("/", "_") for r in kernels}
    moments = [
        r
        for r in report.rows
        if re.sub(r"^\w+/|_(momentum|velocity)$", "", r.path) in names
        and r.path.endswith(("_momentum", "_velocity"))
    ]
    assert kernels and len(moments) == 2 * len(kernels)
    # Grouped-query key/value kernels (2 heads) split on a model axis of 2.
    for row in kernels + moments:
        assert "model" in row.axes, row
        assert row.bytes_per_device * 2 == row.bytes, row


def test_albert_shares_one_split_block_between_layers(make_mesh):
    mesh = make_mesh((1, 2))
    backbone = families.backbone("albert")
    partitioned = tf_mp.models.partition(backbone, mesh)
    blocks = [b for b in partitioned.layers if isinstance(b, PARALLEL_BLOCKS)]
    assert len(blocks) == 1 and backbone.num_layers == 2
    query = blocks[0]._self_attention_layer._query_dense.kernel
    assert query.value.layout.sharding_specs[1] == "model"


@pytest.mark.parametrize("family", sorted(families.CAUSAL_LMS))
def test_causal_lm_trains_on_a_mesh_as_on_one_device(make_mesh, family):
    mesh = make_mesh((2, 2))
    backbone = families.backbone(family, num_layers=2)
    x, y, weights = families.next_token_data(families.inputs(backbone))
    layout_map = tf_mp.models.backbone_layout_map(backbone, mesh)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        model = families.causal_lm(family, tf_mp.models.partition(backbone))
    reference = families.causal_lm(family, backbone)
    np.testing.assert_allclose(
        _fit(model, x, y, weights), _fit(reference, x, y, weights), rtol=1e-5
    )
    # An untied output projection (hidden, vocabulary) is split by vocabulary.
    for weight in model.weights:
        if weight.path.endswith("reverse_embeddings"):
            assert weight.value.layout.sharding_specs == ["unsharded", "model"]


def test_grouped_query_heads_that_do_not_divide_the_axis_stay_whole(make_mesh):
    backbone = families.backbone("llama")  # 4 query heads, 2 key/value heads
    layout_map = tf_mp.models.backbone_layout_map(backbone, make_mesh((1, 4)))
    partitioned = tf_mp.models.partition(backbone, layout_map=layout_map)
    specs = {
        w.path.split("/")[-2]: w.value.layout.sharding_specs
        for w in partitioned.weights
        if w.path.startswith("transformer_layer_0/self_attention/")
    }
    assert specs["query"][1] == "model"
    assert specs["key"] == specs["value"] == ["unsharded"] * 3


def test_a_keras_hub_layout_map_can_replace_tf_mps(make_mesh):
    make_mesh((2, 2))
    backbone = families.backbone("gemma")
    keras_map = keras_hub.models.GemmaBackbone.get_layout_map(
        tiny_models.keras_device_mesh((2, 2))
    )
    layout_map = tf_mp.LayoutMap.from_keras(keras_map)
    partitioned = tf_mp.models.partition(backbone, layout_map=layout_map)
    embedding = partitioned.get_layer("token_embedding").embeddings
    assert embedding.value.layout.sharding_specs == ["model", "batch"]
    x = families.inputs(backbone)
    np.testing.assert_allclose(
        _predict(partitioned, x), _predict(backbone, x), rtol=1e-5, atol=1e-5
    )


def test_unsupported_backbones_are_named_with_what_is_supported():
    keras.utils.set_random_seed(0)
    fnet = keras_hub.models.FNetBackbone(
        vocabulary_size=16,
        num_layers=1,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    with pytest.raises(
        ValueError, match="does not support FNetBackbone. Supported: BERT"
    ):
        tf_mp.models.partition(fnet)
    assert not tf_mp.models.is_supported(fnet)
    with pytest.raises(TypeError, match="keras-hub `Backbone`"):
        tf_mp.models.partition(tiny_models.mlp())


def test_bad_layout_map_arguments_are_named(make_mesh):
    backbone = families.backbone("roberta")
    mesh = make_mesh((1, 2))
    with pytest.raises(TypeError, match="layout_map"):
        tf_mp.models.partition(backbone, layout_map={"query": (None, "model")})
    other = tf_mp.models.backbone_layout_map(backbone, make_mesh((2, 2)))
    with pytest.raises(ValueError, match="`mesh` and `layout_map.mesh` differ"):
        tf_mp.models.partition(backbone, mesh, layout_map=other)
    with pytest.raises(ValueError, match="model_axis"):
        tf_mp.models.backbone_layout_map(backbone, mesh, model_axis="tensor")


def test_a_task_is_partitioned_and_unpartitioned_with_its_head(make_mesh):
    backbone = families.backbone("roberta")
    keras.utils.set_random_seed(1)
    task = keras_hub.models.RobertaTextClassifier(
        backbone, num_classes=3, preprocessor=None, dropout=0.0
    )
    x = families.inputs(backbone)
    expected = task.predict(x, verbose=0)

    partitioned = tf_mp.models.partition(task, make_mesh((1, 2)))
    assert type(partitioned) is keras_hub.models.RobertaTextClassifier
    assert type(partitioned.backbone).__name__ == "ParallelRobertaBackbone"
    query = partitioned.backbone.get_layer("transformer_layer_0")
    query = query._self_attention_layer._query_dense.kernel
    assert query.value.layout.sharding_specs[1] == "model"
    actual = partitioned.predict(x, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)

    plain = tf_mp.models.unpartition(partitioned)
    assert type(plain.backbone) is keras_hub.models.RobertaBackbone
    assert not [b for b in plain.backbone.layers if isinstance(b, PARALLEL_BLOCKS)]
    assert tf_mp.parallel.model_parallel.distribution_of(plain) is None
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5
    )


def test_with_dropout_the_partitioned_model_draws_the_original_masks(make_mesh):
    """keras-hub's default dropout (0.1): the copy carries the dropout layers'
    random-number state, and tf_mp draws masks at the global shape, so the
    split model trains as the original does."""
    mesh = make_mesh((2, 2))
    backbone = families.backbone("gpt2", dropout=0.1)
    x, y, weights = families.next_token_data(families.inputs(backbone))
    layout_map = tf_mp.models.backbone_layout_map(backbone, mesh)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        model = families.causal_lm("gpt2", tf_mp.models.partition(backbone))
    reference = families.causal_lm("gpt2", backbone)
    np.testing.assert_allclose(
        _fit(model, x, y, weights), _fit(reference, x, y, weights), rtol=1e-5
    )
