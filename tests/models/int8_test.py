"""`quantize("int8")` on a mesh: a partitioned model, or one under Keras's
`ModelParallel`, quantized, predicts and generates what the same model
quantized on one device does; its int8 kernels keep the float kernels' split
and their scales follow the output channels they scale."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests import tiny_models
from tests.models.generate_test import generate
from tests.models.generate_test import peaked_causal_lm
from tests.models.generate_test import prompts
from tests.models.keras_recipe_test import recipe_layout_map


def axes(variable):
    return tuple(variable.value.layout.sharding_specs)


def kernels(model):
    """`{path: variable}` of the quantizable weights (kernels, embeddings)."""
    return {
        w.path: w
        for w in model.weights
        if w.path.endswith(
            ("/kernel", "token_embedding/embeddings", "/reverse_embeddings")
        )
    }


def assert_same_outputs(actual, expected):
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize(
    "family, mesh_shape",
    [
        # GPT-2 quantizes all three int8 layer kinds (`Dense`, `EinsumDense`,
        # `ReversibleEmbedding`) on both axes. Gemma's and Llama's kernels are
        # the same kinds (slow: 30-68 s a case on 2 cores).
        ("gpt2", (2, 2)),
        pytest.param("gemma", (1, 2), marks=pytest.mark.slow),
        pytest.param("llama", (2, 2), marks=pytest.mark.slow),
    ],
)
def test_int8_on_a_mesh_equals_int8_on_one_device(make_mesh, family, mesh_shape):
    model = peaked_causal_lm(family)
    partitioned = tf_mp.models.partition(model, mesh=make_mesh(mesh_shape))
    float_axes = {path: axes(w) for path, w in kernels(partitioned).items()}
    model.quantize("int8")
    partitioned.quantize("int8")
    partitioned.compile(sampler="greedy")
    x = prompts(4)

    assert_same_outputs(
        partitioned.predict(x, batch_size=4, verbose=0),
        model.predict(x, batch_size=4, verbose=0),
    )
    np.testing.assert_array_equal(
        generate(partitioned, x)["token_ids"], generate(model, x)["token_ids"]
    )
    weights = {w.path: w for w in partitioned.weights}
    quantized = [path for path, w in weights.items() if w.dtype == "int8"]
    assert any("model" in float_axes[path] for path in quantized)
    for path in quantized:
        assert axes(weights[path]) == float_axes[path], path
        # The per-channel scale is split where its channels are.
        scale = weights[f"{path}_scale"]
        split = [a for a in float_axes[path] if a != "unsharded"]
        assert set(axes(scale)) - {"unsharded"} <= set(split), path


@pytest.mark.slow  # 44 s on 2 cores.
@pytest.mark.parametrize("layout_map_of", ["keras_recipe", "keras_hub"])
def test_int8_under_keras_model_parallel(bridge, make_mesh, layout_map_of):
    make_mesh((2, 2))
    x = prompts(4)
    reference = peaked_causal_lm("gemma")
    reference.quantize("int8")
    expected = reference.predict(x, batch_size=4, verbose=0)
    expected_tokens = generate(reference, x)["token_ids"]
    # Keras's Gemma recipe's map (`keras_recipe_test.py`), or keras-hub's own
    # `get_layout_map`, which also splits kernels over "batch" (FSDP style).
    device_mesh = tiny_models.keras_device_mesh((2, 2))
    if layout_map_of == "keras_recipe":
        layout_map = recipe_layout_map(device_mesh)
    else:
        layout_map = keras_hub.models.GemmaBackbone.get_layout_map(device_mesh)
    with keras.distribution.ModelParallel(layout_map=layout_map).scope():
        model = peaked_causal_lm("gemma")
        model.quantize("int8")
        model.compile(sampler="greedy")
        assert_same_outputs(model.predict(x, batch_size=4, verbose=0), expected)
        np.testing.assert_array_equal(generate(model, x)["token_ids"], expected_tokens)
    query = model.backbone.get_layer("decoder_block_0").attention.query_dense
    assert query._kernel.dtype == "int8"
    assert axes(query._kernel)[0] == "model"


def test_float8_on_a_mesh_equals_float8_on_one_device(make_mesh):
    model = peaked_causal_lm("llama")
    partitioned = tf_mp.models.partition(model, mesh=make_mesh((2, 2)))
    model.quantize("float8")
    partitioned.quantize("float8")
    x = prompts(4)
    assert_same_outputs(
        partitioned.predict(x, batch_size=4, verbose=0),
        model.predict(x, batch_size=4, verbose=0),
    )
    assert any("float8" in str(w.path) or "amax" in w.path for w in partitioned.weights)


@pytest.mark.parametrize("mode", ["int4"])
def test_other_modes_are_refused_on_a_mesh_before_anything_changes(make_mesh, mode):
    partitioned = tf_mp.models.partition(
        peaked_causal_lm("llama"), mesh=make_mesh((1, 2))
    )
    before = {w.path: w.dtype for w in partitioned.weights}
    with pytest.raises(ValueError, match=f"Received: mode='{mode}'"):
        partitioned.quantize(mode)
    assert {w.path: w.dtype for w in partitioned.weights} == before
