"""Keras ops that DTensor cannot lay out, rewritten inside a tf_mp step with ops
it can. Outside a step, Keras's own functions run.

int8 x int8 products. Keras's int8 `Dense` and `EinsumDense` multiply int8
inputs by int8 kernels with `tf.matmul(..., output_type="int32")`, which
TensorFlow emits as `BatchMatMulV3`: DTensor has no layout rule for it ("does
not implement layout propagation"). Inside a step the operands are widened to
int32 and multiplied as int32 (`MatMul` / `BatchMatMulV2` / `Einsum`, which
DTensor lays out): int32 sums of the same int8 products, so the same integers
as one device's int8 kernel.

`one_hot`. DTensor's `OneHot` expansion, asked for an output split on its
class dimension (mixture-of-experts routing, with the experts split over the
model axis), produced local shapes that contradict the layout ("SPMD
expansion resulted in op output inconsistent with the provided layout"). Inside
a step it is a comparison with the class indices, which DTensor lays out like
any element-wise op: the same values (negative indices give zeros, as
`tf.one_hot`).

A sparse gradient divided by a dense tensor. Keras's `divide` of a
`tf.IndexedSlices` (an embedding's gradient) by a dense divisor (RMSprop,
Adagrad, Adadelta, Adafactor: the root of an accumulator) chooses in a
`tf.cond` between the quotient at the gradient's rows and, where the divisor
holds a zero or NaN, a union of rows of another, dynamic length. DTensor cannot
expand that `cond` when the embedding is split ("SPMD expansion resulted in op
output inconsistent with the provided layout"). Inside a step the first branch
runs without the `cond`: the same `tf.IndexedSlices` as one device wherever the
divisor holds no zero or NaN, which these optimizers' divisors (an accumulator
plus epsilon) never hold while training is finite. Where it does, one device
puts NaN in the rows the gradient does not touch; the step puts NaN in the rows
it touches, so the loss turns NaN on the mesh too rather than training on
silently. (Adding the other branch's rows without the `cond`, as a `tf.where`
of dynamic length, left RMSprop's weights up to 0.14 from one device's on
2x2: DTensor is not given dynamic shapes here.)
"""

import tensorflow as tf
from keras.src.backend.tensorflow import nn as _keras_tf_nn
from keras.src.backend.tensorflow import numpy as _keras_tf_numpy

from tf_mp.parallel import state

_ORIGINAL_MATMUL = _keras_tf_numpy.matmul
_ORIGINAL_EINSUM = _keras_tf_numpy.einsum
_ORIGINAL_ONE_HOT = _keras_tf_nn.one_hot
_ORIGINAL_DIVIDE = _keras_tf_numpy.divide


def _int8_operands(operands):
    """The operands widened to int32 where they are all dense int8 tensors in
    a tf_mp step, else `None`."""
    if state.step_distribution() is None:
        return None
    tensors = [tf.convert_to_tensor(x) for x in operands]
    if not all(t.dtype == tf.int8 and t.shape.rank != 1 for t in tensors):
        return None
    return [tf.cast(t, tf.int32) for t in tensors]


def matmul(x1, x2):
    widened = None
    if not isinstance(x1, tf.SparseTensor) and not isinstance(x2, tf.SparseTensor):
        widened = _int8_operands((x1, x2))
    if widened is None:
        return _ORIGINAL_MATMUL(x1, x2)
    return tf.matmul(*widened)


def einsum(subscripts, *operands, **kwargs):
    widened = None if kwargs else _int8_operands(operands)
    if widened is None:
        return _ORIGINAL_EINSUM(subscripts, *operands, **kwargs)
    return tf.einsum(subscripts, *widened)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    if state.step_distribution() is None or sparse or axis != -1:
        return _ORIGINAL_ONE_HOT(x, num_classes, axis=axis, dtype=dtype, sparse=sparse)
    x = tf.convert_to_tensor(x)
    hot = tf.equal(tf.expand_dims(x, -1), tf.range(num_classes, dtype=x.dtype))
    return tf.cast(hot, dtype or "float32")


def divide(x1, x2):
    if (
        state.step_distribution() is None
        or not isinstance(x1, tf.IndexedSlices)
        or isinstance(x2, (tf.IndexedSlices, tf.SparseTensor))
        or tf.TensorShape(getattr(x2, "shape", ())).rank in (None, 0)
    ):
        return _ORIGINAL_DIVIDE(x1, x2)
    x2 = tf.convert_to_tensor(x2)
    values = _ORIGINAL_DIVIDE(x1.values, tf.gather(x2, x1.indices))
    if values.dtype.is_floating:
        # + 0 / 1 where the divisor holds no zero or NaN, else + 0 / 0. (A
        # `tf.where` on `tf.reduce_any` of the same test crashed the process.)
        zero_or_nan = tf.logical_or(tf.equal(x2, 0), tf.math.is_nan(x2))
        fine = 1 - tf.reduce_max(tf.cast(zero_or_nan, values.dtype))
        values = values + tf.zeros_like(fine) / fine
    return tf.IndexedSlices(values, x1.indices, x1.dense_shape)
