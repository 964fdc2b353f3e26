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

from tf_mp.parallel.dtensor import state

_DRAWS = ("normal", "uniform", "truncated_normal", "randint")
_ORIGINALS = {name: getattr(_keras_tf_random, name) for name in (*_DRAWS, "dropout")}


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


_PATCHES = {name: _draw(name) for name in _DRAWS}
_PATCHES["dropout"] = dropout


def install():
    for name, function in _PATCHES.items():
        setattr(_keras_tf_random, name, function)


def uninstall():
    for name, function in _ORIGINALS.items():
        setattr(_keras_tf_random, name, function)
