"""`tf_mp.Distiller` with `keras.distillation.Distiller`'s constructor: the same
losses as Keras's own distiller, tf_mp's block terms as `DistillationLoss`
objects, and the models Keras accepts."""

import keras
import numpy as np
import pytest

import tf_mp
from tests.distillation import tiny_bert
from tf_mp.distillation import AttentionDistillation
from tf_mp.distillation import HiddenStateDistillation


def _mlp(width, seed, name):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))  # Unnamed: Keras picks different names.
    hidden = keras.layers.Dense(width, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden), name=name)


def _evaluate(distiller, x, y):
    distiller.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True)
    )
    return distiller.evaluate(x, y, batch_size=len(y), return_dict=True, verbose=0)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_losses_equal_keras_distiller(weight):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)).astype("float32"), rng.integers(0, 3, 16)
    teacher, student = _mlp(8, 0, "teacher"), _mlp(4, 1, "student")
    terms = lambda: [  # noqa: E731
        keras.distillation.LogitsDistillation(temperature=3.0),
        keras.distillation.FeatureDistillation(
            loss="mse", teacher_layer_name="logits", student_layer_name="logits"
        ),
    ]
    kwargs = dict(distillation_loss_weights=[0.7, 0.2], student_loss_weight=weight)
    ours = _evaluate(tf_mp.Distiller(teacher, student, terms(), **kwargs), x, y)
    keras_distiller = keras.distillation.Distiller(teacher, student, terms(), **kwargs)
    keras_distiller.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True)
    )
    theirs = keras_distiller.evaluate(
        x, y, batch_size=len(y), return_dict=True, verbose=0
    )
    for key in ("total_loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, err_msg=key)
    if weight < 1.0:  # At weight 1 Keras computes no distillation term (0).
        assert ours["distillation_loss"] > 1e-3


def test_block_terms_as_objects_give_the_short_form_numbers():
    x, y = tiny_bert.data(8)
    short = tf_mp.Distiller(
        tiny_bert.classifier(num_layers=4, seed=0),
        tiny_bert.classifier(num_layers=2, seed=1),
        alpha=0.4,
        hidden_weight=0.5,
        attention_weight=0.25,
        layer_map={0: 1, 1: 3},
    )
    objects = tf_mp.Distiller(
        short.teacher,
        short.student,
        [
            keras.distillation.LogitsDistillation(
                temperature=2.0, loss=keras.losses.KLDivergence()
            ),
            HiddenStateDistillation(layer_map={0: 1, 1: 3}),
            AttentionDistillation(),
        ],
        # w * student + (1 - w) * sum(weight_i * term_i) with w = 0.4.
        distillation_loss_weights=[1.0, 0.5 / 0.6, 0.25 / 0.6],
        student_loss_weight=0.4,
    )
    assert objects.teacher_blocks_needed == short.teacher_blocks_needed == ([1, 3], [3])
    a, b = _evaluate(short, x, y), _evaluate(objects, x, y)
    np.testing.assert_allclose(b["total_loss"], a["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["student_loss"], a["student_loss"], rtol=1e-6)


def test_keras_form_serializes_and_reloads(tmp_path):
    x, y = tiny_bert.data(8)
    distiller = tf_mp.Distiller(
        tiny_bert.classifier(num_layers=4, seed=0),
        tiny_bert.classifier(num_layers=2, seed=1),
        [keras.distillation.LogitsDistillation(), HiddenStateDistillation()],
        distillation_loss_weights=[1.0, 2.0],
        student_loss_weight=0.25,
    )
    before = _evaluate(distiller, x, y)
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.models.load_model(tmp_path / "distiller.keras")
    assert isinstance(loaded.distillation_losses[1], HiddenStateDistillation)
    assert loaded.layer_map == distiller.layer_map == {0: 1, 1: 3}
    after = _evaluate(loaded, x, y)
    np.testing.assert_allclose(after["total_loss"], before["total_loss"], rtol=1e-5)


def test_models_keras_accepts_are_accepted():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.integers(0, 3, 8)
    unnamed = tf_mp.Distiller(_mlp(8, 0, "t"), _mlp(4, 1, "s"), alpha=0.5)
    assert np.isfinite(_evaluate(unnamed, x, y)["loss"])
    sequential = keras.Sequential([keras.layers.Dense(3)])
    subclassed = _Subclassed()
    distiller = tf_mp.Distiller(sequential, subclassed, alpha=0.5)
    assert distiller(x).shape == (8, 3)
    assert np.isfinite(_evaluate(distiller, x, y)["loss"])


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


def test_a_term_that_cannot_apply_is_an_error():
    teacher, student = _mlp(8, 0, "teacher"), _mlp(4, 1, "student")
    with pytest.raises(ValueError, match="HiddenStateDistillation pairs encoder"):
        tf_mp.Distiller(teacher, student, hidden_weight=1.0)
    with pytest.raises(ValueError, match="either `distillation_losses`.*'alpha'"):
        tf_mp.Distiller(
            teacher, student, keras.distillation.LogitsDistillation(), alpha=0.3
        )
    with pytest.raises(ValueError, match="must match"):
        tf_mp.Distiller(
            teacher,
            student,
            [keras.distillation.LogitsDistillation()],
            distillation_loss_weights=[1.0, 2.0],
        )
