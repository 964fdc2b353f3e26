"""Distillation terms beyond logits: hidden states and attention distributions.

Each term uses Keras loss objects, so under a `tf.distribute` strategy it is
scaled per replica exactly as the compiled loss is. Soft-target logits
distillation is `keras.distillation.LogitsDistillation`, reused as is.
"""

import keras

_MSE = keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")
_KL = keras.losses.KLDivergence(reduction="mean_with_sample_weight")


def hidden_state_loss(teacher_hidden, student_hidden, padding_mask=None):
    """Mean squared error between hidden states, averaged over the tokens that
    `padding_mask` (batch, seq) keeps: mean over tokens of mean over features."""
    weights = _token_weights(padding_mask, student_hidden)
    return _MSE(_float(teacher_hidden), _float(student_hidden), sample_weight=weights)


def attention_loss(teacher_scores, student_scores, padding_mask=None):
    """KL(teacher || student) between attention distributions (batch, heads,
    query, key), summed over keys, averaged over heads and the queries that
    `padding_mask` keeps (MiniLM's attention transfer). With different head
    counts, the head-averaged distributions are compared."""
    teacher_scores, student_scores = _float(teacher_scores), _float(student_scores)
    if teacher_scores.shape[1] != student_scores.shape[1]:
        teacher_scores = keras.ops.mean(teacher_scores, axis=1, keepdims=True)
        student_scores = keras.ops.mean(student_scores, axis=1, keepdims=True)
    weights = None
    if padding_mask is not None:
        # (batch, 1, query) -> one weight per (batch, head, query) distribution.
        weights = keras.ops.expand_dims(_float(padding_mask), 1)
        weights = keras.ops.broadcast_to(weights, keras.ops.shape(teacher_scores)[:3])
    return _KL(teacher_scores, student_scores, sample_weight=weights)


def _token_weights(padding_mask, hidden):
    if padding_mask is None:
        return None
    return keras.ops.broadcast_to(_float(padding_mask), keras.ops.shape(hidden)[:2])


def _float(x):
    return keras.ops.cast(x, "float32")
