"""LoRA on a mesh: `enable_lora(rank)` before or after `partition`, or under
Keras's `ModelParallel`, lays each low-rank pair out to match its kernel,
trains only the LoRA weights as one device does, and the trained model comes
back to one device with the same outputs.

Keras's LoRA computes `kernel + scale * A @ B` with `A` of shape
`kernel.shape[:-1] + (rank,)` and `B` of shape `(rank, kernel.shape[-1])`:
`A` takes the kernel's layout but on the rank, `B` the kernel's last axis.
"""

import collections
import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests import tiny_models
from tests.models import families

RANK = 2


def causal_lm(family):
    backbone = families.backbone(family)
    return families.GENERATIVE[family](backbone=backbone, preprocessor=None)


def set_lora_weights(model):
    """Non-zero, seeded values for every LoRA matrix (Keras starts `B` at zero,
    and draws `A` from the global seed), the same on every copy of a model."""
    for weight in model.weights:
        if "lora_kernel" in weight.path:
            rng = np.random.default_rng(sum(map(ord, weight.path)))
            weight.assign(0.1 * rng.normal(size=weight.shape).astype("float32"))


def compile_and_fit(model, epochs=3):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    x, y, w = families.next_token_data(families.inputs(model.backbone))
    history = model.fit(
        x, y, sample_weight=w, batch_size=16, epochs=epochs, shuffle=False, verbose=0
    )
    return history.history["loss"]


def one_device_lora(family):
    model = causal_lm(family)
    model.backbone.enable_lora(RANK)
    set_lora_weights(model)
    return model


def on_mesh_with_lora(family, mesh, when):
    model = causal_lm(family)
    if when == "before":
        model.backbone.enable_lora(RANK)
        model = tf_mp.models.partition(model, mesh=mesh)
    else:
        model = tf_mp.models.partition(model, mesh=mesh)
        model.backbone.enable_lora(RANK)
    set_lora_weights(model)
    return model


def axes(variable):
    return tuple(variable.value.layout.sharding_specs)


def lora_layers(model):
    return [
        layer
        for layer in model.backbone._flatten_layers()
        if getattr(layer, "lora_enabled", False)
    ]


def assert_laid_out_like_their_kernels(model):
    layers = lora_layers(model)
    assert layers
    for layer in layers:
        kernel = axes(layer._kernel)
        assert axes(layer.lora_kernel_a) == kernel[:-1] + ("unsharded",), layer.path
        assert axes(layer.lora_kernel_b) == ("unsharded", kernel[-1]), layer.path
    # The test means something: some kernels are split.
    assert any(set(axes(layer._kernel)) != {"unsharded"} for layer in layers)


# Each family once, and LoRA enabled before and after partitioning each on a
# 2x2 mesh; the other three pairs are slow (40 s on 2 cores).
LORA_CASES = [("gemma", (1, 2), "before"), ("llama", (2, 2), "after")]
LORA_CASES += [("gpt2", (2, 2), "before")]
LORA_SLOW_CASES = [("gemma", (1, 2), "after"), ("llama", (2, 2), "before")]
LORA_SLOW_CASES += [("gpt2", (2, 2), "after")]


@pytest.mark.parametrize(
    "family, mesh_shape, when",
    LORA_CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in LORA_SLOW_CASES],
)
def test_lora_trains_only_its_weights_as_on_one_device(
    make_mesh, family, mesh_shape, when
):
    reference = one_device_lora(family)
    expected = compile_and_fit(reference)
    model = on_mesh_with_lora(family, make_mesh(mesh_shape), when)
    assert_laid_out_like_their_kernels(model)
    # What Keras trains with LoRA: the low-rank matrices (and the biases of
    # the LoRA layers); every kernel is frozen.
    trainable = {w.path for w in model.trainable_weights}
    assert trainable == {w.path for w in reference.trainable_weights}
    assert all("kernel" not in p or "lora_kernel" in p for p in trainable)
    frozen = {w.path: np.array(w.numpy()) for w in model.non_trainable_weights}
    np.testing.assert_allclose(compile_and_fit(model), expected, rtol=1e-5)
    for weight in model.non_trainable_weights:
        np.testing.assert_array_equal(weight.numpy(), frozen[weight.path])


def test_lora_under_keras_model_parallel(bridge, make_mesh):
    make_mesh((2, 2))
    expected = compile_and_fit(one_device_lora("gemma"))
    layout_map = keras_hub.models.GemmaBackbone.get_layout_map(
        tiny_models.keras_device_mesh((2, 2))
    )
    with keras.distribution.ModelParallel(layout_map=layout_map).scope():
        model = causal_lm("gemma")
        model.backbone.enable_lora(RANK)
        set_lora_weights(model)
        assert_laid_out_like_their_kernels(model)
        np.testing.assert_allclose(compile_and_fit(model), expected, rtol=1e-5)


def test_a_model_trained_with_lora_on_a_mesh_loads_on_one_device(make_mesh, tmp_path):
    model = on_mesh_with_lora("llama", make_mesh((2, 2)), "after")
    compile_and_fit(model, epochs=2)
    x = families.next_token_data(families.inputs(model.backbone))[0]
    expected = model.predict(x, batch_size=16, verbose=0)

    # The whole model, through `unpartition` and a `.keras` file.
    path = str(tmp_path / "lora.keras")
    tf_mp.models.unpartition(model).save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)

    # The LoRA weights alone, into a one-device model with LoRA enabled.
    lora_path = str(tmp_path / "model.lora.h5")
    model.backbone.save_lora_weights(lora_path)
    fresh = causal_lm("llama")
    fresh.backbone.enable_lora(RANK)
    fresh.backbone.load_lora_weights(lora_path)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-5)


SCRIPT = os.path.join(os.path.dirname(__file__), "step_collectives.py")


def _fit_collectives(lora_rank):
    result = subprocess.run(
        [sys.executable, SCRIPT, "--family=gemma", "--mesh=1x2", "--step=fit"]
        + [f"--lora={lora_rank}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # `AllScatter` is a local slice (from replicated to split): no communication.
    return collections.Counter(
        (c["op"], tuple(c["shape"]))
        for c in report["collectives"]
        if c["op"] != "AllScatter"
    )


def test_lora_adds_no_collective_but_the_shared_factors_gradient():
    full, lora = _fit_collectives(0), _fit_collectives(RANK)
    # Gemma's tiny config: 2 blocks, LoRA on query and value, head_dim 4. `B`
    # (rank, head_dim) is shared by the heads split over the devices, so its
    # gradient is summed over them: one all-reduce of rank x head_dim values
    # per LoRA layer, and nothing else (no gather of `A`, forward or backward).
    assert lora - full == collections.Counter({("AllReduce", (RANK, 4)): 4})
