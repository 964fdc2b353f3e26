"""`generate` on a mesh: keras-hub's causal LMs, partitioned, produce the tokens
one device produces, with every sampler, on every mesh shape the issue names.

The models are tiny and random, with their token embeddings scaled up so that
each next-token distribution is peaked: a tiny random model's are near uniform,
and the argmax of a near-uniform distribution is decided by float32 rounding,
which differs between a split and a whole matmul. Scaled, a token's margin is
far above rounding, so equal tokens are the right check.

Random samplers are compared with one device for one prompt. For several
prompts TensorFlow's CPU kernel of `categorical` continues one random stream
across the rows its thread pool gives one shard, so its draws depend on the
machine's thread count; on a mesh each row reads the stream at its own offset
(`randomness.categorical`). There they are compared between meshes.
"""

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

MESHES = ((1, 2), (2, 1), (2, 2), (1, 4))
RANDOM_SAMPLERS = ("top_k", "top_p", "random")
PROMPT_LENGTH = families.SEQ
EMBEDDING_SCALE = 30.0


def peaked_causal_lm(family, **overrides):
    """A tiny random causal LM of `family`, greedy, with peaked next-token
    distributions (its token embeddings scaled by `EMBEDDING_SCALE`)."""
    backbone = families.backbone(family, **overrides)
    for weight in backbone.weights:
        if "embedding" in weight.path and "position" not in weight.path:
            weight.assign(weight * EMBEDDING_SCALE)
    model = families.GENERATIVE[family](backbone=backbone, preprocessor=None)
    model.compile(sampler="greedy")
    return model


def prompts(batch_size, seed=0):
    """`batch_size` prompts of 3 to 6 tokens, padded to `PROMPT_LENGTH`."""
    rng = np.random.default_rng(seed)
    lengths = 3 + np.arange(batch_size) % 4
    mask = (np.arange(PROMPT_LENGTH)[None, :] < lengths[:, None]).astype("int32")
    tokens = rng.integers(4, families.VOCAB, size=mask.shape).astype("int32")
    return {"token_ids": tokens * mask, "padding_mask": mask}


def generate(model, x, stop_token_ids=None):
    """`model.generate` on preprocessed prompts, as numpy.

    Gemma 3's `generate` without a preprocessor fails on one device too
    (keras-hub 0.32 normalizes its `images` output, `None`): for it, the
    compiled function `generate` calls, which is what runs on the mesh."""
    if isinstance(model, keras_hub.models.Gemma3CausalLM):
        outputs = model.make_generate_function()(dict(x), stop_token_ids)
        outputs = {k: outputs[k] for k in ("token_ids", "padding_mask")}
    else:
        outputs = model.generate(dict(x), stop_token_ids=stop_token_ids)
    return {name: np.asarray(value) for name, value in outputs.items()}


def sampler(name, seed=7):
    if name in RANDOM_SAMPLERS:
        return keras_hub.samplers.get({"class_name": name, "config": {"seed": seed}})
    return name


def on_mesh(model, mesh, sampler_name="greedy"):
    partitioned = tf_mp.models.partition(model, mesh=mesh)
    partitioned.compile(sampler=sampler(sampler_name))
    return partitioned


def assert_same_generation(actual, expected):
    for name in ("token_ids", "padding_mask"):
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


GREEDY_CASES = [(family, (2, 2)) for family in families.GENERATIVE] + [
    # Gemma and Llama on the other meshes are slow (the suite's time): GPT-2
    # covers every mesh in the fast suite.
    pytest.param(family, shape, marks=[pytest.mark.slow] if family != "gpt2" else [])
    for family in ("gpt2", "gemma", "llama")
    for shape in MESHES
    if shape != (2, 2)
]


@pytest.mark.parametrize("family, mesh_shape", GREEDY_CASES)
def test_greedy_tokens_equal_one_device(make_mesh, family, mesh_shape):
    model = peaked_causal_lm(family)
    x = prompts(4)
    expected = generate(model, x)
    actual = generate(on_mesh(model, make_mesh(mesh_shape)), x)
    assert_same_generation(actual, expected)
    # Generation goes past the prompts, and not to one repeated token.
    assert len(np.unique(expected["token_ids"][:, 6:])) > 1


@pytest.mark.parametrize("mesh_shape", MESHES)
def test_a_seeded_top_k_draws_one_devices_tokens(make_mesh, mesh_shape):
    model = peaked_causal_lm("gpt2")
    x = prompts(1)
    model.compile(sampler=sampler("top_k"))
    expected = generate(model, x)
    actual = generate(on_mesh(model, make_mesh(mesh_shape), "top_k"), x)
    assert_same_generation(actual, expected)


@pytest.mark.parametrize("name", ["top_p", "random"])
def test_other_seeded_samplers_draw_one_devices_tokens(make_mesh, name):
    model = peaked_causal_lm("gemma")
    x = prompts(1)
    model.compile(sampler=sampler(name))
    expected = generate(model, x)
    actual = generate(on_mesh(model, make_mesh((2, 2)), name), x)
    assert_same_generation(actual, expected)


@pytest.mark.parametrize("name", ["beam", "contrastive"])
def test_search_samplers_equal_one_device_for_a_batch(make_mesh, name):
    model = peaked_causal_lm("llama")
    x = prompts(4)
    model.compile(sampler=name)
    expected = generate(model, x)
    actual = generate(on_mesh(model, make_mesh((2, 2)), name), x)
    assert_same_generation(actual, expected)


