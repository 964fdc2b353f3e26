"""The current distribution: one piece of state, with a getter and a setter.

Like `keras.distribution.distribution()` / `set_distribution()`, but with the
things tf_mp's engine needs to know while Keras code runs:

* `scope`: the `ModelParallel` whose `scope()` is open (innermost), or `None`.
  New Keras variables go on its mesh.
* `step`: the `ModelParallel` whose step (train/test/predict, or an eager call
  on the mesh) is being traced, or `None`. Activations get layouts, random draws
  follow the dropout rule.
* `declared`: the `{path regex: axes}` tables of the tf_mp layers being built,
  innermost last. Their weights take the declared axes unless the layout map
  says otherwise.
* `writes`: the `pending_writes.PendingWrites` of the step being traced, or `None`.
  Mesh variables are written there until the step ends.
* `local_rows`: `(first_row, rows, global_rows)` while a model's `fit` /
  `evaluate` / `predict` reads a dataset of this process's rows of each global
  batch (`datasets.distribute_dataset`), else `None`.
* `deferred`: the `preset_loading.DeferredVariables` of a preset being loaded
  onto the mesh, or `None`. New variables skip their initializer: the file
  fills them.

The state is process-wide (not per thread), as the patches it drives are.
Context managers change one field and restore it on exit.

Keras's own distribution. With `tf_mp.enable_keras_distribution()`, a
`keras.distribution` set with `set_distribution` or `Distribution.scope()`
counts as an open scope where no tf_mp scope is (`scope_distribution`), through
the function given to `set_keras_fallback`. `OFF_MESH` in `scope` (what
`off_mesh()` sets) suspends both.
"""

import contextlib
import dataclasses


@dataclasses.dataclass(frozen=True)
class Current:
    scope: object = None
    step: object = None
    declared: tuple = ()
    writes: object = None
    deferred: object = None
    local_rows: object = None


_current = Current()
# A `scope` value meaning "no distribution, not even Keras's".
OFF_MESH = object()
# () -> the distribution Keras's current one stands for, else None.
_keras_fallback = None


def get():
    """The current `Current`."""
    return _current


def set(current):  # noqa: A001 (Keras's `set_distribution` counterpart)
    """Replaces the current state (a `Current`)."""
    global _current
    if not isinstance(current, Current):
        raise TypeError(f"Expected a `Current`. Received: {current!r}")
    _current = current


@contextlib.contextmanager
def changed(**fields):
    """While open, the given fields of the state are replaced."""
    previous = {name: getattr(_current, name) for name in fields}
    set(dataclasses.replace(_current, **fields))
    try:
        yield
    finally:
        set(dataclasses.replace(_current, **previous))


def step_context(distribution):
    """While open, a step of `distribution` is traced (and its scope is open)."""
    return changed(scope=distribution, step=distribution)


def off_mesh():
    """Suspends every open scope: variables created inside are plain Keras ones."""
    return changed(scope=OFF_MESH)


def declare_axes(table):
    """Weights created inside get the axes of the first regex of `table`
    matching their path (unless the distribution's layout map says otherwise)."""
    return changed(declared=_current.declared + (table,))


def set_keras_fallback(function):
    """`function()` gives the distribution of Keras's current
    `keras.distribution` (or `None`), consulted when no tf_mp scope is open.
    `None` turns the fallback off."""
    global _keras_fallback
    _keras_fallback = function


def scope_distribution():
    """The distribution whose scope is open (innermost), else the one standing
    for Keras's current distribution (when enabled), else `None`."""
    scope = _current.scope
    if scope is OFF_MESH:
        return None
    if scope is None and _keras_fallback is not None:
        return _keras_fallback()
    return scope


def step_distribution():
    """The distribution whose step is being traced, else `None`."""
    return _current.step


def tracing_distribution():
    """The distribution whose step (or, else, whose tf_mp scope) is open, or
    `None`. Keras's global distribution does not count: a function traced
    while it is set (a `tf.data` map with Keras random layers, say) is not a
    step on its mesh."""
    if _current.step is not None:
        return _current.step
    return None if _current.scope is OFF_MESH else _current.scope
