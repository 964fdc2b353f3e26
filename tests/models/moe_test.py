"""Mixture-of-experts on a mesh: Qwen3-MoE's experts split over the model axis
(expert parallelism) train and generate as on one device; the other MoE
families are refused with the message that names what is supported."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests.models import families
from tests.models.generate_test import EMBEDDING_SCALE
from tests.models.generate_test import prompts

_MOE = dict(vocabulary_size=families.VOCAB, num_layers=2, num_query_heads=4)
_MOE.update(num_key_value_heads=2, hidden_dim=16, intermediate_dim=32)


def qwen3_moe(scale=EMBEDDING_SCALE):
    """A tiny random Qwen3-MoE causal LM: 4 experts of which 2 per token,
    embeddings scaled for peaked generation (`generate_test.py`)."""
    keras.utils.set_random_seed(5)
    backbone = keras_hub.models.Qwen3MoeBackbone(
        moe_intermediate_dim=8, num_experts=4, head_dim=4, top_k=2, **_MOE
    )
    for weight in backbone.weights:
        if "embedding" in weight.path:
            weight.assign(weight * scale)
    model = keras_hub.models.Qwen3MoeCausalLM(backbone=backbone, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
        sampler="greedy",
    )
    return model


def _fit(model):
    x, y, w = families.next_token_data(families.inputs(model.backbone))
    history = model.fit(
        x, y, sample_weight=w, batch_size=16, epochs=3, shuffle=False, verbose=0
    )
    return history.history["loss"]


@pytest.mark.parametrize(
    "mesh_shape",
    [pytest.param((1, 2), marks=pytest.mark.slow), (2, 2), (1, 4)],  # slow: 25 s
)
def test_qwen3_moe_experts_split_train_and_generate_as_one_device(
    make_mesh, mesh_shape
):
    x = prompts(4)
    reference = qwen3_moe()
    expected_tokens = reference.generate(x, stop_token_ids=None)["token_ids"]
    expected_losses = _fit(reference)

    model = tf_mp.models.partition(qwen3_moe(), mesh=make_mesh(mesh_shape))
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
        sampler="greedy",
    )
    experts = [w for w in model.backbone.weights if "expert_feedforward" in w.path]
    assert len(experts) == 4
    for weight in experts:
        assert tuple(weight.value.layout.sharding_specs) == (
            "model",
            "unsharded",
            "unsharded",
        )
    tokens = model.generate(x, stop_token_ids=None)["token_ids"]
    np.testing.assert_array_equal(tokens, expected_tokens)
    np.testing.assert_allclose(_fit(model), expected_losses, rtol=1e-5)


@pytest.mark.parametrize(
    "cls, config",
    [
        (
            keras_hub.models.QwenMoeBackbone,
            dict(
                moe_intermediate_dim=8,
                shared_expert_intermediate_dim=16,
                num_experts=4,
                top_k=2,
            ),
        ),
        (keras_hub.models.MixtralBackbone, dict(num_experts=4, top_k=2)),
    ],
)
def test_other_moe_families_are_refused_naming_what_is_supported(cls, config):
    keras.utils.set_random_seed(0)
    backbone = cls(**_MOE, **config)
    with pytest.raises(
        ValueError,
        match=f"does not support {cls.__name__}. Supported: .*Qwen3-MoE",
    ):
        tf_mp.models.partition(backbone)
