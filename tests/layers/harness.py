"""One test harness for every tf_mp layer, in the style of keras-hub's
`TestCase.run_layer_test`: serialization, build, symbolic and eager calls, one
`fit` step, a `.keras` round trip; and, on a mesh, that each weight is laid out
as the layer declares and that the layer computes what it computes off-mesh.
"""

import re

import keras
import numpy as np
from keras.src import tree

import tf_mp
from tests import tiny_models


def _call(layer, inputs):
    return layer(**inputs) if isinstance(inputs, dict) else layer(inputs)


def _shapes(outputs):
    return tree.map_structure(lambda t: tuple(t.shape), outputs)


def _build(layer, input_data):
    if isinstance(input_data, dict):
        layer.build(**{f"{k}_shape": v.shape for k, v in input_data.items()})
    else:
        layer.build(input_data.shape)


def _functional(layer, input_data):
    """A functional model around `layer`, so it trains and saves as users do."""
    inputs = tree.map_structure(
        lambda x: keras.Input(x.shape[1:], dtype=str(x.dtype)), input_data
    )
    return keras.Model(inputs, _call(layer, inputs))


def _declared_axes(layer, path):

    for regex, axes in layer.weight_axes().items():
        if re.search(regex, path):
            return axes
    return None


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    tmp_path,
    mesh=None,
):
    """Runs the checks every tf_mp layer must pass; `mesh` adds the mesh checks."""
    # Serialization: config and Keras object round trips.
    layer = cls(**init_kwargs)
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is cls and revived.get_config() == config

    # Build, then a symbolic call: weights and output shape and dtype.
    layer = cls(**init_kwargs)
    _build(layer, input_data)
    assert layer.built
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    symbolic = _call(
        cls(**init_kwargs),
        tree.map_structure(lambda x: keras.KerasTensor(x.shape, x.dtype), input_data),
    )
    assert _shapes(symbolic) == expected_output_shape
    assert tree.flatten(symbolic)[0].dtype == keras.backend.standardize_dtype(
        layer.compute_dtype
    )

    # Eager call, then one SGD step moves every trainable weight.
    keras.utils.set_random_seed(0)
    layer = cls(**init_kwargs)
    reference = _call(layer, input_data)
    assert _shapes(reference) == expected_output_shape
    model = _functional(layer, input_data)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in layer.trainable_weights]
    targets = tree.map_structure(lambda t: np.ones(t.shape, "float32"), reference)
    history = model.fit(input_data, targets, batch_size=len(targets), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for weight, old in zip(layer.trainable_weights, before):
        assert not np.array_equal(weight.numpy(), old), weight.path

    # `.keras` file: a reloaded model predicts what the trained one does.
    path = str(tmp_path / f"{cls.__name__}.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    for got, want in zip(
        tree.flatten(reloaded.predict(input_data, verbose=0)),
        tree.flatten(model.predict(input_data, verbose=0)),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    if mesh is None:
        return
    # On a mesh: every weight laid out as declared, same outputs as off-mesh.
    keras.utils.set_random_seed(0)
    off_mesh = cls(**init_kwargs)
    expected = _call(off_mesh, input_data)
    with tf_mp.ModelParallel(mesh).scope():
        sharded = cls(**init_kwargs)
        _build(sharded, input_data)
    sharded.set_weights(off_mesh.get_weights())
    for weight in sharded.weights:
        axes = tiny_models.mesh_axes(weight)
        declared = _declared_axes(sharded, weight.path)
        assert axes == (declared or (None,) * len(weight.shape)), weight.path
    for got, want in zip(
        tree.flatten(_call(sharded, input_data)), tree.flatten(expected)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
