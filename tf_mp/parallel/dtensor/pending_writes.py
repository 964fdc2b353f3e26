"""Pending writes: a step reads variables as it goes and writes them at its end.

Why. DTensor's all-reduce combining pass (`DTensorAllReduceCombineOptimization`)
merges independent all-reduces, such as the one per gradient on a batch-split
mesh, into one. It moves each group's all-reduces to the position of the last
one, then re-sorts the block by data dependencies only
(`mlir::sortTopologically`): ops that use a moved all-reduce go to the end of
the block, and variable reads that followed them in the program stay where
they were. Keras's optimizers write Adam's `m` and `v` and then read them again,
so the reads saw the old values (the "Adam trap"; tf_mp had to switch the pass
off, at one all-reduce per gradient).

In a functional step nothing is written before the end. Writes to mesh
variables go to `PendingWrites`; later reads in the step return the pending
value; the step ends by writing each changed variable once. A read of a variable
not yet written has no operands, so the re-sort never moves it, and nothing
reads a variable after the final writes. Keras's `ops.cond` (the optimizer's
loss scaling, gradient accumulation, EMA) runs both branches on the pending
values and selects with the predicate. A write inside another nested graph
(`tf.cond`, `tf.while_loop`) cannot be deferred, and is an error.
"""

import functools

import tensorflow as tf
from keras.src import tree

from tf_mp.parallel import state
from tf_mp.parallel.dtensor.loop_names import unique_loop_name


class PendingWrites:
    """The values written to mesh variables in the step being traced."""

    def __init__(self, values=()):
        """`values`: `(variable, value)` pairs that reads see as already written
        (the state of a `loop_steps` iteration)."""
        self.graph = tf.compat.v1.get_default_graph()
        # id(variable) -> (variable, value), in write order.
        self._values = {id(v): (v, value) for v, value in values}

    def variables(self):
        """The variables with a pending value."""
        return [variable for variable, _ in self._values.values()]

    def value(self, variable):
        """The pending value of `variable`, else `None`."""
        entry = self._values.get(id(variable))
        return None if entry is None else entry[1]

    def write(self, variable, value):
        if tf.compat.v1.get_default_graph() is not self.graph:
            raise ValueError(
                f"The mesh variable '{variable.name}' is written inside a nested "
                "graph (`tf.cond`, `tf.while_loop` or a nested `tf.function`) of a "
                "step on a mesh. tf_mp steps write variables once, at the end of "
                "the step, so that DTensor can group all-reduces safely. Use "
                "`keras.ops.cond` (it runs both branches and selects), or compute "
                "the new value with `tf.where` and assign it outside the branch."
            )
        value = tf.convert_to_tensor(value, dtype=variable.dtype)
        variable.shape.assert_is_compatible_with(value.shape)
        self._values[id(variable)] = (variable, value)
        return value

    def cond(self, pred, true_fn, false_fn):
        """Keras's `cond`, with both branches run and their writes selected."""
        static = tf.get_static_value(pred)
        if static is not None:
            return true_fn() if static else false_fn()
        before = dict(self._values)
        true_out = true_fn()
        after_true, self._values = self._values, dict(before)
        false_out = false_fn()
        after_false = self._values
        self._values = dict(before)
        for key in list(after_true) + [k for k in after_false if k not in after_true]:
            if after_true.get(key) is after_false.get(key):
                continue  # Pending before the `cond`, untouched by both branches.
            variable = (after_true.get(key) or after_false.get(key))[0]
            # A branch that left the variable alone keeps its value before the
            # `cond` (pending, or read from the variable).
            true_value = after_true[key][1] if key in after_true else None
            false_value = after_false[key][1] if key in after_false else None
            if true_value is None:
                true_value = variable.read_value()
            if false_value is None:
                false_value = variable.read_value()
            self._values[key] = (variable, _select(pred, true_value, false_value))
        if true_out is None and false_out is None:
            return None
        return tree.map_structure(lambda a, b: _select(pred, a, b), true_out, false_out)

    def flush(self):
        """Writes every pending value to its variable (at the end of a step)."""
        for variable, value in self._values.values():
            variable.write_now(value)
        self._values = {}


def _select(pred, true_value, false_value):
    """`tf.where` of a scalar predicate. DTensor's `SelectV2` crashes the process
    (segmentation fault, TF 2.21) when a scalar predicate broadcasts against
    tensors, so the predicate is broadcast first."""
    true_value = tf.convert_to_tensor(true_value)
    if true_value.shape.rank:
        pred = tf.broadcast_to(pred, tf.shape(true_value))
    return tf.where(pred, true_value, false_value)


class NotCarried(Exception):
    """A step in `loop_steps` wrote a variable that is not part of the loop's
    state (its caller runs the steps unrolled instead)."""


def loop_steps(step, batch_at, steps, variables):
    """`step(batch_at(i))` for `i < steps`, inside a function that defers writes:
    the first `steps - 1` in a `tf.while_loop` whose state is the values of
    `variables`, the last one after it (its outputs are returned).

    Unrolled, `steps` copies of the step cost DTensor a compile time that grows
    faster than their number (a tiny BERT on a 2x2 mesh: 13 s for 1 step, 202 s
    for 8); here the step is traced twice whatever `steps` is. Each iteration
    reads the values the previous one wrote, as the unrolled steps do, and the
    variables are written once, at the end of the enclosing step. Raises
    `NotCarried` while tracing if the step writes a mesh variable not in
    `variables`.
    """
    writes = pending_writes()
    carried = {id(v) for v in variables}
    written = set()

    def body(i, *values):
        inner = PendingWrites(zip(variables, values))
        with state.changed(writes=inner):
            step(batch_at(i))
        for variable in inner.variables():
            if id(variable) not in carried:
                raise NotCarried(variable.name)
        new_values = tuple(inner.value(v) for v in variables)
        for variable, old, new in zip(variables, values, new_values):
            if new is not old:
                written.add(id(variable))
        return (i + 1, *new_values)

    initial = tuple(v.read_value() for v in variables)
    final = tf.while_loop(
        lambda i, *_: i < steps - 1,
        body,
        (tf.constant(0), *initial),
        name=unique_loop_name("tf_mp_steps"),
    )
    for variable, value in zip(variables, final[1:]):
        if id(variable) in written:
            writes.write(variable, value)
    return step(batch_at(steps - 1))


def pending_writes():
    """The `PendingWrites` of the functional step being traced, else `None`."""
    writes = state.get().writes
    if writes is None or tf.executing_eagerly():
        return None
    return writes


def defer_writes(function):
    """`function` with the mesh-variable writes it makes while traced deferred to
    its end. Inside a function that already defers (a tf_mp step), or run
    eagerly, it is `function` itself."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        writes = state.get().writes
        if tf.executing_eagerly() or (
            writes is not None and writes.graph is tf.compat.v1.get_default_graph()
        ):
            return function(*args, **kwargs)
        writes = PendingWrites()
        with state.changed(writes=writes):
            outputs = function(*args, **kwargs)
        writes.flush()
        return outputs

    return run
