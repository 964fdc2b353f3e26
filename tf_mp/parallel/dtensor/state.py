"""The current distribution: one piece of state, with a getter and a setter.

Like `keras.distribution.distribution()` / `set_distribution()`, but with the
three things tf_mp's engine needs to know while Keras code runs:

* `scope`: the `ModelParallel` whose `scope()` is open (innermost), or `None`.
  New Keras variables go on its mesh.
* `step`: the `ModelParallel` whose step (train/test/predict, or an eager call
  on the mesh) is being traced, or `None`. Activations get layouts, random draws
  follow the dropout rule.
* `declared`: the `{path regex: axes}` tables of the tf_mp layers being built,
  innermost last. Their weights take the declared axes unless the layout map
  says otherwise.
* `writes`: the `functional.PendingWrites` of the step being traced, or `None`.
  Mesh variables are written there until the step ends.

The state is process-wide (not per thread), as the patches it drives are.
Context managers change one field and restore it on exit.
"""

import contextlib
import dataclasses


@dataclasses.dataclass(frozen=True)
class Current:
    scope: object = None
    step: object = None
    declared: tuple = ()
    writes: object = None


_current = Current()


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


def scope_distribution():
    """The distribution whose scope is open (innermost), else `None`."""
    return _current.scope


def step_distribution():
    """The distribution whose step is being traced, else `None`."""
    return _current.step


def tracing_distribution():
    """The distribution whose step (or, else, whose scope) is open, or `None`."""
    return _current.step if _current.step is not None else _current.scope
