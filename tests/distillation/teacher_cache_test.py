"""`TeacherCache`: the teacher runs once, and cached training equals uncached."""

import numpy as np
import pytest
import tensorflow as tf

import tf_mp
from tests.distillation import tiny_bert
from tf_mp.distillation import TeacherCache


def _distiller(teacher, **kwargs):
    student = tiny_bert.classifier(num_layers=2, hidden=8, heads=2, ff=16, seed=1)
    distiller = tf_mp.Distiller(teacher, student, **kwargs)
    return tiny_bert.compile_distiller(distiller)


def test_cached_and_uncached_distillation_give_the_same_weights():
    teacher = tiny_bert.classifier(seed=0)
    kwargs = dict(hidden_weight=1.0, attention_weight=1.0, temperature=2.0)
    uncached = _distiller(teacher, **kwargs)
    history_uncached = uncached.fit(tiny_bert.dataset(), epochs=3, verbose=0).history

    cached = _distiller(teacher, **kwargs)
    cache = TeacherCache.for_distiller(cached)
    train = cache.attach(tiny_bert.dataset()).batch(8)
    history_cached = cached.fit(train, epochs=3, verbose=0).history

    assert cache.teacher_runs == 1
    for name, values in history_uncached.items():
        np.testing.assert_allclose(
            # Distillation terms (~1e-3) move by ~1e-7 with float32 summation order.
            history_cached[name],
            values,
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )
    # The teacher's outputs differ by float rounding between the train step and
    # the cache's predict function; Adam turns that into ~1e-6 weight drift.
    for a, b in zip(uncached.student.weights, cached.student.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_the_teacher_runs_once_per_dataset_and_reloads_from_disk(tmp_path):
    teacher = tiny_bert.classifier(seed=0)
    data = tiny_bert.dataset(n=20, batch_size=6)  # last batch partial
    cache = TeacherCache(teacher, hidden_blocks=[3], directory=str(tmp_path))
    first = list(cache.attach(data).as_numpy_iterator())
    cache.attach(data)
    assert cache.teacher_runs == 1 and len(first) == 20
    assert cache.scored_rows == 20 and cache.scoring_seconds > 0
    x, y = tiny_bert.data(20)
    expected = teacher.predict(x, verbose=0)
    logits = np.stack([element[0]["teacher_outputs"]["logits"] for element in first])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal([element[1] for element in first], y)

    other_process = TeacherCache(teacher, hidden_blocks=[3], directory=str(tmp_path))
    again = list(other_process.attach(tiny_bert.dataset(n=20, batch_size=6)))
    assert other_process.teacher_runs == 0 and other_process.scored_rows == 0
    np.testing.assert_allclose(
        np.stack([e[0]["teacher_outputs"]["hidden_state_3"] for e in again]),
        np.stack([e[0]["teacher_outputs"]["hidden_state_3"] for e in first]),
    )


def test_half_precision_cache_halves_memory_and_still_trains():
    teacher = tiny_bert.classifier(seed=0)
    full = TeacherCache(teacher, hidden_blocks=[3]).attach(tiny_bert.dataset())
    half = TeacherCache(teacher, hidden_blocks=[3], dtype="float16")
    half_data = half.attach(tiny_bert.dataset())
    spec = half_data.element_spec[0]["teacher_outputs"]["hidden_state_3"]
    assert spec.dtype == tf.float16
    a = np.stack([e[0]["teacher_outputs"]["hidden_state_3"] for e in full])
    b = np.stack([e[0]["teacher_outputs"]["hidden_state_3"] for e in half_data])
    np.testing.assert_allclose(b.astype("float32"), a, rtol=1e-2, atol=1e-3)
    distiller = _distiller(teacher, hidden_weight=1.0, layer_map={1: 3})
    history = distiller.fit(half_data.batch(8), epochs=2, verbose=0).history
    assert history["loss"][1] < history["loss"][0]


def test_missing_cached_blocks_are_named():
    teacher = tiny_bert.classifier(seed=0)
    distiller = _distiller(teacher, hidden_weight=1.0)
    cache = TeacherCache(teacher)  # logits only
    train = cache.attach(tiny_bert.dataset()).batch(8)
    with pytest.raises(ValueError, match=r"no 'hidden_state_1'.*teacher_blocks_needed"):
        distiller.fit(train, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "make_data, error, message",
    [
        # Built lazily: a dataset made at collection would start TensorFlow
        # before the session splits the CPU into virtual devices.
        (lambda: [1, 2], TypeError, "must be a `tf.data.Dataset`"),
        (lambda: tf.data.Dataset.range(0), ValueError, "`data` is empty"),
        (lambda: tf.data.Dataset.range(3), ValueError, r"must yield `\(x, y\)`"),
    ],
)
def test_bad_data_is_refused(make_data, error, message):
    with pytest.raises(error, match=message):
        TeacherCache(tiny_bert.classifier(seed=0)).attach(make_data())


def test_on_disk_the_teacher_scores_a_chunk_at_a_time(tmp_path):
    teacher = tiny_bert.classifier(seed=0)
    data = tiny_bert.dataset(n=20, batch_size=6)
    whole = list(TeacherCache(teacher, hidden_blocks=[3]).attach(data))
    cache = TeacherCache(
        teacher, hidden_blocks=[3], directory=str(tmp_path), chunk_rows=8
    )
    chunked = list(cache.attach(data))
    assert cache.teacher_runs == 1 and cache.scored_rows == 20
    (saved,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in saved.iterdir() if p.name.startswith("part_")) == [
        "part_0",
        "part_1",
        "part_2",
    ]
    assert len(chunked) == len(whole) == 20
    for a, b in zip(chunked, whole):
        for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`chunk_rows` must be a positive integer"):
        TeacherCache(teacher, chunk_rows=0)
