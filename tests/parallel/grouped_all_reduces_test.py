"""With DTensor's all-reduce combining on, steps still train as single device.

Writes to mesh variables are deferred to the end of a step (and of Keras's
`optimizer.apply` in custom loops); Keras's `ops.cond` runs both branches and
selects. These cases exercise the `cond`s of Keras's optimizers and a custom
training loop, on batch-split meshes where the pass groups the gradients.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_mp
from tests import tiny_models
from tf_mp.parallel import dtensor as engine

OPTIMIZERS = {
    # `ops.cond` on finite gradients, and on the dynamic scale's growth.
    "loss_scale": lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.01), initial_scale=2.0**4, dynamic_growth_steps=2
    ),
    # `ops.cond` between accumulating and applying.
    "accumulation": lambda: keras.optimizers.Adam(0.01, gradient_accumulation_steps=2),
    # `ops.cond` on overwriting the weights with their moving average.
    "ema": lambda: keras.optimizers.Adam(
        0.01, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2
    ),
}


def _fit(model, optimizer, steps=4):
    x, y = tiny_models.mlp_data()
    model.compile(optimizer=optimizer, loss=tiny_models.loss(), metrics=["accuracy"])
    logs = [
        model.train_on_batch(
            x[i * 8 : i * 8 + 8], y[i * 8 : i * 8 + 8], return_dict=True
        )
        for i in range(steps)
    ]
    return model.get_weights() + [w.numpy() for w in optimizer.variables], logs


def test_the_pass_is_on():
    assert engine.flags.all_reduces_grouped()


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("mesh_shape", [(2, 1), (2, 2)])
def test_optimizer_conds_train_as_single_device(make_mesh, mesh_shape, optimizer_name):
    expected, expected_logs = _fit(tiny_models.mlp(), OPTIMIZERS[optimizer_name]())
    mesh = make_mesh(mesh_shape)
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    actual, logs = _fit(model, OPTIMIZERS[optimizer_name]())
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(logs, expected_logs):
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
        assert got["accuracy"] == want["accuracy"]


def _custom_loop(model, distribution=None, steps=3):
    x, y = tiny_models.mlp_data()
    optimizer = keras.optimizers.Adam(0.01)
    loss_fn = tiny_models.loss()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    if distribution is not None:
        with distribution.scope():
            optimizer.build(model.trainable_variables)
    losses = []
    for i in range(steps):
        batch = (x[i * 8 : i * 8 + 8], y[i * 8 : i * 8 + 8])
        if distribution is not None:
            batch = distribution.distribute_data(batch)
        losses.append(float(tf_mp.gather(train_step(*batch))))
    return losses, model.get_weights()


@pytest.mark.parametrize("mesh_shape", [(2, 1), (4, 1)])
def test_a_custom_loop_with_apply_gradients_trains_as_single_device(
    make_mesh, mesh_shape
):
    expected_losses, expected = _custom_loop(tiny_models.mlp())
    distribution = tf_mp.ModelParallel(make_mesh(mesh_shape))
    with distribution.scope():
        model = tiny_models.mlp()
    losses, actual = _custom_loop(model, distribution)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class _CountingModel(keras.Sequential):
    """Counts steps with a raw `tf.cond` that writes a variable."""

    def train_step(self, data):
        logs = super().train_step(data)
        tf.cond(
            tf.reduce_sum(data[1]) >= 0,
            lambda: self.counter.assign_add(1.0),
            lambda: self.counter.assign_add(0.0),
        )
        return logs


def test_a_write_in_a_raw_tf_cond_of_a_step_is_a_clear_error(make_mesh):
    mesh = make_mesh((2, 1))
    with tf_mp.ModelParallel(mesh).scope():
        model = _CountingModel(
            [keras.Input((8,)), keras.layers.Dense(4)], name="counting"
        )
        model.counter = keras.Variable(0.0, trainable=False, name="counter")
    model.compile(optimizer="sgd", loss=tiny_models.loss())
    x, y = tiny_models.mlp_data()
    with pytest.raises(ValueError, match=r"'counter.*written inside a nested graph"):
        model.train_on_batch(x[:8], y[:8])


def test_train_on_batch_and_evaluate_reset_metrics_on_the_mesh(make_mesh):
    # `reset_metrics` runs as one function on the mesh; the metrics of every
    # call must be those of that call alone, as on one device.
    def run(model):
        x, y = tiny_models.mlp_data()
        model.compile(optimizer="sgd", loss=tiny_models.loss(), metrics=["accuracy"])
        logs = [
            model.train_on_batch(x[i : i + 8], y[i : i + 8], return_dict=True)
            for i in (0, 8, 16)
        ]
        logs.append(model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True))
        model.reset_metrics()
        return logs, [float(v.numpy()) for v in model.metrics_variables]

    expected, expected_state = run(tiny_models.mlp())
    mesh = make_mesh((2, 2))
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        model = tiny_models.mlp()
    logs, state = run(model)
    for got, want in zip(logs, expected):
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
        assert got["accuracy"] == want["accuracy"]
    assert state == expected_state == [0.0] * len(state)
