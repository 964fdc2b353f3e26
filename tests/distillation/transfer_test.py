"""`tf_mp.distillation.transfer_set`: transfer rows never change the labels loss."""

import keras
import numpy as np
import pytest

import tf_mp
from tests.distillation import tiny_bert
from tf_mp import distillation


def _cross_entropy(logits, y):
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return -log_probs[np.arange(len(y)), y]


def test_the_labels_loss_is_the_mean_over_labelled_rows():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)).astype("float32"), np.array([0, 1, 1, 0])
    extra = rng.normal(size=(12, 3)).astype("float32")
    xs, ys, weights = distillation.transfer_set((x, y), extra)
    assert xs.shape == (16, 3) and ys.shape == (16,) and weights.shape == (16,)
    np.testing.assert_array_equal(ys[:4], y)
    np.testing.assert_array_equal(weights, [4.0] * 4 + [0.0] * 12)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    by_hand = _cross_entropy(np.asarray(model(x)), y).mean()
    for batch_size in (16, 4):  # One batch, or equal batches over an epoch.
        loss = model.evaluate(
            xs, ys, sample_weight=weights, batch_size=batch_size, verbose=0
        )
        np.testing.assert_allclose(loss, by_hand, rtol=1e-5)


def test_a_distiller_reads_transfer_rows_for_its_distillation_term_only():
    x, y = tiny_bert.data(8, seed=0)
    extra, _ = tiny_bert.data(8, seed=1)
    xs, ys, weights = distillation.transfer_set((x, y), extra)
    teacher = tiny_bert.classifier(num_layers=2, seed=0)
    student = tiny_bert.classifier(num_layers=1, seed=1)
    distiller = tiny_bert.compile_distiller(tf_mp.Distiller(teacher, student))
    results = distiller.evaluate(
        xs, ys, sample_weight=weights, batch_size=16, return_dict=True, verbose=0
    )
    labelled = distiller.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    everything = distiller.evaluate(xs, ys, batch_size=16, return_dict=True, verbose=0)
    np.testing.assert_allclose(
        results["student_loss"], labelled["student_loss"], rtol=1e-5
    )
    # The distillation term averages over all 16 rows, transfer rows included.
    np.testing.assert_allclose(
        results["distillation_loss"], everything["distillation_loss"], rtol=1e-5
    )
    assert not np.isclose(
        results["distillation_loss"], labelled["distillation_loss"], rtol=1e-3
    )


def test_augmented_texts_keep_their_labelled_rows():
    texts = np.array(["a fine film", "a dull film"])
    labels = np.array([1, 0])
    copies = distillation.augment(texts, copies=3, seed=0)
    xs, ys, weights = distillation.transfer_set((texts, labels), np.array(copies))
    assert list(xs[:2]) == list(texts) and list(ys[:2]) == [1, 0]
    assert list(xs[2:]) == copies and not weights[2:].any()


@pytest.mark.parametrize(
    "labelled, unlabelled, match",
    [
        ((np.zeros((2, 3)),), np.zeros((1, 3)), r"`labelled` must be a pair"),
        ((np.zeros((2, 3)), [0]), np.zeros((1, 3)), r"2 rows and 1 labels"),
        ((np.zeros((0, 3)), []), np.zeros((1, 3)), r"at least one"),
        (({"a": np.zeros((2, 3))}, [0, 1]), np.zeros((1, 3)), r"structure"),
        (
            ({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))}, [0, 1]),
            {"a": np.zeros((1, 3)), "b": np.zeros((1, 3))},
            r"same number of rows",
        ),
    ],
)
def test_bad_inputs_are_named(labelled, unlabelled, match):
    with pytest.raises(ValueError, match=match):
        distillation.transfer_set(labelled, unlabelled)


def test_a_cached_augmented_run_equals_an_uncached_one():
    """Augmented rows through `transfer_set`, teacher cached or run per step."""
    import tensorflow as tf

    words = [f"w{i}" for i in range(40)]
    texts = [" ".join(words[i : i + 5]) for i in range(0, 40, 5)]
    vocabulary = tf_mp.data.word_vocabulary(texts)
    preprocessor = tf_mp.data.preprocessor(tiny_bert.SEQ, vocabulary=vocabulary)
    labels = np.arange(len(texts)) % 2
    copies = distillation.augment(texts, copies=3, seed=0)
    preprocessor.tokenizer.special_tokens_in_strings = True
    x, extra = (tf_mp.data.encode(preprocessor, t) for t in (texts, copies))
    assert (extra["token_ids"] == preprocessor.tokenizer.mask_token_id).any()
    data = tf.data.Dataset.from_tensor_slices(
        distillation.transfer_set((x, labels), extra)
    )
    teacher = tiny_bert.classifier(seed=0, vocab=len(vocabulary))

    def trained(cached):
        student = tiny_bert.classifier(num_layers=1, seed=1, vocab=len(vocabulary))
        distiller = tiny_bert.compile_distiller(
            tf_mp.Distiller(teacher, student, hidden_weight=1.0)
        )
        train = data
        if cached:
            cache = distillation.TeacherCache.for_distiller(distiller)
            train = cache.attach(data.batch(16))
            assert cache.scored_rows == 32
        return distiller.fit(train.batch(8), epochs=2, verbose=0).history

    uncached, cached = trained(False), trained(True)
    for name, values in uncached.items():
        np.testing.assert_allclose(cached[name], values, rtol=1e-5, atol=1e-6)
