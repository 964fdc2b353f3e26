"""Distillation terms beyond logits: hidden states and attention distributions.

Per-token and per-distribution values come from Keras's own loss functions
(`keras.losses.mean_squared_error`, `keras.losses.kl_divergence`). Their masked
mean is divided by the *global* count of kept tokens: under a `tf.distribute`
strategy each replica returns its share of the global mean (the convention
Keras's compiled losses follow), so the summed gradients and the logged values
equal single-device ones even when replicas hold different numbers of padding
tokens. Soft-target logits distillation is `keras.distillation.
LogitsDistillation`, reused.
"""

import keras
import tensorflow as tf


def hidden_state_loss(teacher_hidden, student_hidden, padding_mask=None):
    """Mean squared error between hidden states, averaged over the tokens that
    `padding_mask` (batch, seq) keeps: mean over tokens of mean over features."""
    per_token = keras.losses.mean_squared_error(
        _float(teacher_hidden), _float(student_hidden)
    )
    return _masked_mean(per_token, padding_mask)


def attention_loss(teacher_scores, student_scores, padding_mask=None):
    """KL(teacher || student) between attention distributions (batch, heads,
    query, key), summed over keys, averaged over heads and the queries that
    `padding_mask` keeps (MiniLM's attention transfer). With different head
    counts, the head-averaged distributions are compared."""
    teacher_scores, student_scores = _float(teacher_scores), _float(student_scores)
    if teacher_scores.shape[1] != student_scores.shape[1]:
        teacher_scores = keras.ops.mean(teacher_scores, axis=1, keepdims=True)
        student_scores = keras.ops.mean(student_scores, axis=1, keepdims=True)
    per_query = keras.losses.kl_divergence(teacher_scores, student_scores)
    if padding_mask is not None:
        padding_mask = keras.ops.expand_dims(padding_mask, 1)  # (batch, 1, query)
    return _masked_mean(per_query, padding_mask)


def _masked_mean(values, mask):
    """sum(values * mask) / global sum(mask): this replica's share of the mean."""
    weights = keras.ops.ones_like(values)
    if mask is not None:
        weights = weights * _float(mask)
    total = keras.ops.sum(values * weights)
    count = keras.ops.sum(weights)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total / keras.ops.maximum(count, 1.0)


def _float(x):
    return keras.ops.cast(x, "float32")
