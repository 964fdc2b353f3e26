"""keras-hub presets load straight onto the mesh: variables are created on it
without running their initializers, and the weights file fills them."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests import tiny_models
from tf_mp.parallel.dtensor import preset_loading


@pytest.fixture(scope="module")
def bert_preset(tmp_path_factory):
    keras.utils.set_random_seed(11)
    path = str(tmp_path_factory.mktemp("bert_preset"))
    tiny_models._bert_backbone(dropout=0.0).save_to_preset(path)
    return path


@pytest.fixture
def initializer_calls(monkeypatch):
    """How many kernel-sized values BERT's initializer computed."""
    calls = []
    original = keras.initializers.TruncatedNormal.__call__

    def counted(self, shape, dtype=None):
        if len(shape) >= 2:
            calls.append(tuple(shape))
        return original(self, shape, dtype=dtype)

    monkeypatch.setattr(keras.initializers.TruncatedNormal, "__call__", counted)
    return calls


@pytest.mark.parametrize("shape", [(1, 2), (2, 2)])
def test_from_preset_in_a_scope_skips_initializers_and_equals_one_device(
    make_mesh, bert_preset, initializer_calls, shape
):
    expected = keras_hub.models.Backbone.from_preset(bert_preset)
    assert initializer_calls  # The counter sees the one-device load.
    initializer_calls.clear()
    mesh = make_mesh(shape)
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        loaded = keras_hub.models.Backbone.from_preset(bert_preset)
    assert initializer_calls == []
    assert [w.path for w in loaded.weights] == [w.path for w in expected.weights]
    for got, want in zip(loaded.weights, expected.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    query = next(w for w in loaded.weights if w.path.endswith("query/kernel"))
    assert "model" in query.value.layout.sharding_specs


def test_a_task_head_around_a_loaded_backbone_is_initialized_as_on_one_device(
    make_mesh, bert_preset
):
    def load():
        keras.utils.set_random_seed(5)
        return keras_hub.models.BertTextClassifier.from_preset(
            bert_preset, num_classes=3, preprocessor=None
        )

    expected = load()
    mesh = make_mesh((2, 2))
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        loaded = load()
    for got, want in zip(loaded.weights, expected.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    x = tiny_models.bert_data()[0]
    np.testing.assert_allclose(
        loaded.predict(x, batch_size=16, verbose=0),
        expected.predict(x, batch_size=16, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_task_preset_loads_onto_the_mesh_as_on_one_device(
    make_mesh, tmp_path, initializer_calls
):
    keras.utils.set_random_seed(12)
    tiny_models.bert_classifier().save_to_preset(str(tmp_path))
    expected = keras_hub.models.TextClassifier.from_preset(str(tmp_path))
    initializer_calls.clear()
    mesh = make_mesh((1, 2))
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        loaded = keras_hub.models.TextClassifier.from_preset(str(tmp_path))
    assert initializer_calls == []
    for got, want in zip(loaded.weights, expected.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)


def test_variables_no_file_fills_get_their_initializer(make_mesh):
    def dense():
        layer = keras.layers.Dense(
            4,
            kernel_initializer=keras.initializers.GlorotUniform(seed=1),
            bias_initializer=keras.initializers.RandomNormal(seed=2),
        )
        layer.build((None, 3))
        return layer

    expected = dense()
    mesh = make_mesh((1, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map["kernel"] = (None, "model")
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        with preset_loading.deferred_initialization():
            layer = dense()
            layer.bias.assign(np.full((4,), 7.0, "float32"))
    np.testing.assert_array_equal(layer.kernel.numpy(), expected.kernel.numpy())
    np.testing.assert_array_equal(layer.bias.numpy(), np.full((4,), 7.0))
    assert layer.kernel.value.layout.sharding_specs == ["unsharded", "model"]


def test_a_host_array_assigned_to_a_weight_on_a_mesh_goes_on_its_layout(make_mesh):
    """What a weights file gives each weight (a NumPy array, float64 here) is
    placed shard by shard on the weight's layout, cast to its dtype; a wrong
    shape is Keras's own error, naming both shapes, and loses nothing."""
    mesh = make_mesh((2, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map["dense/kernel"] = (None, "model")
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        layer = keras.layers.Dense(8, name="dense")
        layer.build((None, 4))
    kernel = layer.kernel
    value = np.arange(32, dtype="float64").reshape(4, 8) / 7
    kernel.assign(value)
    np.testing.assert_array_equal(kernel.numpy(), value.astype("float32"))
    assert kernel.value.layout.sharding_specs == ["unsharded", "model"]
    with pytest.raises(ValueError, match=r"variable.shape=\(4, 8\).*\(8, 4\)"):
        kernel.assign(np.zeros((8, 4)))
    np.testing.assert_array_equal(kernel.numpy(), value.astype("float32"))
