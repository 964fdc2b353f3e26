"""The data side of a student search: datasets, and one teacher pass shared by
every trial."""

import os

import tensorflow as tf

from tf_mp.distillation.teacher_cache import TeacherCache


def is_chief():
    """Keras Tuner's rule: a tuner id containing "chief" serves the oracle."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


def prepare(hypermodel, train, validation, batch_size, teacher_cache):
    """`(train, validation, example, cache)`: datasets of batches, a batch of
    inputs for latency, and the `TeacherCache` that scored both (or `None`:
    without `teacher_cache`, and on a chief, which trains nothing)."""
    train = as_dataset("train", train, batch_size)
    validation = as_dataset("validation", validation, batch_size)
    example = next(iter(train))[0]
    cache = None
    if teacher_cache and not is_chief():
        hidden, attention = hypermodel.teacher_blocks_needed
        cache = TeacherCache(hypermodel.teacher, hidden, attention)
        train, validation = _with_teacher_outputs(cache, train, validation)
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


def _with_teacher_outputs(cache, train, validation):
    """Both datasets with the teacher's outputs, scored in one pass (one trace
    of the teacher, one partial batch) when their elements match."""
    sizes = (_batch_size(train), _batch_size(validation))
    try:
        both = train.concatenate(validation)
    except (TypeError, ValueError):  # E.g. sample weights in one only.
        return tuple(
            cache.attach(d).batch(b) for d, b in zip((train, validation), sizes)
        )
    count = sum(int(tf.shape(batch[1])[0]) for batch in train)
    scored = cache.attach(both)
    return scored.take(count).batch(sizes[0]), scored.skip(count).batch(sizes[1])


def _batch_size(data):
    return int(tf.shape(next(iter(data))[1])[0])
