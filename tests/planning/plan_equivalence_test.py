"""A planned model trains equal to one device, and holds what the plan says.

For models no hand-written layout map covers (a Keras MLP, a Functional
transformer on `keras.layers.MultiHeadAttention`, a subclassed model with
auto-named layers, a keras-hub vision backbone): the plan is forced to split
(a memory budget below one device's need), applied, and compared with the
original on one device: forward, gradients, three `fit` steps (dropout on),
and final weights; and its per-device weight bytes equal `shard_report`'s.
"""

import keras
import numpy as np
import pytest

import tf_mp
from tests.parallel import equivalence
from tests.planning import models
from tf_mp.parallel.model_parallel import distribution_of
from tf_mp.utils.classifiers import build_optimizer
from tf_mp.utils.classifiers import compile_arguments

CASES = {
    # name: (build, input shape, integer inputs, meshes)
    "mlp": (models.mlp, (16,), False, [(2, 2)]),
    "transformer": (models.transformer, (models.SEQ,), True, [(2, 2), (1, 4)]),
    "subclassed": (models.subclassed, (16,), False, [(1, 2)]),
    "vit": (models.vit, (8, 8, 3), False, [(2, 2)]),
}


def _one_device_need(model, batch_size):
    single = tf_mp.plan(
        model,
        devices=[(1, 1)],
        batch_size=batch_size,
        measure=0,
        constants=models.CONSTANTS,
    )
    return single.bytes_per_device


def _forced_plan(model, mesh, batch_size=models.BATCH):
    """A plan on `mesh` whose budget one device's layout does not meet."""
    need = _one_device_need(model, batch_size)
    return tf_mp.plan(
        model,
        devices=[mesh],
        memory_per_device=int(need * 0.9),
        batch_size=batch_size,
        objective="memory",
        measure=0,
        constants=models.CONSTANTS,
    )


def _train(model, x, y, distribution=None):
    predictions = model.predict(x, batch_size=models.BATCH, verbose=0)
    grads = equivalence.gradients(
        model, x[: models.BATCH], y[: models.BATCH], distribution
    )
    model.compile(**compile_arguments(keras.optimizers.Adam(1e-2)))
    if distribution is None:
        build_optimizer(model)
    history = model.fit(
        x, y, batch_size=models.BATCH, epochs=1, shuffle=False, verbose=0
    ).history["loss"]
    weights = [np.asarray(w) for w in model.trainable_weights]
    return predictions, grads, history, weights


# Without dropout, the transformer and the ViT are slow (20 s each on 2 cores):
# their runs with dropout take the same layouts and steps, masks besides; the
# MLP and the subclassed model run both ways.
SLOW_WITHOUT_DROPOUT = ("transformer", "vit")


def _equivalence_cases():
    for name in sorted(CASES):
        for dropout, label in ((0.0, "no_dropout"), (0.3, "dropout")):
            slow = dropout == 0.0 and name in SLOW_WITHOUT_DROPOUT
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(name, dropout, id=f"{name}-{label}", marks=marks)


@pytest.mark.parametrize("name, dropout", list(_equivalence_cases()))
def test_a_planned_model_trains_equal_to_one_device(name, dropout, virtual_devices):
    build, shape, integer, meshes = CASES[name]
    for mesh in meshes:
        model = build(dropout=dropout)
        x, y = models.data(shape, integer)
        plan = _forced_plan(model, mesh)
        assert plan.mesh_shape == {"batch": mesh[0], "model": mesh[1]}
        assert plan.bytes_per_device <= plan.settings["memory_per_device"]
        placed = plan.apply(model)
        report = tf_mp.shard_report(placed)
        assert report.bytes_per_device == plan.best["weight_bytes"]
        assert report.bytes_per_device < report.total_bytes
        for (path, _, axes), row in zip(plan.weights, report.rows):
            assert row.axes == tuple(axes), path
        expected = _train(model, x, y)
        got = _train(placed, x, y, distribution_of(placed))
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-5)
        for a, b in zip(got[1], expected[1]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[2], expected[2], rtol=1e-4)
        for a, b, grad in zip(got[3], expected[3], expected[1]):
            if np.max(np.abs(grad)) < 1e-6:
                # Attention's key bias: softmax ignores it, its gradient is
                # rounding noise, and Adam scales noise to full-size steps.
                continue
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
