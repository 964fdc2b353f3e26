"""`tf_mp.Distiller` on tiny random-init keras-hub BERT classifiers."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests.distillation import tiny_bert
from tf_mp.distillation import features


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pair(**kwargs):
    teacher = tiny_bert.classifier(num_layers=4, hidden=16, heads=4, seed=0)
    student = tiny_bert.classifier(num_layers=2, hidden=8, heads=2, ff=16, seed=1)
    return teacher, student, tf_mp.Distiller(teacher, student, **kwargs)


@pytest.mark.parametrize("logits_loss", ["kl_divergence", "mse"])
def test_total_loss_is_the_weighted_sum_of_hand_computed_terms(logits_loss):
    teacher, student, distiller = _pair(
        temperature=3.0, alpha=0.3, hidden_weight=0.5, attention_weight=2.0,
        layer_map={0: 1, 1: 3}, logits_loss=logits_loss,
    )  # fmt: skip
    tiny_bert.compile_distiller(distiller)
    logits = teacher.get_layer("logits")
    logits.kernel.assign(logits.kernel * 50.0)  # Confident teacher: a sizeable term.
    for name in ("query", "key"):  # Peaked attention in teacher block 3, likewise.
        kernel = next(
            w
            for w in teacher.weights
            if w.path == f"transformer_layer_3/self_attention_layer/{name}/kernel"
        )
        kernel.assign(kernel * 6.0)
    x, y = tiny_bert.data(8)
    results = distiller.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)

    t = features.feature_model(teacher, [1, 3], [3])(x)
    s = features.feature_model(student, [0, 1], [1])(x)
    logits_t, logits_s = (np.asarray(f["logits"]) for f in (t, s))
    probs = _softmax(logits_s)
    student_loss = -np.mean(np.log(probs[np.arange(8), y]))
    p, q = _softmax(logits_t / 3.0), _softmax(logits_s / 3.0)
    kd = np.mean(np.sum(p * np.log(p / q), axis=-1)) * 9.0
    if logits_loss == "mse":  # Raw logits: the temperature plays no part.
        kd = np.mean((logits_t - logits_s) ** 2)
    mask = x["padding_mask"].astype("float32")
    hidden = []
    for i, j in ((0, 1), (1, 3)):
        projection = distiller.projections[str(i)].kernel.numpy()  # (8, 16)
        error = np.mean((np.asarray(t[f"hidden_state_{j}"]) - s[f"hidden_state_{i}"]
                         @ projection) ** 2, axis=-1)  # fmt: skip
        hidden.append(np.sum(error * mask) / mask.sum())
    # 4 vs 2 heads: head-averaged; clipped to [1e-7, 1] as Keras's KL does.
    a_t = np.clip(np.asarray(t["attention_3"]).mean(axis=1), 1e-7, 1)
    a_s = np.clip(np.asarray(s["attention_1"]).mean(axis=1), 1e-7, 1)
    kl = np.sum(a_t * np.log(a_t / a_s), axis=-1)
    attention = np.sum(kl * mask) / mask.sum()
    expected = {
        "student_loss": student_loss,
        "distillation_loss": kd,
        "hidden_state_loss": np.mean(hidden),
        "attention_loss": attention,
        "loss": 0.3 * student_loss + 0.7 * kd + 0.5 * np.mean(hidden) + 2.0 * attention,
    }
    for name, value in expected.items():
        assert value > 1e-3, name  # Each term is large enough to check.
        np.testing.assert_allclose(results[name], value, rtol=1e-4, err_msg=name)


def test_fit_trains_the_student_only_and_logs_every_term():
    teacher, student, distiller = _pair(hidden_weight=1.0, attention_weight=1.0)
    tiny_bert.compile_distiller(distiller)
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    student_before = [w.numpy().copy() for w in student.weights]
    history = distiller.fit(
        tiny_bert.dataset(), validation_data=tiny_bert.dataset(seed=1), epochs=2,
        verbose=0,
    ).history  # fmt: skip
    for name in ("loss", "student_loss", "distillation_loss", "hidden_state_loss",
                 "attention_loss", "sparse_categorical_accuracy"):  # fmt: skip
        assert len(history[name]) == 2 and len(history["val_" + name]) == 2
    assert history["loss"][1] < history["loss"][0]
    for before, weight in zip(teacher_before, teacher.weights):
        np.testing.assert_array_equal(before, weight.numpy())
    moved = [
        not np.array_equal(b, w.numpy())
        for b, w in zip(student_before, student.weights)
    ]
    assert all(moved)
    trainable = {id(w) for w in distiller.trainable_weights}
    assert trainable == {id(w) for w in student.trainable_weights} | {
        id(p.kernel) for p in distiller.projections.values()
    }
    assert np.allclose(distiller.predict(tiny_bert.data(4)[0], verbose=0),
                       student.predict(tiny_bert.data(4)[0], verbose=0))  # fmt: skip


def test_default_layer_maps_are_uniform_and_last_to_last():
    _, _, distiller = _pair(hidden_weight=1.0, attention_weight=1.0)
    assert distiller.layer_map == {0: 1, 1: 3}
    assert distiller.attention_layer_map == {1: 3}
    assert distiller.teacher_blocks_needed == ([1, 3], [3])


def test_reaches_blocks_of_a_partitioned_teacher():
    teacher = tiny_bert.classifier(seed=0)
    partitioned = keras_hub.models.BertTextClassifier(
        tf_mp.models.partition_bert(teacher.backbone),
        num_classes=2, preprocessor=None, dropout=0.0,
    )  # fmt: skip
    partitioned.set_weights(teacher.get_weights())
    blocks = features.encoder_blocks(partitioned)
    assert [type(b).__name__ for b in blocks] == ["ParallelTransformerEncoder"] * 4
    x, y = tiny_bert.data(8)
    results = []
    for model in (teacher, partitioned):
        student = tiny_bert.classifier(num_layers=2, hidden=8, heads=2, seed=1)
        distiller = tf_mp.Distiller(
            model, student, hidden_weight=1.0, attention_weight=1.0, layer_map={1: 2}
        )
        tiny_bert.compile_distiller(distiller)
        results.append(distiller.evaluate(x, y, return_dict=True, verbose=0))
    for name, value in results[0].items():
        np.testing.assert_allclose(results[1][name], value, rtol=1e-5, err_msg=name)


def test_built_on_construction_and_weights_reload_into_a_fresh_one(tmp_path):
    _, _, distiller = _pair(hidden_weight=1.0)
    assert distiller.built and distiller.count_params() > 0
    path = str(tmp_path / "distiller.weights.h5")
    distiller.save_weights(path)
    _, _, fresh = _pair(hidden_weight=1.0)
    fresh.load_weights(path)
    for a, b in zip(distiller.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_saved_distiller_reloads_and_resumes_training(tmp_path):
    _, _, distiller = _pair(hidden_weight=1.0, logits_loss="mse")
    tiny_bert.compile_distiller(distiller)
    data = tiny_bert.dataset()
    distiller.fit(data, epochs=1, verbose=0)
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, tf_mp.Distiller)
    assert loaded.layer_map == distiller.layer_map
    assert loaded.logits_loss == "mean_squared_error"
    assert int(loaded.optimizer.iterations) == int(distiller.optimizer.iterations)
    again = [
        m.fit(data, epochs=1, verbose=0).history["loss"] for m in (distiller, loaded)
    ]
    np.testing.assert_allclose(again[1], again[0], rtol=1e-5)


def test_exported_student_has_no_teacher_or_projection_weights(tmp_path):
    teacher, student, distiller = _pair(hidden_weight=1.0)
    path = str(tmp_path / "student.keras")
    tf_mp.distillation.save_student(distiller, path)
    loaded = keras.models.load_model(path)
    assert loaded.count_params() == student.count_params()
    assert sorted(w.path for w in loaded.weights) == sorted(
        w.path for w in student.weights
    )
    teacher_ids = {id(w) for w in teacher.weights}
    assert not teacher_ids & {id(w) for w in distiller.student.weights}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"temperature": 0.0},
            r"`temperature` must be a number > 0\. Received: temperature=0\.0",
        ),
        (
            {"alpha": 1.5},
            r"`alpha` must be a number in \[0, 1\]\. Received: alpha=1\.5",
        ),
        (
            {"logits_loss": "cross_entropy"},
            r"`logits_loss` must be one of \['kl_divergence', 'kld', "
            r"'mean_squared_error', 'mse'\]\. Received: logits_loss='cross_entropy'",
        ),
        (
            {"hidden_weight": 1.0, "layer_map": {0: 7}},
            r"student block 0 to teacher block 7.*student has 2 encoder blocks "
            r"and the teacher 4",
        ),
        (
            {"hidden_weight": 1.0, "layer_map": {5: 0}},
            r"student block 5 to teacher block 0",
        ),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _pair(**kwargs)


def test_teacher_and_student_must_agree():
    teacher = tiny_bert.classifier(seed=0)
    with pytest.raises(
        ValueError, match=r"same number of outputs.*teacher 2, student 3"
    ):
        tf_mp.Distiller(teacher, tiny_bert.classifier(num_layers=2, classes=3))
    with pytest.raises(
        ValueError,
        match=r"vocabulary.*teacher vocabulary_size=30, student vocabulary_size=40",
    ):
        tf_mp.Distiller(teacher, tiny_bert.classifier(num_layers=2, vocab=40))
    inputs = keras.Input((tiny_bert.SEQ,), dtype="int32", name="token_ids")
    other = keras.Model(
        inputs, keras.layers.Dense(2)(keras.ops.cast(inputs, "float32"))
    )
    with pytest.raises(
        ValueError,
        match=r"same inputs.*teacher inputs \['padding_mask', 'segment_ids', "
        r"'token_ids'\], student inputs \['token_ids'\]",
    ):
        tf_mp.Distiller(teacher, other)
