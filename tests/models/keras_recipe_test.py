"""Keras's published recipe for distributed Gemma tuning, as written, on
TensorFlow through `tf_mp.enable_keras_distribution()`, with a tiny random
Gemma preset (its own SentencePiece vocabulary) standing in for the 7B one.

The recipe: a `(1, k)` `DeviceMesh`, a `LayoutMap` of its five rules, a
`ModelParallel` set as the distribution, `GemmaCausalLM.from_preset`,
`generate`, `backbone.enable_lora(rank=4)`, `compile`, `fit`, `generate`.
Run once on one device and once on the mesh, from the same seed: the texts,
the losses and the weights' layouts are compared.
"""

import keras
import keras_hub
import numpy as np
import pytest

from tests import tiny_models
from tests.models import families
from tests.models.generate_test import generate
from tests.models.generate_test import peaked_causal_lm
from tests.models.generate_test import prompts
from tests.models.lora_test import compile_and_fit
from tests.models.lora_test import set_lora_weights
from tests.models.tiny_presets import SENTENCES

PROMPT = "the quick"


def recipe_layout_map(device_mesh):
    """The five rules, as published."""
    layout_map = keras.distribution.LayoutMap(device_mesh)
    layout_map["token_embedding/embeddings"] = ("model", None)
    layout_map["decoder_block.*attention.*(query|key|value).kernel"] = (
        "model",
        None,
        None,
    )
    layout_map["decoder_block.*attention_output.kernel"] = ("model", None, None)
    layout_map["decoder_block.*ffw_gating.kernel"] = (None, "model")
    layout_map["decoder_block.*ffw_linear.kernel"] = ("model", None)
    return layout_map


def _run_recipe(preset):
    keras.utils.set_random_seed(42)
    gemma_lm = keras_hub.models.GemmaCausalLM.from_preset(preset)
    before = gemma_lm.generate(PROMPT, max_length=16)
    gemma_lm.backbone.enable_lora(rank=4)
    gemma_lm.preprocessor.sequence_length = 16
    gemma_lm.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.Adam(learning_rate=0.05),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    history = gemma_lm.fit(SENTENCES, epochs=5, batch_size=4, shuffle=False)
    after = gemma_lm.generate(PROMPT, max_length=16)
    return gemma_lm, before, after, history.history["loss"]


# Slow at 2 (18 s on 2 cores): 4 runs the same recipe with more splits.
@pytest.mark.parametrize("model_size", [pytest.param(2, marks=pytest.mark.slow), 4])
def test_the_distributed_gemma_tuning_recipe(
    bridge, make_mesh, tiny_gemma_preset, model_size
):
    make_mesh((1, model_size))
    _, before, after, losses = _run_recipe(tiny_gemma_preset)

    device_mesh = tiny_models.keras_device_mesh((1, model_size))
    model_parallel = keras.distribution.ModelParallel(
        layout_map=recipe_layout_map(device_mesh), batch_dim_name="batch"
    )
    keras.distribution.set_distribution(model_parallel)
    gemma_lm, mesh_before, mesh_after, mesh_losses = _run_recipe(tiny_gemma_preset)

    assert mesh_before == before
    assert mesh_after == after
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(mesh_losses, losses, rtol=1e-5)
    block = gemma_lm.backbone.get_layer("decoder_block_0")
    query = block.attention.query_dense
    assert tuple(query._kernel.value.layout.sharding_specs) == (
        "model",
        "unsharded",
        "unsharded",
    )
    assert tuple(query.lora_kernel_a.value.layout.sharding_specs)[0] == "model"
    assert np.abs(query.lora_kernel_b.numpy()).max() > 0  # Trained from zeros.
    assert tuple(block.gating_ffw.kernel.value.layout.sharding_specs) == (
        "unsharded",
        "model",
    )
    embeddings = gemma_lm.backbone.get_layer("token_embedding").embeddings
    assert tuple(embeddings.value.layout.sharding_specs) == ("model", "unsharded")


# keras-hub's Qwen map has Llama's rules (its `get_layout_map` differs only in
# names); Qwen adds query/key/value biases beside the split kernels, so Llama's
# case is slow.
@pytest.mark.parametrize(
    "family", ["gemma", pytest.param("llama", marks=pytest.mark.slow), "qwen"]
)
def test_keras_hubs_own_layout_maps_generate_and_tune_as_one_device(
    bridge, make_mesh, family
):
    """keras-hub's shipped `get_layout_map()` under Keras's `ModelParallel`:
    greedy tokens, then LoRA fine-tuning, equal to one device."""
    make_mesh((2, 2))
    x = prompts(4)

    def run():
        model = peaked_causal_lm(family)
        tokens = generate(model, x)["token_ids"]
        model.backbone.enable_lora(2)
        set_lora_weights(model)
        return model, tokens, compile_and_fit(model)

    _, tokens, losses = run()
    backbone_class = type(families.backbone(family))
    layout_map = backbone_class.get_layout_map(tiny_models.keras_device_mesh((2, 2)))
    with keras.distribution.ModelParallel(layout_map=layout_map).scope():
        model, mesh_tokens, mesh_losses = run()
    np.testing.assert_array_equal(mesh_tokens, tokens)
    np.testing.assert_allclose(mesh_losses, losses, rtol=1e-5)
    split = [w for w in model.backbone.weights if "model" in str(w.value.layout)]
    assert len(split) >= 4
