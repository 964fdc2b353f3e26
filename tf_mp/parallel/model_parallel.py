"""`ModelParallel`: the DTensor engine's entry point."""

import contextlib

import numpy as np

from tf_mp.parallel import dtensor as _engine
from tf_mp.parallel import keras_compat
from tf_mp.parallel import keras_conversion
from tf_mp.parallel.layout_map import as_layout_map
from tf_mp.parallel.mesh import as_mesh


class ModelParallel:
    """Shards the variables of Keras models over a device mesh with DTensor.

    Every Keras variable created inside `scope()` becomes a DTensor variable laid
    out as `layout_map` says (replicated where it says nothing). Models built in
    the scope train with plain `compile` / `fit` / `evaluate` / `predict`: each
    batch is split along `batch_axis`, and optimizer slots and metric state live
    on the mesh too (slots sharded like their parameter). This is what
    `keras.distribution.ModelParallel` does on JAX; on TensorFlow Keras's version
    leaves the weights unsharded.

    Args:
        mesh: a `tf_mp.Mesh` or `keras.distribution.DeviceMesh`. May be omitted
            when `layout_map` carries one.
        layout_map: a `tf_mp.LayoutMap` or `keras.distribution.LayoutMap`.
            Defaults to `None`: every variable replicated (data parallelism).
        batch_axis: str or None. The mesh axis batches are split over. Defaults
            to `"batch"`; `None` feeds every device the whole batch.

    Example:

    ```python
    mesh = tf_mp.Mesh({"batch": 2, "model": 4})
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=2)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(dataset, epochs=2)
    ```
    """

    def __init__(self, mesh=None, layout_map=None, batch_axis="batch"):
        if mesh is None:
            if layout_map is None:
                raise ValueError("Pass a `mesh`, or a `layout_map` that carries one.")
            mesh = getattr(layout_map, "mesh", None) or layout_map.device_mesh
        self._mesh = as_mesh(mesh)
        self._layout_map = as_layout_map(layout_map, self._mesh)
        if batch_axis is not None and batch_axis not in self._mesh.shape:
            raise ValueError(
                f"`batch_axis` must be one of the mesh axes {self._mesh.axis_names} "
                f"or None. Received: batch_axis={batch_axis!r}"
            )
        self._batch_axis = batch_axis

    @classmethod
    def from_keras(cls, distribution):
        """Converts a `keras.distribution.DataParallel` or `ModelParallel`:
        same mesh, layouts (with Keras's matching rules) and batch axis."""
        mesh = keras_conversion.mesh_from_keras(distribution.device_mesh)
        layout_map = keras_conversion.layout_map_from_keras(distribution, mesh)
        return cls(mesh, layout_map, batch_axis=distribution.batch_dim_name)

    @property
    def mesh(self):
        return self._mesh

    @property
    def layout_map(self):
        return self._layout_map

    @property
    def batch_axis(self):
        return self._batch_axis

    @property
    def num_replicas_in_sync(self):
        """How many ways each batch is split (the batch axis size), as on a
        `tf.distribute` strategy: global batch sizes must be multiples of it."""
        return self._mesh.shape[self._batch_axis] if self._batch_axis else 1

    @contextlib.contextmanager
    def scope(self):
        """Variables and models created inside are placed on the mesh."""
        with _engine.variable_scope(self):
            yield self

    def get_variable_axes(self, path, shape, declared=None):
        """The mesh axis per dimension for a variable at `path` of `shape`.

        The layout map decides; `declared` (the axes a tf_mp layer declares for
        its own weight) applies where the map has no matching key.
        """
        return self._layout_map.axes_for(path, shape, declared)

    def distribute_data(self, data):
        """Shards a (nested) batch along `batch_axis`, for custom training loops.

        The batch size must divide the size of the batch axis.
        """
        return _engine.distribute_batch(data, self, pad=False)[0]

    def distribute_dataset(self, dataset):
        """This process's share of every batch of `dataset`, as Keras's
        `Distribution.distribute_dataset`.

        On a mesh over several processes (`tf_mp.initialize`), pass each
        process the same pipeline of global batches (batched with
        `drop_remainder=True`); each then reads only the rows its devices
        hold, for data too large to read everywhere. Pass the result straight
        to `fit` / `evaluate` / `predict`; `predict` returns the whole global
        batch in every process. In one process it returns `dataset` unchanged.
        """
        return _engine.distribute_dataset(dataset, self)

    def __repr__(self):
        return (
            f"ModelParallel({self._mesh!r}, layout_map with {len(self._layout_map)} "
            f"entries, batch_axis={self._batch_axis!r})"
        )


def gather(value):
    """The global value of a sharded tensor or variable, as a regular tensor."""
    return _engine.to_host(getattr(value, "value", value))


def copy_model_state(source, target):
    """`source`'s weights, and its layers' random-number state (dropout's), into
    `target` (the same architecture), so the copy draws the masks the source
    would."""
    target.set_weights(source.get_weights())
    for theirs, ours in zip(
        keras_compat.seed_states(source), keras_compat.seed_states(target)
    ):
        ours.assign(np.asarray(gather(theirs)))


def lay_out_variable(variable, axes, distribution):
    """Moves a Keras variable onto `distribution`'s mesh with `axes` (one mesh
    axis name or `None` per dimension), keeping its value. Only before an
    optimizer holds slots for it."""
    axes = distribution.layout_map.checked_axes(
        tuple(axes), variable.path, tuple(variable.shape), "a plan"
    )
    layout = _engine.make_layout(distribution.mesh.dtensor_mesh, axes)
    _engine.relayout_variable(variable, layout, distribution)


def distribution_of(model):
    """The `ModelParallel` whose scope `model` was built in, else `None`."""
    return _engine.distribution_of(model)
