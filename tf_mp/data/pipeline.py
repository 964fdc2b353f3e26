"""Tokenisation with keras-hub preprocessors and `tf.data` input pipelines."""

import collections
import re

import keras
import keras_hub
import numpy as np
import tensorflow as tf

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_vocabulary(texts, size=2000):
    """A BERT vocabulary of the `size` most frequent lower-cased words and
    punctuation marks of `texts` (special tokens first), for random-init models
    trained from scratch."""
    counts = collections.Counter(
        token for text in texts for token in re.findall(r"\w+|[^\w\s]", text.lower())
    )
    words = [w for w, _ in counts.most_common(max(0, size - len(SPECIAL_TOKENS)))]
    return SPECIAL_TOKENS + sorted(words)


def preprocessor(sequence_length, preset=None, vocabulary=None):
    """A keras-hub `BertTextClassifierPreprocessor` from a preset (name or
    directory) or from a vocabulary list."""
    if (preset is None) == (vocabulary is None):
        raise ValueError("Give exactly one of `preset` and `vocabulary`.")
    if vocabulary is not None:
        tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary)
        return keras_hub.models.BertTextClassifierPreprocessor(
            tokenizer, sequence_length=sequence_length
        )
    return keras_hub.models.TextClassifierPreprocessor.from_preset(
        preset, sequence_length=sequence_length
    )


def encode(preprocessor, texts, batch_size=256, verbose=0):
    """Token ids, segment ids and padding masks of `texts`, as numpy arrays.

    `verbose`: 0 silent, 1 a progress bar, 2 one line at the end (Keras's
    `Progbar`), counting texts.
    """
    parts = []
    progress = keras.utils.Progbar(len(texts), verbose=verbose, unit_name="text")
    for start in range(0, len(texts), batch_size):
        x = preprocessor(tf.constant(texts[start : start + batch_size]))
        parts.append({k: np.asarray(v) for k, v in x.items()})
        progress.add(len(texts[start : start + batch_size]))
    if not parts:
        raise ValueError("`texts` is empty: nothing to encode.")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def to_dataset(x, y, batch_size, shuffle_seed=None, drop_remainder=False):
    """A cached, prefetched `tf.data.Dataset` of `(x, y)` batches (shuffled
    each epoch when `shuffle_seed` is given)."""
    data = tf.data.Dataset.from_tensor_slices((x, np.asarray(y))).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )
