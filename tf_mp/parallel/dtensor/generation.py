"""Generation on a mesh: keras-hub's `generate` with the key/value cache sharded.

keras-hub's causal LMs generate with a compiled `generate_step`: one forward
pass fills a key/value cache, then a sampler loops (`ops.while_loop`) over
`call_with_cache`, writing one token's keys and values into the cache and one
token into the prompt with `ops.slice_update`. On TensorFlow that op is
`XlaDynamicUpdateSlice`, for which DTensor has no layout rule ("does not
implement layout propagation"), so no family could generate on a mesh.

Inside a tf_mp step, `slice_update` is written with ops DTensor lays out
(a position mask and a select, below): the update keeps the layout of what it
writes into. The key/value cache is made from the attention's own key and value
projections, whose heads are split over the model axis, so each device holds
and updates the cache of its own heads (1/k of it) and the batch rows of its
batch shard: no gather per token. One rule in the engine covers every family
and every sampler.

A model on a mesh gets its own `make_generate_function`: each batch of prompts
is split along the batch axis (a batch that does not divide is padded by
repeating its last row, and the outputs trimmed), and `generate_step` runs in a
`tf.function` inside the step context, like `predict`. XLA's `jit_compile` does
not apply on a mesh (DTensor compiles the function itself).
"""

import contextlib
import functools

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import core as _keras_tf_core
from keras.src.backend.tensorflow import math as _keras_tf_math

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import collectives
from tf_mp.parallel.dtensor import variables
from tf_mp.parallel.dtensor.batches import distribute_batch
from tf_mp.parallel.dtensor.loop_names import call_replacing_stale_functions
from tf_mp.parallel.dtensor.loop_names import unique_loop_name
from tf_mp.parallel.dtensor.transfer import to_host

_ORIGINAL_SLICE_UPDATE = _keras_tf_core.slice_update
_ORIGINAL_TOP_K = _keras_tf_math.top_k
_ORIGINAL_WHILE_LOOP = _keras_tf_core.while_loop
_ORIGINAL_GETITEM = tf.Tensor.__getitem__


def slice_update(inputs, start_indices, updates):
    """Keras's `slice_update` (XLA's `DynamicUpdateSlice`: start indices clamped
    so that `updates` fits) with ops DTensor can lay out, inside a tf_mp step.

    For each dimension `updates` does not span, the update is spread over the
    whole dimension (a broadcast when it has one row there, a gather
    otherwise) and a mask marks the rows it covers; a select then keeps
    `inputs` outside the mask. The result takes the layout of `inputs` and
    `updates` (DTensor merges them): a cache sharded over heads stays so.
    Costs one pass over `inputs` instead of one over `updates`.
    """
    if state.step_distribution() is None:
        return _ORIGINAL_SLICE_UPDATE(inputs, start_indices, updates)
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    rank = inputs.shape.rank
    value, mask = updates, None
    for dim in range(rank):
        size, width = inputs.shape[dim], updates.shape[dim]
        if size is not None and size == width:
            continue  # The update spans this dimension (XLA clamps its start to 0).
        size, width = tf.shape(inputs)[dim], tf.shape(updates)[dim]
        start = tf.clip_by_value(tf.cast(start_indices[dim], "int32"), 0, size - width)
        positions = tf.range(size)
        if updates.shape[dim] == 1:
            shape = tf.shape(value)
            value = tf.broadcast_to(
                value, tf.concat([shape[:dim], [size], shape[dim + 1 :]], 0)
            )
        else:
            source = tf.clip_by_value(positions - start, 0, width - 1)
            value = tf.gather(value, source, axis=dim)
        inside = (positions >= start) & (positions < start + width)
        inside = tf.reshape(inside, [-1 if d == dim else 1 for d in range(rank)])
        mask = inside if mask is None else mask & inside
    axes = _feature_axes(inputs)
    if mask is not None:
        # Through an identity: DTensor crashes (segmentation fault, TF 2.21)
        # relayouting a `while` loop's own loop variable, as a prompt is.
        inputs = collectives.relayout(tf.identity(inputs), axes)
        value = tf.where(tf.broadcast_to(mask, tf.shape(inputs)), value, inputs)
    return collectives.relayout(value, axes)


def _feature_axes(inputs):
    """The trailing axes of a tensor a generation step writes or carries.

    keras-hub's key/value caches end in `(..., heads, head_dim)`: per layer
    `(batch, seq, heads, head_dim)`, stacked `(batch, layers, 2, seq, heads,
    head_dim)`. Their heads go on the mesh's model axis (the one non-batch
    axis larger than 1, where it divides them), as the attention that fills
    them has its heads; everything else (prompts, hidden states, indices)
    stays whole past the batch dimension.

    Pinned, not left to DTensor's propagation: left to it, Llama's stacked
    cache was carried through the sampler's loop split over `head_dim`, and
    gathered and split again for every token; a cache fed by a rotary embedding
    (Gemma packs its halves) came out replicated, and attention's transpose into
    the heads layout failed to expand.
    """
    rank = inputs.shape.rank
    if rank is None or rank < 4 or not inputs.dtype.is_floating:
        return ()
    distribution = state.step_distribution()
    shape = distribution.mesh.shape
    axes = [a for a, n in shape.items() if a != distribution.batch_axis and n > 1]
    heads = inputs.shape[-2]
    if len(axes) != 1 or heads is None or heads % shape[axes[0]]:
        return ()
    return (axes[0], None)


