"""Each distillation term against a value computed by hand with numpy."""

import keras
import numpy as np

from tests.distillation import tiny_bert
from tf_mp import Distiller
from tf_mp.distillation import losses


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_logits_term_is_t_squared_kl_of_tempered_softmaxes():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 5, 3)).astype("float32")
    t = 2.0
    p, q = _softmax(teacher / t), _softmax(student / t)
    expected = np.mean(np.sum(p * np.log(p / q), axis=-1)) * t**2
    distiller = tiny_bert.compile_distiller(
        Distiller(
            tiny_bert.classifier(seed=0), tiny_bert.classifier(seed=1), temperature=t
        )
    )
    value = distiller._logits_loss.compute_loss(teacher, student)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    # Keras's default (loss="kl_divergence") resolves to a function and skips
    # the softmax and the T^2: not this value. Why tf_mp passes an instance.
    keras_default = keras.distillation.LogitsDistillation(temperature=t)
    assert abs(float(keras_default.compute_loss(teacher, student)) - expected) > 0.1


def test_mse_logits_term_is_the_mean_squared_error_of_raw_logits():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 5, 3)).astype("float32") * 4.0
    expected = np.mean((teacher - student) ** 2)
    for t in (1.0, 4.0):  # The temperature plays no part.
        distiller = Distiller(
            tiny_bert.classifier(seed=0), tiny_bert.classifier(seed=1),
            temperature=t, logits_loss="mean_squared_error",
        )  # fmt: skip
        value = distiller._logits_loss.compute_loss(teacher, student)
        np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_hidden_state_term_is_mse_over_kept_tokens():
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], "int32")
    per_token = np.mean((teacher - student) ** 2, axis=-1)
    expected = np.sum(per_token * mask) / mask.sum()
    value = losses.hidden_state_loss(teacher, student, mask)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    unmasked = losses.hidden_state_loss(teacher, student)
    np.testing.assert_allclose(float(unmasked), per_token.mean(), rtol=1e-5)


def test_attention_term_is_kl_per_query_over_kept_queries():
    rng = np.random.default_rng(2)
    teacher = _softmax(rng.normal(size=(2, 3, 4, 4))).astype("float32")
    student = _softmax(rng.normal(size=(2, 3, 4, 4))).astype("float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "int32")
    kl = np.sum(teacher * np.log(teacher / student), axis=-1)  # (b, h, q)
    weights = np.broadcast_to(mask[:, None, :], kl.shape)
    expected = np.sum(kl * weights) / weights.sum()
    value = losses.attention_loss(teacher, student, mask)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_attention_term_averages_heads_when_counts_differ():
    rng = np.random.default_rng(3)
    teacher = _softmax(rng.normal(size=(2, 4, 3, 3))).astype("float32")
    student = _softmax(rng.normal(size=(2, 2, 3, 3))).astype("float32")
    p, q = teacher.mean(axis=1), student.mean(axis=1)
    expected = np.mean(np.sum(p * np.log(p / q), axis=-1))
    value = losses.attention_loss(teacher, student)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
