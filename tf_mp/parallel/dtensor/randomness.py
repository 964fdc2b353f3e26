"""Random numbers on a mesh: where dropout meets a layout.

The rule. While a tf_mp step is traced (`fit` / `evaluate` / `predict`, an eager
call of a model on a mesh) or a function is traced inside `ModelParallel.scope()`,
every Keras random draw (`keras.random.dropout`, which the `Dropout` layers and
attention use, and `keras.random.normal` / `uniform` / `truncated_normal` /
`randint`) is made at the tensor's *global* shape, from the same seed, on every
device, and DTensor then slices it to whatever layout the activation has (a local
slice, no communication). Hence, Megatron's model-parallel RNG discipline holds
by construction:

* an activation replicated over the model axis gets the same mask on every device
  of that axis (replicated weights stay bitwise identical);
* an activation sharded over an axis gets independent masks per shard (disjoint
  pieces of one draw);
* different batch shards get different masks (different rows of one draw);
* and the masks are those of single-device training with the same seed: a layout
  cannot change them, so sharded training with dropout equals unsharded training.

The price is redundant RNG work: each device draws the whole mask, not its shard
(`benchmarks/bench_dropout.py` measures it).

Why not DTensor's own expansion. DTensor expands a *sharded* stateless random op
into a local draw whose key is XOR-ed with a device id built from the mesh
dimensions the layout shards. It caches that id per set of mesh dimensions, but
looks the cache up by prefix (`GetDeviceSeed` in
`tensorflow/dtensor/mlir/expansions/random_op_spmd_expander.cc` compares with
`std::equal` over the shorter list). Once one draw in a step is sharded over
`(batch, model)` (a dropout after a sharded embedding, say), a later draw sharded
over `batch` alone reuses the `(batch, model)` id: the devices along `model` draw
different masks for an activation whose layout says it is identical on all of
them. Nothing fails; replicated weights drift apart, and `get_weights` / `save`
(which read one device) silently miss the model that was trained. Measured on a
2-block BERT on a (1, 2) mesh, dropout 0.1: 4.4e-4 on logits of 5e-3.
"""

import numbers

import tensorflow as tf
from keras.src.backend.tensorflow import random as _keras_tf_random
from tensorflow.experimental import dtensor

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import collectives

_DRAWS = ("normal", "uniform", "truncated_normal", "randint")
_ORIGINALS = {
    name: getattr(_keras_tf_random, name)
    for name in (*_DRAWS, "dropout", "categorical")
}


def _tracing_mesh():
    """The mesh of the tf_mp step or scope being traced, else `None`."""
    if tf.executing_eagerly():
        return None
    active = state.tracing_distribution()
    return active.mesh.dtensor_mesh if active is not None else None


def _replicated(value, mesh):
    """`value` drawn whole on every device: DTensor keeps random ops that feed a
    replicated layout unexpanded (same key, same global shape everywhere)."""
    return dtensor.relayout(value, dtensor.Layout.replicated(mesh, value.shape.rank))


def _draw(name):
    original = _ORIGINALS[name]

    def draw(*args, **kwargs):
        mesh = _tracing_mesh()
        value = original(*args, **kwargs)
        return value if mesh is None else _replicated(value, mesh)

    draw.__name__ = name
    return draw


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Keras's TensorFlow `dropout` with the mask drawn at the global shape.

    The same arithmetic as `tf.nn.experimental.stateless_dropout` (scale, then
    keep where the uniform draw is >= rate), so a mesh reproduces single-device
    masks and values exactly.
    """
    mesh = _tracing_mesh()
    if mesh is None or not isinstance(rate, numbers.Real) or rate in (0.0, 1.0):
        return _ORIGINALS["dropout"](inputs, rate, noise_shape=noise_shape, seed=seed)
    seed = _keras_tf_random._cast_seed(_keras_tf_random.draw_seed(seed))
    noise_shape = _keras_tf_random._get_concrete_noise_shape(inputs, noise_shape)
    inputs = tf.convert_to_tensor(inputs)
    scaled = inputs * tf.convert_to_tensor(1 / (1 - rate), inputs.dtype)
    # (*noise_shape): the same uniform draw on every device.
    uniform = _replicated(
        tf.random.stateless_uniform(noise_shape, seed=seed, dtype=inputs.dtype), mesh
    )
    return tf.where(uniform >= rate, scaled, tf.zeros((), inputs.dtype))


def categorical(logits, num_samples, dtype="int64", seed=None):
    """Keras's TensorFlow `categorical` on a mesh, drawn as TensorFlow's CPU
    kernel draws it.

    DTensor has no layout rule for `StatelessMultinomial`. This is the CPU
    kernel's arithmetic in ops DTensor lays out, at the global shape on every
    device (the rule above): the seed becomes a Philox key and counter as in
    `tf.random.stateless_*`; row `b` reads its uniform doubles from the
    stream at block `b * ceil(num_samples / 4)` (two 32-bit words each); the
    sample is the first class whose cumulative `exp(logit - max)` (in
    float64, non-finite logits left out) exceeds the uniform times the total.

    This equals the kernel wherever the kernel starts each row's stream afresh:
    always for one row, and where its thread pool gives each row its own
    shard (large vocabularies). Where the pool runs several rows in one shard,
    the kernel continues one stream across them, so its draws for a batch
    depend on the machine's thread count; these do not.
    """
    mesh = _tracing_mesh()
    if mesh is None:
        return _ORIGINALS["categorical"](logits, num_samples, dtype=dtype, seed=seed)
    seed = _keras_tf_random._cast_seed(_keras_tf_random.draw_seed(seed))
    # (batch, classes), whole on every device.
    logits = _replicated(tf.convert_to_tensor(logits), mesh)
    batch = tf.shape(logits)[0]
    row_words = 4 * ((num_samples + 3) // 4)
    words = tf.random.stateless_uniform(
        [(batch - 1) * row_words + 2 * num_samples],
        seed=seed,
        minval=None,
        maxval=None,
        dtype=tf.uint32,
        alg="philox",
    )
    positions = tf.range(batch)[:, None] * row_words + tf.range(2 * num_samples)
    # (batch, samples, 2): the two words of each uniform double.
    words = tf.reshape(
        tf.cast(tf.gather(words, positions), "int64"), [batch, num_samples, 2]
    )
    mantissa_high = tf.cast(tf.math.floormod(words[..., 0], 2**20), "float64")
    uniform = (mantissa_high * 2.0**32 + tf.cast(words[..., 1], "float64")) / 2.0**52
    finite = tf.math.is_finite(logits)
    lowest = tf.constant(logits.dtype.min, logits.dtype)
    top = tf.reduce_max(tf.where(finite, logits, lowest), axis=-1, keepdims=True)
    weights = tf.exp(tf.cast(logits, "float64") - tf.cast(top, "float64"))
    # (batch, classes): the unnormalised cumulative distribution.
    cdf = tf.cumsum(tf.where(finite, weights, tf.zeros((), "float64")), axis=-1)
    to_find = uniform * cdf[:, -1:]
    samples = tf.reduce_sum(
        tf.cast(cdf[:, None, :] <= to_find[..., None], "int64"), axis=-1
    )
    # Split along the batch axis again, as the logits came: DTensor's
    # `Squeeze` of a replicated value into a split one fails to expand.
    return collectives.relayout(tf.cast(samples, dtype), ())


# Keras's TensorFlow `random` functions -> their replacements (`patches.py`).
REPLACEMENTS = {name: _draw(name) for name in _DRAWS}
REPLACEMENTS["dropout"] = dropout
REPLACEMENTS["categorical"] = categorical
