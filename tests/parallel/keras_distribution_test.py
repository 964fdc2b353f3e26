"""Keras's own `keras.distribution` API on TensorFlow, through
`tf_mp.enable_keras_distribution()`: the Keras distribution guide's code trains
as on one device with its weights really split, keras-hub's own layout maps
work, and what TensorFlow cannot do is an error.

Keras's own unit tests of the API run in `tests/keras_upstream/
distribution_lib_test.py`.
"""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras.src.distribution import distribution_lib

import tf_mp
from tests import tiny_models
from tests.models import families


def _guide_data():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(128, 28, 28, 1)).astype("float32")
    labels = rng.normal(size=(128, 10)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16)


def _guide_model():
    """The Keras distribution guide's MLP (dropout 0.4), seeded."""
    keras.utils.set_random_seed(1)
    inputs = keras.layers.Input(shape=(28, 28, 1))
    y = keras.layers.Flatten()(inputs)
    y = keras.layers.Dense(units=200, use_bias=False, activation="relu", name="d1")(y)
    y = keras.layers.Dropout(0.4)(y)
    y = keras.layers.Dense(units=10, activation="softmax", name="d2")(y)
    model = keras.Model(inputs=inputs, outputs=y)
    model.compile(optimizer="adam", loss="mse")
    return model


def _train(model, dataset):
    history = model.fit(dataset, epochs=3, verbose=0).history["loss"]
    return history + [model.evaluate(dataset, verbose=0)]


def _guide_model_parallel(devices, output_axes=("data", None)):
    mesh = keras.distribution.DeviceMesh(
        shape=(2, 4), axis_names=["data", "model"], devices=devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["d1/kernel"] = (None, "model")
    layout_map["d1/bias"] = ("model",)
    layout_map["d2/output"] = output_axes
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="data"
    )


def _one_axis_mesh(size):
    # Keras's `DataParallel` takes 1-D meshes (a 2-D one makes Keras 3.15's
    # warning call itself fail: `warnings.warn(message, ndim)`).
    return keras.distribution.DeviceMesh(
        (size,), ["batch"], [f"cpu:{i}" for i in range(size)]
    )


def _axes(variable):
    return tuple(variable.value.layout.sharding_specs)


def test_without_the_bridge_keras_distribution_stays_a_no_op(virtual_devices):
    mesh = tiny_models.keras_device_mesh((1, 4))
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*kernel"] = (None, "model")
    distribution = keras.distribution.ModelParallel(layout_map=layout_map)

    def kernel_type():
        with distribution.scope():
            layer = keras.layers.Dense(8)
            layer.build((None, 4))
        return type(layer.kernel.value).__name__

    assert kernel_type() == "ResourceVariable"
    tf_mp.enable_keras_distribution()
    try:
        assert kernel_type() == "MeshVariable"
    finally:
        tf_mp.disable_keras_distribution()
    assert kernel_type() == "ResourceVariable"
    assert not hasattr(keras.src.backend.distribution_lib, "distribute_tensor")


@pytest.mark.parametrize("how", ["data_parallel", "model_parallel", "scope"])
def test_the_keras_guide_trains_as_on_one_device(bridge, virtual_devices, how):
    dataset = _guide_data()
    reference_model = _guide_model()
    reference = _train(reference_model, dataset)

    devices = keras.distribution.list_devices()
    assert len(devices) == keras.distribution.get_device_count() == 8
    if how == "data_parallel":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        model = _guide_model()
    elif how == "model_parallel":
        keras.distribution.set_distribution(_guide_model_parallel(devices))
        model = _guide_model()
    else:  # Built in the scope; trained after it closed.
        with _guide_model_parallel(devices).scope():
            model = _guide_model()
    np.testing.assert_allclose(_train(model, dataset), reference, rtol=1e-5)
    x = next(iter(dataset))[0]
    np.testing.assert_allclose(model(x), reference_model(x), rtol=1e-5, atol=1e-6)

    report = tf_mp.shard_report(model, include_optimizer=True)
    split = {r.path: r for r in report.rows if "model" in (r.axes or ())}
    if how == "data_parallel":
        assert not split
        assert model.get_layer("d1").kernel.value.layout.mesh.dim_names == ["batch"]
    else:
        assert _axes(model.get_layer("d1").kernel) == ("unsharded", "model")
        assert _axes(model.get_layer("d2").kernel) == ("unsharded", "unsharded")
        # The kernel and its two Adam moments, a quarter per device.
        assert len(split) == 3, sorted(split)
        for row in split.values():
            assert row.bytes_per_device * 4 == row.bytes, row


def test_an_output_key_lays_out_the_layer_output(bridge, virtual_devices):
    # A rank-3 layout for a rank-2 output: only a key that is applied fails.
    distribution = _guide_model_parallel(
        keras.distribution.list_devices(), output_axes=("data", None, None)
    )
    keras.distribution.set_distribution(distribution)
    model = _guide_model()
    with pytest.raises(ValueError, match=r"d2/output.*has rank 3"):
        model.fit(_guide_data().take(1), verbose=0)


def test_keras_hub_layout_map_through_keras_api(bridge, make_mesh):
    make_mesh((2, 2))
    backbone = families.backbone("gemma", num_layers=1)
    x, y = families.inputs(backbone), families.labels()
    reference = families.classifier(backbone).fit(
        x, y, batch_size=families.BATCH_SIZE, epochs=2, shuffle=False, verbose=0
    )
    layout_map = keras_hub.models.GemmaBackbone.get_layout_map(
        tiny_models.keras_device_mesh((2, 2))
    )
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map)
    )
    sharded = families.backbone("gemma", num_layers=1)
    model = families.classifier(sharded)
    history = model.fit(
        x, y, batch_size=families.BATCH_SIZE, epochs=2, shuffle=False, verbose=0
    )
    np.testing.assert_allclose(
        history.history["loss"], reference.history["loss"], rtol=1e-5
    )
    block = sharded.get_layer("decoder_block_0")
    assert _axes(block.attention.query_dense.kernel) == ("model", "batch", "unsharded")
    assert _axes(block.gating_ffw.kernel) == ("batch", "model")
    assert _axes(sharded.get_layer("token_embedding").embeddings) == ("model", "batch")


