"""Sharded training equals single-device training (same seed and weights).

`bert_dropout` trains with dropout 0.1: masks are drawn at the global shape on a
mesh, so they equal single-device masks and the runs still match. After every
run, replicated variables must be identical on every device; with dropout, the
saved weights must also reproduce the trained model.
"""

import functools
import itertools

import numpy as np
import pytest

from tests import tiny_models
from tests.parallel import equivalence

MESH_SHAPES = [(1, 2), (1, 4), (2, 1), (2, 2), (2, 4)]
_SMALL = ["embedding", "mlp"]


def _cases():
    # The small models (the engine's paths, seconds a case): every optimizer on
    # every mesh.
    for model, optimizer, mesh in itertools.product(
        _SMALL, sorted(tiny_models.OPTIMIZERS), MESH_SHAPES
    ):
        yield model, optimizer, mesh
    # BERT, with and without dropout (~15-40 s a case on 2 cores, nearly all
    # of it tracing): every mesh with Adam and dropout; AdamW and SGD each once
    # without dropout and once with it, on a model-only, a batch-only and a
    # 2-D mesh. Without dropout: Adam on 1x2, AdamW on 2x1 and SGD on 1x4;
    # Adam without dropout on the other meshes is slow (the runs with dropout
    # take the same layouts and steps, masks besides). Each optimizer on every
    # mesh, without dropout, is the small models' cases.
    for mesh in MESH_SHAPES:
        yield "bert_dropout", "adam", mesh
        yield "bert", "adam", mesh
    yield "bert", "adamw", (2, 1)
    yield "bert", "sgd", (1, 4)
    yield "bert_dropout", "adamw", (2, 2)
    yield "bert_dropout", "sgd", (1, 2)


SLOW_CASES = {("bert", "adam", mesh) for mesh in MESH_SHAPES if mesh != (1, 2)}


def _params():
    # The cases of one single-device reference share a worker (`--dist
    # loadgroup`), which computes the reference once.
    for model, optimizer, mesh in _cases():
        mesh_id = "x".join(map(str, mesh))
        marks = [pytest.mark.xdist_group(f"reference-{model}-{optimizer}")]
        if (model, optimizer, mesh) in SLOW_CASES:
            marks.append(pytest.mark.slow)
        yield pytest.param(
            model, optimizer, mesh, id=f"{model}-{optimizer}-{mesh_id}", marks=marks
        )


@functools.cache
def single_device(model_name, optimizer_name):
    return equivalence.run(model_name, optimizer_name)


@pytest.mark.parametrize("model_name,optimizer_name,mesh_shape", list(_params()))
def test_sharded_run_matches_single_device(
    make_mesh, model_name, optimizer_name, mesh_shape
):
    expected = single_device(model_name, optimizer_name)
    actual = equivalence.run(model_name, optimizer_name, make_mesh(mesh_shape))
    # Training moved the weights: a step that silently did nothing would pass
    # the history check on its first epoch only.
    assert expected["history"]["loss"][1] != expected["history"]["loss"][0]
    equivalence.assert_same_run(actual, expected)
    for variable in actual["model"].optimizer.variables:
        assert np.all(np.isfinite(np.asarray(variable)))
    equivalence.assert_replicas_identical(actual["model"])
    if model_name == "bert_dropout":  # Where replicas drifted (~5 s a case).
        equivalence.assert_saved_weights_reproduce(actual, model_name)
