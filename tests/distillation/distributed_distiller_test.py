"""Distillation with a sharded teacher (DTensor) and under MirroredStrategy
equals single-device distillation (dropout 0)."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import tf_mp
from tests.distillation import tiny_bert

# Distillation terms are small differences of nearly equal teacher and student
# outputs (~1e-3): float32 summation order (oneDNN, instruction set, sharding)
# moves them by ~1e-7 absolute, 4e-5 relative. The divergences these tests
# guard against move logits by whole percents.
HISTORY_TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _teacher():
    teacher = tiny_bert.classifier(seed=0)
    logits = teacher.get_layer("logits")
    # A confident teacher with peaked attention: every term well above float32
    # rounding, so the comparison below checks them all.
    logits.kernel.assign(logits.kernel * 50.0)
    for weight in teacher.weights:
        if "transformer_layer_3/self_attention_layer/" in weight.path and (
            weight.path.endswith("query/kernel") or weight.path.endswith("key/kernel")
        ):
            weight.assign(weight * 6.0)
    return teacher


def _sharded_copy(teacher):
    """The teacher with partitioned blocks, built in the open mesh scope."""
    sharded = keras_hub.models.BertTextClassifier(
        tf_mp.models.partition_bert(teacher.backbone),
        num_classes=2,
        preprocessor=None,
        dropout=0.0,
    )
    sharded.set_weights(teacher.get_weights())
    return sharded


def _student():
    return tiny_bert.classifier(num_layers=2, hidden=8, heads=2, ff=16, seed=1)


def _train(distiller, steps_per_execution=1):
    # SGD: Adam turns float noise in gradients that are zero in exact arithmetic
    # (attention key biases) into full-size steps, so weights could not be
    # compared. Adam on meshes is covered by the engine's equivalence tests.
    tiny_bert.compile_distiller(
        distiller,
        learning_rate=0.1,
        optimizer="sgd",
        steps_per_execution=steps_per_execution,
    )
    history = distiller.fit(tiny_bert.dataset(n=32, batch_size=8), epochs=2, verbose=0)
    return history.history, [w.numpy() for w in distiller.student.weights]


def _reference(teacher, **kwargs):
    return _train(tf_mp.Distiller(teacher, _student(), **kwargs))


def assert_same_distillation(actual, expected):
    """`(history, student weights)` of a run equal the reference's (`weights`
    `None`: the history alone)."""
    (history, weights), (want_history, want_weights) = actual, expected
    for name, values in want_history.items():
        np.testing.assert_allclose(
            history[name], values, **HISTORY_TOLERANCE, err_msg=name
        )
    for got, want in zip(weights or (), want_weights or ()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


KWARGS = dict(hidden_weight=1.0, attention_weight=1.0, temperature=2.0)


# On 2x2, 4 steps per call (one call an epoch): the Distiller's loss trackers
# are part of the loop's state with the student, SGD's counter and the metrics,
# so the steps run in one `while` loop and train as the unsharded distiller
# does one step a call. Slow: `tests/parallel/steps_per_execution_test.py`
# runs the same case and also checks that the loop is not unrolled. 2x2 one
# step a call: the cache test.
@pytest.mark.parametrize(
    "mesh_shape,steps_per_execution",
    [((1, 2), 1), pytest.param((2, 2), 4, marks=pytest.mark.slow)],
)
def test_sharded_teacher_distils_like_an_unsharded_one(
    make_mesh, mesh_shape, steps_per_execution
):
    teacher = _teacher()
    history, weights = _reference(teacher, **KWARGS)
    with tf_mp.ModelParallel(make_mesh(mesh_shape)).scope():
        sharded = _sharded_copy(teacher)
        distiller = tf_mp.Distiller(sharded, _student(), **KWARGS)
    query = next(w for w in sharded.weights if w.path.endswith("query/kernel"))
    assert query.value.layout.sharding_specs[1] == "model"
    sharded = _train(distiller, steps_per_execution)
    assert int(distiller.optimizer.iterations.numpy()) == 8
    assert_same_distillation(sharded, (history, weights))


def test_mirrored_strategy_distils_like_one_device(virtual_devices):
    teacher = _teacher()
    history, weights = _reference(teacher, **KWARGS)
    # Reductions through one device, not collective ops: TensorFlow shares
    # collective group keys between DTensor meshes and tf.distribute in one
    # process, so after a mesh test whose first all-reduce spanned other CPUs
    # the collective path fails ("joining a group that is already full").
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        mirrored_teacher = _teacher()
        distiller = tf_mp.Distiller(mirrored_teacher, _student(), **KWARGS)
        mirrored = _train(distiller)
    assert_same_distillation(mirrored, (history, weights))
    assert keras.distribution.distribution() is None


def test_cache_of_a_sharded_teacher_feeds_distillation_on_the_mesh(make_mesh):
    teacher = _teacher()
    history, _ = _reference(teacher, hidden_weight=1.0)
    with tf_mp.ModelParallel(make_mesh((2, 2))).scope():
        sharded = _sharded_copy(teacher)
        distiller = tf_mp.Distiller(sharded, _student(), hidden_weight=1.0)
    # Built outside the scope: the cache's feature model joins the teacher's mesh.
    cache = tf_mp.distillation.TeacherCache.for_distiller(distiller)
    train = cache.attach(tiny_bert.dataset(n=32, batch_size=8)).batch(8)
    tiny_bert.compile_distiller(distiller, learning_rate=0.1, optimizer="sgd")
    cached = distiller.fit(train, epochs=2, verbose=0).history
    assert cache.teacher_runs == 1
    assert_same_distillation((cached, None), (history, None))


def test_a_teacher_made_off_mesh_still_scores_after_distilling_on_a_mesh(
    make_mesh,
):
    # The sharded distiller's first step moves the teacher's variables onto the
    # mesh; models made from the teacher afterwards must run on the mesh too.
    teacher = _teacher()
    data = tiny_bert.dataset(n=16, batch_size=8)
    x, _ = tiny_bert.data(16)
    before = teacher.predict(x, batch_size=8, verbose=0)
    mesh = make_mesh((2, 2))
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        distiller = tf_mp.Distiller(teacher, _student(), **KWARGS)
    _train(distiller)
    cached = tf_mp.distillation.TeacherCache(teacher).attach(data)
    logits = np.stack([e[0]["teacher_outputs"]["logits"] for e in cached])
    np.testing.assert_allclose(logits, before, rtol=1e-5, atol=1e-5)