# Slow for Llama (30 s on 2 cores): Qwen's map has the same splits, and its
# attention biases besides.
@pytest.mark.parametrize(
    "family", [pytest.param("llama", marks=pytest.mark.slow), "qwen"]
)
def test_weights_split_over_the_batch_axis_train_as_one_device(
    bridge, make_mesh, family
):
    """keras-hub's Llama and Qwen maps split attention's hidden dimension on
    "model" and its heads on "batch" (FSDP style): such weights are gathered
    over the batch axis where a step reads them, and their gradients
    reduce-scattered back. Dropout on."""
    make_mesh((2, 2))
    backbone = families.backbone(family, dropout=0.1)
    x, y = families.inputs(backbone), families.labels()

    def train(model):
        history = model.fit(
            x, y, batch_size=families.BATCH_SIZE, epochs=3, shuffle=False, verbose=0
        )
        return history.history["loss"], [w.numpy() for w in model.weights]

    keras.utils.set_random_seed(3)
    losses, weights = train(families.classifier(backbone))
    layout_map = type(backbone).get_layout_map(tiny_models.keras_device_mesh((2, 2)))
    with keras.distribution.ModelParallel(layout_map=layout_map).scope():
        sharded = families.backbone(family, dropout=0.1)
        model = families.classifier(sharded)
        keras.utils.set_random_seed(3)
        mesh_losses, mesh_weights = train(model)
    np.testing.assert_allclose(mesh_losses, losses, rtol=1e-5)
    for got, want in zip(mesh_weights, weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    query = sharded.get_layer("transformer_layer_0")._self_attention_layer
    assert _axes(query._query_dense.kernel) == ("model", "batch", "unsharded")


def test_keras_layout_map_rules_hold(bridge, virtual_devices):
    mesh = tiny_models.keras_device_mesh((2, 4))
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["dense/kernel"] = (None, "model")
    layout_map[".*kernel"] = ("model", None)
    layout_map["other.*kernel"] = (None, None)
    layout_map["dense"] = ("model",)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map)
    )

    def built(name):
        layer = keras.layers.Dense(8, name=name)
        layer.build((None, 8))
        return layer

    dense = built("dense")
    assert _axes(dense.kernel) == ("unsharded", "model")  # the exact key wins
    # `re.fullmatch`: "dense" does not match "dense/bias" (tf_mp's default
    # `re.search` rules would split the bias).
    assert _axes(dense.bias) == ("unsharded",)
    assert _axes(built("dense_1").kernel) == ("model", "unsharded")
    with pytest.raises(ValueError, match="Path 'other/kernel' matches multiple"):
        built("other")


def test_a_layout_given_to_a_keras_variable_is_kept(bridge, virtual_devices):
    mesh = _one_axis_mesh(8)
    keras.distribution.set_distribution(keras.distribution.DataParallel(mesh))
    layout = keras.distribution.TensorLayout(("batch", None), mesh)
    variable = keras.Variable(np.ones((8, 2), "float32"), layout=layout)
    assert _axes(variable) == ("batch", "unsharded")
    np.testing.assert_array_equal(variable.numpy(), np.ones((8, 2)))
    with pytest.raises(ValueError, match=r"Dimension 0 of variable .* divisible"):
        keras.Variable(np.ones((6, 2), "float32"), layout=layout)


def test_distribute_tensor_places_values_on_the_mesh(bridge, virtual_devices):
    mesh = tiny_models.keras_device_mesh((2, 4))
    x = np.arange(32, dtype="float32").reshape(8, 4)
    layout = keras.distribution.TensorLayout(("batch", "model"), mesh)
    placed = keras.distribution.distribute_tensor(x, layout)
    assert tf.experimental.dtensor.fetch_layout(placed).sharding_specs == [
        "batch",
        "model",
    ]
    np.testing.assert_array_equal(tf_mp.gather(placed), x)
    with pytest.raises(ValueError, match=r"Dimension 1 of a tensor of shape"):
        keras.distribution.distribute_tensor(x[:, :3], layout)

    meshless = keras.distribution.TensorLayout(("batch", None))
    with pytest.raises(ValueError, match="no `device_mesh`"):
        keras.distribution.distribute_tensor(x, meshless)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(_one_axis_mesh(4))
    )
    placed = keras.distribution.distribute_tensor(x, meshless)
    np.testing.assert_array_equal(tf_mp.gather(placed), x)


def test_what_tensorflow_cannot_do_is_an_error(bridge, virtual_devices):
    class Custom(keras.distribution.DataParallel):
        pass

    keras.distribution.set_distribution(
        distribution_lib.Distribution(tiny_models.keras_device_mesh((1, 2)))
    )
    with pytest.raises(TypeError, match="runs `keras.distribution.DataParallel`"):
        keras.layers.Dense(2).build((None, 2))
    keras.distribution.set_distribution(Custom(_one_axis_mesh(2)))
    keras.layers.Dense(2).build((None, 2))  # A subclass is still DataParallel.

    with pytest.raises(ValueError, match="process_id"):
        keras.distribution.initialize("127.0.0.1:1,127.0.0.1:2", 2, 5)
    keras.distribution.initialize(None, 1, 0)  # One process: nothing to join.