def _pinned(value):
    """`value` (a loop variable) laid out by `_feature_axes`, through an identity
    (DTensor crashes relayouting a loop variable itself)."""
    if not isinstance(value, tf.Tensor) or not value.shape.rank:
        return value
    return collectives.relayout(tf.identity(value), _feature_axes(value))


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """Keras's `while_loop`, with every loop variable pinned by `_feature_axes`
    on the way in and at the end of each iteration, so that the key/value
    cache a sampler carries keeps one layout (heads split) from token to token.
    Installed only while a generation step is traced."""

    def pinned_body(*args):
        return tree.map_structure(_pinned, body(*args))

    is_tuple = isinstance(loop_vars, (tuple, list))
    loop_vars = tuple(loop_vars) if is_tuple else (loop_vars,)

    def body_of_tuple(*args):
        outputs = pinned_body(*args)
        return tuple(outputs) if is_tuple else (outputs,)

    # Keras's `while_loop`, with a unique name (`unique_loop_name`).
    outputs = tf.while_loop(
        cond,
        body_of_tuple,
        tree.map_structure(_pinned, loop_vars),
        maximum_iterations=maximum_iterations,
        name=unique_loop_name("tf_mp_generate"),
    )
    return outputs if is_tuple else outputs[0]


def _explicit_index(tensor, index):
    """`index` with an `...` or missing trailing dimensions written out as
    `:`: `cache[:, i, ...]` -> `cache[:, i, :, :, :, :]` for a rank-6 cache.

    DTensor's `StridedSlice` drops the wrong dimension's layout when an index
    both removes a dimension and leaves trailing ones implicit: slicing a cache
    split over heads gave a result "split" over `head_dim`, which DTensor made
    true by gathering the cache and splitting it again (correct values, a
    gather per layer per token). Written out, the slice stays local.
    """
    items = index if isinstance(index, tuple) else (index,)
    rank = tensor.shape.rank
    ellipses = sum(item is Ellipsis for item in items)
    if rank is None or ellipses > 1 or any(item is None for item in items):
        return index
    missing = rank - (len(items) - ellipses)
    if missing < 0 or (missing == 0 and not ellipses):
        return index
    fill = (slice(None),) * missing
    if not ellipses:
        return items + fill
    at = next(i for i, item in enumerate(items) if item is Ellipsis)
    return items[:at] + fill + items[at + 1 :]


def _getitem(tensor, index):
    return _ORIGINAL_GETITEM(tensor, _explicit_index(tensor, index))


@contextlib.contextmanager
def _generation_trace():
    """While a generation step is traced: loops pinned (`while_loop`) and
    indices written out (`_explicit_index`)."""
    _keras_tf_core.while_loop = while_loop
    tf.Tensor.__getitem__ = _getitem
    try:
        yield
    finally:
        _keras_tf_core.while_loop = _ORIGINAL_WHILE_LOOP
        tf.Tensor.__getitem__ = _ORIGINAL_GETITEM


def top_k(x, k, sorted=True):  # noqa: A002 (Keras's argument name)
    """Keras's `top_k`, inside a tf_mp step with the input's last dimension
    whole on every device (DTensor's `TopKV2` requires it): only dimension 0
    stays split, along the batch axis. The samplers call it on logits whose
    vocabulary DTensor may have left split."""
    if state.step_distribution() is not None:
        x = collectives.relayout(tf.convert_to_tensor(x), ())
    return _ORIGINAL_TOP_K(x, k, sorted=sorted)


def attach_generation(model, distribution):
    """Gives a keras-hub generative task on a mesh (a `CausalLM` or
    `Seq2SeqLM`: anything with `make_generate_function` and `generate_step`)
    a `make_generate_function` that runs on the mesh."""
    if not (
        hasattr(type(model), "make_generate_function")
        and hasattr(type(model), "generate_step")
    ):
        return
    maker = functools.partial(_make_generate_function, model, distribution)
    object.__setattr__(model, "make_generate_function", maker)


def _make_generate_function(model, distribution):
    if model.generate_function is not None:
        return model.generate_function

    # Traced once per prompt shape, as keras-hub's own compiled function is:
    # DTensor needs static shapes (a batch dimension relaxed to `None` by
    # `reduce_retracing` fails its `StridedSlice` layout rule).
    step = tf.function(tf.autograph.experimental.do_not_convert(model.generate_step))

    def generate_function(inputs, stop_token_ids=None):
        _adopt_sampler_state(model, distribution)
        placed, size = distribute_batch(inputs, distribution, pad=True)
        with state.step_context(distribution), _generation_trace():
            outputs = call_replacing_stale_functions(
                step, placed, stop_token_ids=stop_token_ids
            )
        return tree.map_structure(functools.partial(_on_host, size=size), outputs)

    model.generate_function = generate_function
    return generate_function


def _on_host(value, size):
    """An output of the step on the host, without the padding rows."""
    if value is None:  # Gemma 3's `images` when it has none.
        return None
    value = to_host(value)
    return value[:size] if value.shape.rank else value


def _adopt_sampler_state(model, distribution):
    """The sampler's seed state on the mesh (a sampler set by a `compile`
    outside the scope made it a host variable)."""
    sampler = getattr(model, "sampler", None)
    for variable in getattr(sampler, "variables", ()):
        variables.adopt_variable(variable, distribution)