# Top-p is slow here (10 s on 2 cores): top-k draws through the same seeded
# path, and `test_other_seeded_samplers_draw_one_devices_tokens` checks top-p's
# tokens on a 2x2 mesh.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.slow] * (n == "top_p"))
        for n in RANDOM_SAMPLERS
    ],
)
def test_random_samplers_draw_the_same_batch_on_every_mesh(make_mesh, name):
    model = peaked_causal_lm("gpt2")
    x = prompts(4)
    draws = [
        generate(on_mesh(model, make_mesh(shape), name), x)
        for shape in ((2, 2), (1, 4), (4, 1))
    ]
    for other in draws[1:]:
        assert_same_generation(other, draws[0])
    prompt = x["padding_mask"].astype(bool)
    np.testing.assert_array_equal(draws[0]["token_ids"][prompt], x["token_ids"][prompt])


def test_stop_tokens_end_each_row_as_on_one_device(make_mesh):
    model = peaked_causal_lm("gemma")
    x = prompts(4)
    free = generate(model, x)["token_ids"]
    # A token some rows generate and others do not: rows stop at different places.
    generated = [set(row[PROMPT_LENGTH // 2 :]) for row in free]
    stop = next(
        t for t in sorted(set.union(*generated)) if not all(t in g for g in generated)
    )
    expected = generate(model, x, stop_token_ids=(stop,))
    actual = generate(on_mesh(model, make_mesh((2, 2))), x, stop_token_ids=(stop,))
    assert_same_generation(actual, expected)
    assert not expected["padding_mask"].all()


def test_a_batch_the_mesh_does_not_divide_is_padded_and_trimmed(make_mesh):
    model = peaked_causal_lm("llama")
    x = prompts(3)
    expected = generate(model, x)
    actual = generate(on_mesh(model, make_mesh((2, 2))), x)
    assert actual["token_ids"].shape == (3, PROMPT_LENGTH)
    assert_same_generation(actual, expected)


def test_the_generate_function_is_reused_until_compile(make_mesh):
    partitioned = on_mesh(peaked_causal_lm("gpt2"), make_mesh((1, 2)))
    first = generate(partitioned, prompts(2, seed=0))
    function = partitioned.generate_function
    second = generate(partitioned, prompts(2, seed=1))
    assert partitioned.generate_function is function
    assert not np.array_equal(first["token_ids"], second["token_ids"])
    # Another batch size: traced again, for its own static shape.
    np.testing.assert_array_equal(
        generate(partitioned, prompts(5, seed=0))["token_ids"][:2], first["token_ids"]
    )
    assert partitioned.generate_function is function
    partitioned.compile(sampler="greedy")
    assert partitioned.generate_function is None
    np.testing.assert_array_equal(
        generate(partitioned, prompts(2, seed=0))["token_ids"], first["token_ids"]
    )


def test_generation_after_fit_uses_the_trained_weights(make_mesh):
    partitioned = on_mesh(peaked_causal_lm("qwen"), make_mesh((2, 2)))
    partitioned.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        sampler="greedy",
    )
    x = prompts(4)
    before = generate(partitioned, x)
    # Taught that every token is followed by token 5.
    features = families.inputs(partitioned.backbone)
    target = np.full_like(features["token_ids"], 5)
    partitioned.fit(features, target, batch_size=16, epochs=10, verbose=0)
    after = generate(partitioned, x)
    assert (after["token_ids"][:, 6:] == 5).all(), after["token_ids"]
    assert not (before["token_ids"][:, 6:] == 5).all()
    assert_same_generation(after, generate(tf_mp.models.unpartition(partitioned), x))


@pytest.mark.parametrize("kind", ["data_parallel", "model_parallel"])
def test_generate_under_keras_distribution(bridge, make_mesh, kind):
    make_mesh((2, 2))
    x = prompts(4)
    expected = generate(peaked_causal_lm("gemma"), x)
    device_mesh = tiny_models.keras_device_mesh((2, 2))
    if kind == "data_parallel":
        # A one-axis mesh: Keras 3.15's `DataParallel` fails formatting its
        # own warning about a two-axis one.
        distribution = keras.distribution.DataParallel(
            devices=[f"cpu:{i}" for i in range(4)]
        )
    else:
        layout_map = keras_hub.models.GemmaBackbone.get_layout_map(device_mesh)
        distribution = keras.distribution.ModelParallel(layout_map=layout_map)
    with distribution.scope():
        model = peaked_causal_lm("gemma")
        assert_same_generation(generate(model, x), expected)
    query = model.backbone.get_layer("decoder_block_0").attention.query_dense.kernel
    split = "model" if kind == "model_parallel" else "unsharded"
    assert query.value.layout.sharding_specs[0] == split


SCRIPT = os.path.join(os.path.dirname(__file__), "step_collectives.py")


@pytest.mark.parametrize("family, mesh", [("gpt2", "1x2"), ("llama", "2x2")])
def test_the_cache_stays_split_over_heads_from_token_to_token(family, mesh):
    result = subprocess.run(
        [sys.executable, SCRIPT, f"--family={family}", f"--mesh={mesh}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (loop,) = report["loops"]
    caches = [v for v in loop["variables"] if len(v["shape"]) >= 5]
    assert caches, loop["variables"]
    for cache in caches:
        # (batch, layers, key/value, sequence, heads, head_dim): heads on "model".
        assert cache["layout"][-2:] == ["model", "unsharded"], cache
        assert cache["layout"][0] == "batch", cache
    # Per token, only activations move (a token's hidden state, its logits):
    # nothing of the cache's rank, so no cache gather.
    assert loop["collectives"], "expected the row-parallel all-reduces"
    assert all(len(c["shape"]) < 4 for c in loop["collectives"]), loop["collectives"]
