"""The data side of a student search: datasets, transfer rows, and one teacher
pass shared by every trial."""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tf_mp.automl.settings import NO_TRANSFER
from tf_mp.distillation.teacher_cache import TeacherCache
from tf_mp.distillation.transfer import labelled_weight

# Rows shuffled at a time in a transfer stream (each stream reshuffles every
# pass): enough to mix, bounded when the cached rows hold hidden states.
SHUFFLE_ROWS = 4096


def is_chief():
    """Keras Tuner's rule: a tuner id containing "chief" serves the oracle."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


class TransferChoices:
    """The training data of each value of the `transfer` hyperparameter.

    `NO_TRANSFER` is `train` as given (batched). Each transfer set `name` is a
    stream mixing `train`'s rows with the set's rows without labels, in
    proportion to their counts, each reshuffled every pass: transfer rows take
    sample weight 0 (label 0, never read) and labelled rows weight
    `(labelled + transfer) / labelled` (times their own weight), so the labels
    loss is a mean over labelled rows as without transfer rows
    (`tf_mp.distillation.transfer_set`'s rule). A transfer epoch is as many
    steps as an epoch of `train`: the choice is what a trial trains on, not for
    how long. Each `fit` gets a fresh pipeline, so every trial reads the same
    stream (seeded by `seed`).
    """

    def __init__(self, train, labelled, sets, batch_size, seed):
        self.train = train
        self._labelled = labelled  # (unbatched rows, count)
        self._sets = sets  # name: (unbatched rows, count)
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = math.ceil(labelled[1] / batch_size)

    @property
    def names(self):
        return [NO_TRANSFER, *self._sets]

    def fit_arguments(self, name):
        """`(x, extra fit kwargs)` for the choice `name`."""
        if name == NO_TRANSFER:
            return self.train, {}
        if name not in self._sets:
            raise ValueError(
                f"`transfer` must be one of {self.names}. Received: transfer={name!r}"
            )
        (labelled, rows), (extra, count) = self._labelled, self._sets[name]
        ratio = labelled_weight(rows, count)
        streams = [
            data.map(lambda *row, w=weight: _weighted(row, w))
            .shuffle(min(n, SHUFFLE_ROWS), seed=self.seed + k)
            .repeat()
            for k, (data, n, weight) in enumerate(
                [(labelled, rows, ratio), (extra, count, 0.0)]
            )
        ]
        mixed = tf.data.Dataset.sample_from_datasets(
            streams,
            weights=[rows / (rows + count), count / (rows + count)],
            seed=self.seed,
        )
        data = mixed.batch(self.batch_size).prefetch(2)
        return data, {"steps_per_epoch": self.steps_per_epoch}


def prepare(hypermodel, train, validation, batch_size, transfer_data, seed=None):
    """`(train, validation, example, cache)`: datasets of batches (`train` a
    `TransferChoices` with `transfer_data.sets`), a batch of inputs for
    latency, and the `TeacherCache` that scored them all (or `None`: without
    `transfer_data.cache`, and on a chief, which trains nothing)."""
    train = as_dataset("train", train, batch_size)
    validation = as_dataset("validation", validation, batch_size)
    example = next(iter(train))[0]
    sets = {
        name: _unlabelled(name, value, train, batch_size)
        for name, value in (transfer_data.sets or {}).items()
    }
    cache = None
    scoring = transfer_data.cache and not is_chief()
    counts = [_count(d) for d in (train, *sets.values())] if sets or scoring else []
    if scoring:
        hidden, attention = hypermodel.teacher_blocks_needed
        cache = TeacherCache(
            hypermodel.teacher,
            hidden,
            attention,
            directory=transfer_data.cache_directory,
        )
        train, validation, sets = _with_teacher_outputs(
            cache, train, validation, sets, counts
        )
    if sets:
        labelled = (train.unbatch(), counts[0])
        sets = {
            name: (data.unbatch(), count)
            for (name, data), count in zip(sets.items(), counts[1:])
        }
        train = TransferChoices(train, labelled, sets, _batch_size(train), seed or 0)
    return train, validation, example, cache


def as_dataset(argument, data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, tuple) and len(data) in (2, 3):
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
    raise TypeError(
        f"`{argument}` must be a `tf.data.Dataset` of `(x, y)` batches or an "
        f"`(x, y)` tuple of arrays. Received: {argument}={type(data).__name__}"
    )


def _unlabelled(name, inputs, train, batch_size):
    """Batches of `(x, 0[, 0])`, shaped as `train`'s: the rows of one transfer
    set (arrays, a dict of arrays, or a dataset of input batches)."""
    if not isinstance(inputs, tf.data.Dataset):
        try:
            inputs = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`transfer_data.sets[{name!r}]` must be inputs shaped as `train`'s "
                f"(arrays, a dict of arrays, or a dataset of input batches). "
                f"{error}"
            ) from None
    spec = train.element_spec
    label = spec[1]
    dtypes = keras.tree.map_structure(lambda s: s.dtype, spec[0])
    given = keras.tree.map_structure(lambda s: s.dtype, inputs.element_spec)
    same_structure = keras.tree.map_structure(lambda _: 0, given) == (
        keras.tree.map_structure(lambda _: 0, dtypes)
    )
    if not same_structure or not all(
        a == b or (a.is_integer and b.is_integer)
        for a, b in zip(keras.tree.flatten(given), keras.tree.flatten(dtypes))
    ):
        raise ValueError(
            f"`transfer_data.sets[{name!r}]` must have the structure and dtypes of "
            f"`train`'s inputs. Received: {inputs.element_spec}, train: {spec[0]}"
        )

    def without_labels(x):
        x = keras.tree.map_structure(tf.cast, x, dtypes)
        rows = tf.shape(keras.tree.flatten(x)[0])[:1]
        y = tf.zeros(tf.concat([rows, label.shape[1:]], 0), label.dtype)
        return (x, y) if len(spec) == 2 else (x, y, tf.zeros(rows, spec[2].dtype))

    data = inputs.map(without_labels)
    if not any(True for _ in data.take(1)):
        raise ValueError(f"`transfer_data.sets[{name!r}]` holds no rows.")
    return data


def _weighted(row, weight):
    """`(x, y, w)`: the row's sample weight times `weight`."""
    x, y, *w = row
    weight = tf.constant(weight, tf.float32)
    return x, y, weight * tf.cast(w[0], tf.float32) if w else weight


def _with_teacher_outputs(cache, train, validation, sets, counts):
    """The datasets with the teacher's outputs, scored in one pass (one trace
    of the teacher, one partial batch) when their elements match (transfer
    sets always match `train`'s). `counts`: the rows of `train` and `sets`."""
    parts = [train, *sets.values()]
    try:
        both = _concatenate([*parts, validation])
    except (TypeError, ValueError):  # E.g. sample weights in `train` only.
        scored = cache.attach(_concatenate(parts))
        scored_validation = cache.attach(validation)
    else:
        scored = cache.attach(both)
        scored_validation = scored.skip(sum(counts))
    pieces, start = [], 0
    for count in counts:
        pieces.append(scored.skip(start).take(count))
        start += count
    size = _batch_size(train)
    batched = [piece.batch(size) for piece in pieces]
    return (
        batched[0],
        scored_validation.batch(_batch_size(validation)),
        dict(zip(sets, batched[1:])),
    )


def _concatenate(datasets):
    joined = datasets[0]
    for data in datasets[1:]:
        joined = joined.concatenate(data)
    return joined


def _count(data):
    return int(sum(int(np.shape(keras.tree.flatten(b[1])[0])[0]) for b in data))


def _batch_size(data):
    return int(tf.shape(next(iter(data))[1])[0])
