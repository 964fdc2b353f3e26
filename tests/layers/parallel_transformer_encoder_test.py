import keras
import keras_hub
import numpy as np
import pytest
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models

HIDDEN, HEADS, FF, SEQ = 16, 4, 32, 8


def _data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, SEQ, HIDDEN)).astype("float32")
    lengths = rng.integers(2, SEQ + 1, size=(16,))
    mask = np.arange(SEQ)[None, :] < lengths[:, None]
    y = rng.integers(0, 2, size=(16,))
    return x, mask, y


def _classifier(block):
    tokens = keras.Input((SEQ, HIDDEN), name="tokens")
    mask = keras.Input((SEQ,), dtype="bool", name="mask")
    hidden = block(tokens, padding_mask=mask)
    logits = keras.layers.Dense(2, name="logits")(hidden[:, 0])
    return keras.Model([tokens, mask], logits, name="classifier")


def _keras_hub_model():
    keras.utils.set_random_seed(6)
    return _classifier(
        keras_hub.layers.TransformerEncoder(FF, HEADS, dropout=0.0, name="block")
    )


def _parallel_model():
    keras.utils.set_random_seed(7)  # Other seed: weights come from the copy.
    return _classifier(
        tf_mp.layers.ParallelTransformerEncoder(FF, HEADS, dropout=0.0, name="block")
    )


def test_same_weight_names_and_shapes_as_keras_hub():
    reference, parallel = _keras_hub_model(), _parallel_model()
    assert [(w.path, w.shape) for w in parallel.weights] == [
        (w.path, w.shape) for w in reference.weights
    ]


def test_without_a_mesh_it_computes_what_keras_hub_does():
    reference, parallel = _keras_hub_model(), _parallel_model()
    parallel.set_weights(reference.get_weights())
    x, mask, _ = _data()
    np.testing.assert_allclose(
        parallel.predict([x, mask], verbose=0),
        reference.predict([x, mask], verbose=0),
        rtol=1e-6,
    )


@pytest.mark.parametrize("mesh_shape", [(1, 2), (1, 4), (2, 2)])
def test_on_a_mesh_it_shards_itself_and_trains_like_keras_hub(make_mesh, mesh_shape):
    mesh = make_mesh(mesh_shape)
    reference = _keras_hub_model()
    with tf_mp.ModelParallel(mesh).scope():
        parallel = _parallel_model()
    parallel.set_weights(reference.get_weights())
    specs = {w.path: w.value.layout.sharding_specs for w in parallel.weights}
    assert specs["block/self_attention_layer/query/kernel"][1] == "model"
    assert specs["block/feedforward_output_dense/kernel"][0] == "model"
    assert all(s == dtensor.UNSHARDED for s in specs["logits/kernel"])

    x, mask, y = _data()
    np.testing.assert_allclose(
        parallel.predict([x, mask], verbose=0),
        reference.predict([x, mask], verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    losses = []
    for model in (reference, parallel):
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
        history = model.fit(
            [x, mask], y, batch_size=8, epochs=2, shuffle=False, verbose=0
        )
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_mixed_bfloat16_and_config_round_trip(tmp_path):
    block = tf_mp.layers.ParallelTransformerEncoder(
        FF, HEADS, model_axis="tp", dtype="mixed_bfloat16", name="block"
    )
    restored = tf_mp.layers.ParallelTransformerEncoder.from_config(block.get_config())
    assert restored.get_config() == block.get_config()
    model = _classifier(block)
    x, mask, _ = _data()
    assert block.compute_dtype == "bfloat16"
    path = str(tmp_path / "encoder.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict([x, mask], verbose=0), model.predict([x, mask], verbose=0)
    )


def test_heads_that_do_not_divide_the_model_axis_are_refused(make_mesh):
    with tf_mp.ModelParallel(make_mesh((1, 4))).scope():
        with pytest.raises(
            ValueError,
            match=r"ParallelTransformerEncoder 'block': `num_heads` must be divisible "
            r"by the size of mesh axis 'model' \(4\)\. Received: num_heads=2",
        ):
            _classifier(tf_mp.layers.ParallelTransformerEncoder(FF, 2, name="block"))


def test_parallel_attention_splits_heads(make_mesh):
    layer = tf_mp.layers.ParallelMultiHeadAttention(4, 4, name="attention")
    with tf_mp.ModelParallel(make_mesh((1, 2))).scope():
        tokens = keras.Input((SEQ, HIDDEN))
        keras.Model(tokens, layer(tokens, tokens))
    query = next(w for w in layer.weights if w.path.endswith("query/kernel"))
    assert query.value.layout.sharding_specs[1] == "model"
    output = next(
        w for w in layer.weights if w.path.endswith("attention_output/kernel")
    )
    assert output.value.layout.sharding_specs[0] == "model"
    restored = tf_mp.layers.ParallelMultiHeadAttention.from_config(layer.get_config())
    assert restored.get_config()["model_axis"] == "model"


# `ParallelTransformerEncoder.build` is keras-hub 0.32's `TransformerEncoder.build`
# with tf_mp's sublayer classes. If keras-hub changes that build or the block's
# arguments, this fails: re-check the copy (new arguments such as regularizers
# must reach the sublayers), then update the fingerprint.
KERAS_HUB_BUILD_SHA256 = (
    "fc3898147e6190258dcd55f2e22aed94a79f4663588c273c4c33165ab1cbff49"  # 0.32.0
)
CHECKED_ARGUMENTS = (
    "self, intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon, "
    "kernel_initializer, bias_initializer, normalize_first, kwargs"
)


def test_keras_hub_build_is_the_version_the_copy_was_checked_against():
    import hashlib
    import inspect

    encoder = keras_hub.layers.TransformerEncoder
    arguments = ", ".join(inspect.signature(encoder.__init__).parameters)
    assert arguments == CHECKED_ARGUMENTS
    source = inspect.getsource(encoder.build)
    assert hashlib.sha256(source.encode()).hexdigest() == KERAS_HUB_BUILD_SHA256


def test_sublayers_get_every_argument_keras_hub_gives_them():
    kwargs = dict(
        intermediate_dim=FF,
        num_heads=HEADS,
        dropout=0.25,
        activation="gelu",
        layer_norm_epsilon=1e-3,
        kernel_initializer="he_normal",
        bias_initializer="ones",
        normalize_first=True,
        dtype="mixed_bfloat16",
    )
    theirs = keras_hub.layers.TransformerEncoder(**kwargs)
    ours = tf_mp.layers.ParallelTransformerEncoder(**kwargs)
    for block in (theirs, ours):
        block.build((2, SEQ, HIDDEN))
    names = [
        "_self_attention_layer",
        "_self_attention_layer_norm",
        "_self_attention_dropout",
        "_feedforward_layer_norm",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
        "_feedforward_dropout",
    ]
    for name in names:
        want = getattr(theirs, name).get_config()
        got = getattr(ours, name).get_config()
        got.pop("model_axis", None)
        got.pop("gather_output", None)
        assert got == want, name
