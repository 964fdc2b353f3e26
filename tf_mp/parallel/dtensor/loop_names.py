"""Names of the loops in steps on a mesh, and the eager context they land in.

DTensor turns a `tf.while_loop` of a step back into `<op name>_body` /
`_cond` functions and registers them, by name, in the process's eager
context; a name registered twice with two different bodies stops the step
("Cannot add function 'while32_body' because a different function with the
same name already exists"). Two loops named alike did that (a generation
step's `while` and a stacked `fit` step's `while_32`), so every loop gets a
process-wide unique name (`unique_loop_name`). DTensor also registers a loop
it expands again under its name with a digit appended (`tf_mp_steps_4` as
`tf_mp_steps_41_body` too), hence a letter after the number. Full test runs
still met a clash now and then, in orders a single module's tests do not
reproduce: a call that meets one removes every function DTensor made of that
loop and traces the step afresh (`call_replacing_stale_functions`).
"""

import re

import tensorflow as tf
from tensorflow.python.eager import context

from tf_mp.parallel import state

_CLASH = re.compile(
    r"Cannot add function '([^']+)' because a different function with the "
    r"same name already exists"
)
_MAX_REPLACED = 8
# What DTensor names a loop's functions: `<op name>[digits]_body` / `_cond`.
_DTENSOR_FUNCTION = re.compile(r"(.+_loop)\d*_(?:body|cond)")


def unique_loop_name(prefix):
    """A process-wide unique name for a `tf.while_loop` in a step on a mesh,
    its number closed by a letter: `tf_mp_steps_3_loop` plus a digit can never
    be loop 31's name."""
    process = state.process()
    process.loops += 1
    return f"{prefix}_{process.loops}_loop"


def call_replacing_stale_functions(function, *args, **kwargs):
    """`function(*args, **kwargs)` for a `tf.function` of a step. Where DTensor
    cannot register a loop's function because the eager context holds another
    of its name, every function DTensor made of that loop is removed and the
    step is traced afresh (new loop names; a second try of the same trace
    expands what the first left registered, and fails) and called; the fresh
    trace serves the calls after it too. Any other error is raised as is."""
    current = getattr(function, "tf_mp_fresh", function)
    for _ in range(_MAX_REPLACED):
        try:
            return current(*args, **kwargs)
        except tf.errors.InvalidArgumentError as error:
            clash = _CLASH.search(str(error))
            if clash is None:
                raise
            _remove_functions_of_loop(clash.group(1))
            current = tf.function(
                current.python_function,
                reduce_retracing=current._reduce_retracing,
            )
            function.tf_mp_fresh = current
    return current(*args, **kwargs)


def _remove_functions_of_loop(name):
    """Removes from the eager context every function DTensor made of the loop
    `name` belongs to: the earlier step's, and those the failed call
    registered before it stopped."""
    loop = _DTENSOR_FUNCTION.fullmatch(name)
    stem = re.escape(loop.group(1) if loop else name)
    pattern = re.compile(rf"{stem}\d*_(?:body|cond)")
    ctx = context.context()
    for registered in set(ctx.list_function_names()):
        if registered == name or pattern.fullmatch(registered):
            try:
                ctx.remove_function(registered)
            except tf.errors.InvalidArgumentError:
                pass  # Listed, but not in the context's own library.
