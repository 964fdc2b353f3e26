"""A trial's learning rate: linear decay to 0 over the steps its `fit` runs."""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from tests.distillation import tiny_bert
from tf_mp.automl import StudentHyperModel
from tf_mp.automl import StudentSpace
from tf_mp.utils.schedules import fit_steps


def test_steps_are_epochs_times_batches():
    x, y = np.zeros((50, 3)), np.zeros(50)
    assert fit_steps(x, (y,), {"epochs": 3}) == 3 * 2  # Keras's batch of 32.
    assert fit_steps(x, (y, 8), {"epochs": 2}) == 2 * 7
    resumed = {"batch_size": 8, "epochs": 4, "initial_epoch": 1}
    assert fit_steps({"a": x}, (), resumed) == 3 * 7
    # Keras trains on the first 40 rows with validation_split=0.2.
    assert fit_steps(x, (y,), {"batch_size": 8, "validation_split": 0.2}) == 5
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    assert fit_steps(data, (), {"epochs": 2}) == 14
    unknown = data.filter(lambda *_: True)
    assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    assert fit_steps(unknown, (), {"epochs": 2}) == 14
    assert fit_steps(data.repeat(), (), {"epochs": 2, "steps_per_epoch": 5}) == 10


def test_a_dataset_of_unknown_size_is_counted_once_for_every_trial():
    passes = []

    def rows():
        passes.append(1)
        yield from range(10)

    data = tf.data.Dataset.from_generator(
        rows, output_signature=tf.TensorSpec((), tf.int64)
    ).batch(4)
    counted = {}
    assert fit_steps(data, (), {"epochs": 2}, counted) == 2 * 3
    assert fit_steps(data, (), {"epochs": 1}, counted) == 3
    assert len(passes) == 1


# Factories: a dataset made while collecting would start TensorFlow before
# the session splits the CPU into virtual devices.
@pytest.mark.parametrize(
    "make_x, kwargs, match",
    [
        (lambda: np.zeros((4, 2)), {"epochs": 2, "initial_epoch": 2}, "epoch=2"),
        (lambda: tf.data.Dataset.range(3).repeat(), {}, "infinite cardinality"),
    ],
    ids=["no_epoch_left", "infinite"],
)
def test_no_step_to_decay_over_is_named(make_x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_steps(make_x(), (), kwargs)


def test_a_linear_trial_ends_at_rate_0_and_a_constant_one_keeps_it():
    teacher = tiny_bert.classifier(num_layers=2, seed=0)
    # A dataset of known size: Keras 3.15's own trainer advances
    # `optimizer.iterations` once more at the end of each epoch of a dataset of
    # unknown size (its counter, not an update), which would shift the count.
    data = tiny_bert.dataset(n=24, batch_size=8)
    for schedule, final in (("linear", 0.0), ("constant", 1e-3)):
        space = StudentSpace(num_layers=1, learning_rate=1e-3, lr_schedule=schedule)
        hypermodel = StudentHyperModel(teacher, space, seed=0)
        hp = keras_tuner.HyperParameters()
        distiller = hypermodel.build(hp)
        assert hp.get("lr_schedule") == schedule
        hypermodel.fit(hp, distiller, data, epochs=2, verbose=0)
        optimizer = distiller.optimizer
        assert int(optimizer.iterations) == 2 * 3
        np.testing.assert_allclose(float(optimizer.learning_rate), final, atol=1e-12)
        if schedule == "linear":
            rate = optimizer._learning_rate
            assert isinstance(rate, keras.optimizers.schedules.PolynomialDecay)
            np.testing.assert_allclose(float(rate(0)), 1e-3)
            np.testing.assert_allclose(float(rate(3)), 5e-4)
