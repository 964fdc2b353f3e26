"""tf_mp's state: what is current (`Current`, changed by scopes) and what holds
for the rest of the process (`Process`, set by an explicit call). Every
module-level value that decides what tf_mp does lives here.

`Current`, with a getter and a setter like `keras.distribution.distribution()` /
`set_distribution()`, holds what tf_mp's engines need to know while Keras code
runs:

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
* `tpu_cores`: the cores per replica the TPU engine annotates for, forced by
  `tpu.logical_device_annotations` (inspecting the annotated graph without a
  TPU), or `None` (the running `TPUStrategy` says).

It is process-wide (not per thread), as the patches it drives are. Context
managers change one field and restore it on exit.

`Process` (`process()`) holds what one call sets for the rest of the process
(or until its undoing call): the cluster `tf_mp.initialize` joined, whether the
patches are installed, Keras's distribution as a fallback scope. With
`tf_mp.enable_keras_distribution()`, a `keras.distribution` set with
`set_distribution` or `Distribution.scope()` counts as an open scope where no
tf_mp scope is (`scope_distribution`), through `Process.keras_fallback`.
`OFF_MESH` in `scope` (what `off_mesh()` sets) suspends both.
"""

import contextlib
import dataclasses
import weakref


@dataclasses.dataclass(frozen=True)
class Current:
    scope: object = None
    step: object = None
    declared: tuple = ()
    writes: object = None
    deferred: object = None
    local_rows: object = None
    tpu_cores: int = None


@dataclasses.dataclass
class Process:
    """What an explicit call sets for the rest of the process. Scopes never
    change it.

    * `cluster`: `(job_addresses, process_id, device_type)` once
      `tf_mp.initialize` joined a cluster (`processes.start`), else `None`.
    * `exchange_mesh`: one CPU per process, for host values
      (`processes.from_process_0`), made at its first use.
    * `failed`: this process leaves after an error and does not wait for the
      others at exit (`processes.leaving_after_an_error`).
    * `patched`: the patches of `patches.PATCHES` are installed (by the first
      `ModelParallel.scope()` or `enable_keras_distribution()`; never removed).
    * `keras_fallback`: while `enable_keras_distribution()` is in effect, a
      function giving the distribution Keras's current one stands for (or
      `None`); else `None`.
    * `loops`: loops named so far (`loop_names.unique_loop_name`).
    * `keras_translations`: `{keras Distribution: (its signature, the
      ModelParallel made of it)}`, weakly keyed: a Keras distribution is
      translated again only when its layout map or batch axis changed.
    * `keras_meshes`: `{keras DeviceMesh: tf_mp Mesh}`, weakly keyed: one
      mesh per Keras mesh.
    """

    cluster: tuple = None
    exchange_mesh: object = None
    failed: bool = False
    patched: bool = False
    keras_fallback: object = None
    loops: int = 0
    keras_translations: weakref.WeakKeyDictionary = dataclasses.field(
        default_factory=weakref.WeakKeyDictionary
    )
    keras_meshes: weakref.WeakKeyDictionary = dataclasses.field(
        default_factory=weakref.WeakKeyDictionary
    )


_current = Current()
_process = Process()
# A `scope` value meaning "no distribution, not even Keras's".
OFF_MESH = object()


def process():
    """The `Process` record (its fields are set by the calls it names)."""
    return _process


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


def scope_distribution():
    """The distribution whose scope is open (innermost), else the one standing
    for Keras's current distribution (when enabled), else `None`."""
    scope = _current.scope
    if scope is OFF_MESH:
        return None
    if scope is None and _process.keras_fallback is not None:
        return _process.keras_fallback()
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
