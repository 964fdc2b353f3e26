"""Mesh variables: the DTensor value behind a Keras variable on a mesh."""

import re

import tensorflow as tf
from tensorflow.experimental import dtensor
from tensorflow.python.eager import record as _record
from tensorflow.python.framework import ops
from tensorflow.python.ops import resource_variable_ops as _resource_variable_ops

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import pending_writes as writes_lib
from tf_mp.parallel.dtensor.layouts import layout_axes
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.layouts import variable_layout
from tf_mp.parallel.dtensor.transfer import is_on_mesh
from tf_mp.parallel.dtensor.transfer import place
from tf_mp.parallel.dtensor.transfer import to_host


class MeshVariable(dtensor.DVariable):
    """A `DVariable` that accepts host values on assign and gathers on `numpy()`.

    Inside a functional step (`pending_writes.py`) writes are deferred to the end of
    the step and reads return the pending value.

    A weight split over the batch axis (FSDP style, as keras-hub's own
    `get_layout_map`s split kernels) is read whole along that axis inside a
    traced step: each device gathers it before use and the gradient is
    reduce-scattered back, which is what XLA's partitioner does for the same
    layout. DTensor would otherwise meet the batch axis on both sides of a
    contraction and refuse the matmul.
    """

    _gathered_axis = None  # The batch axis, when this variable is split on it.

    def _gathered(self, value):
        if self._gathered_axis is None or tf.executing_eagerly():
            return value
        layout = self.layout
        whole = make_layout(
            layout.mesh,
            tuple(
                None if axis == self._gathered_axis else axis
                for axis in layout_axes(layout)
            ),
        )

        @tf.custom_gradient
        def gather(value):
            def grad(upstream):
                # A gather's gradient (an embedding lookup) stays sparse, as
                # it is for a plain read of the variable.
                if isinstance(upstream, tf.IndexedSlices):
                    return upstream
                # Pinned whole first: DTensor passes a relayout's target back to
                # the op that computed its input, and a matmul cannot produce
                # its output split on the batch axis there.
                return dtensor.relayout(dtensor.relayout(upstream, whole), layout)

            return dtensor.relayout(value, whole), grad

        return gather(value)

    def _to_mesh(self, value):
        if tf.executing_eagerly() and not is_on_mesh(value):
            value = place(tf.cast(value, self.dtype), self.layout)
        elif self._gathered_axis is not None and not tf.executing_eagerly():
            value = dtensor.relayout(value, self.layout)
        return value

    # Whether anything assigned this variable since it was created (a preset
    # loaded onto the mesh fills variables created without a value).
    tf_mp_written = False

    def assign(self, value, use_locking=None, name=None, read_value=True):
        writes = writes_lib.pending_writes()
        if writes is not None:
            return writes.write(self, value)
        self.tf_mp_written = True
        return super().assign(self._to_mesh(value), use_locking, name, read_value)

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        writes = writes_lib.pending_writes()
        if writes is not None:
            return writes.write(self, self.read_value() + delta)
        return super().assign_add(self._to_mesh(delta), use_locking, name, read_value)

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        writes = writes_lib.pending_writes()
        if writes is not None:
            return writes.write(self, self.read_value() - delta)
        return super().assign_sub(self._to_mesh(delta), use_locking, name, read_value)

    def write_now(self, value):
        """Assigns `value` at this point of the program, pending writes or not."""
        return super().assign(self._to_mesh(value), read_value=False)

    def _pending_value(self):
        """The value written earlier in the step being traced, else `None`."""
        writes = writes_lib.pending_writes()
        return None if writes is None else writes.value(self)

    def _read_variable_op(self, no_copy=False):
        value = self._pending_value()
        if value is None:
            return self._gathered(super()._read_variable_op(no_copy=no_copy))
        # Recorded as a read of the variable, so that a gradient tape sees the
        # variable and its gradient flows to it: a later step of the same call
        # (`steps_per_execution`) computes its gradients through these values.
        _resource_variable_ops.variable_accessed(self)
        value = tf.identity(value)
        _record.record_operation(
            "ReadVariableOp",
            [value],
            [self.handle],
            backward_function=lambda grad: [grad],
            forward_function=lambda handle: [handle],
        )
        return self._gathered(value)

    def _reads_whole(self):
        """Whether a sparse read must go through `_read_variable_op`: only for
        a value written earlier in the step. A stored value's sparse read,
        gathered or not, stays a `ResourceGather` DTensor lays out, and its
        gradient stays sparse."""
        return self._pending_value() is not None

    def sparse_read(self, indices, name=None):
        if self._reads_whole():
            return tf.gather(self._read_variable_op(), indices, name=name)
        return super().sparse_read(indices, name=name)

    def gather_nd(self, indices, name=None):
        if self._reads_whole():
            return tf.gather_nd(self._read_variable_op(), indices, name=name)
        return super().gather_nd(indices, name=name)

    # DTensor has no SPMD rule for the ResourceScatter* ops that Keras's
    # optimizers use for `tf.IndexedSlices` updates (plain SGD on an `Embedding`
    # fails with "'tf.ResourceScatterSub' op does not implement layout
    # propagation"). These dense forms compute the same result: duplicate indices
    # accumulate, as in scatter_add / scatter_sub.

    def scatter_add(self, sparse_delta, use_locking=False, name=None):
        return self.assign_add(tf.convert_to_tensor(sparse_delta), use_locking, name)

    def scatter_sub(self, sparse_delta, use_locking=False, name=None):
        return self.assign_sub(tf.convert_to_tensor(sparse_delta), use_locking, name)

    def scatter_update(self, sparse_delta, use_locking=False, name=None):
        rows = tf.cast(sparse_delta.indices, tf.int32)
        hits = tf.math.unsorted_segment_sum(
            tf.ones_like(rows, self.dtype), rows, tf.shape(self)[0]
        )
        touched = tf.minimum(hits, 1)
        touched = tf.reshape(touched, [-1] + [1] * (self.shape.rank - 1))
        new_rows = tf.convert_to_tensor(sparse_delta)
        return self.assign(
            self.read_value() * (1 - touched) + new_rows, use_locking, name
        )

    def numpy(self):
        return to_host(self.read_value()).numpy()


def _scoped_name(name):
    """The name TensorFlow gives a variable made here under `name` (with the
    enclosing name scopes: a layer's kernel is `"dense/kernel"`)."""
    with ops.name_scope(name, "Variable", skip_on_eager=False) as scope:
        return ops.name_from_scope_name(scope)


def new_mesh_variable(keras_variable, value, layout, distribution):
    """A `MeshVariable` holding `value` on `layout`, for `keras_variable._value`."""
    keras_variable._layout = layout
    keras_variable._tf_mp_distribution = distribution
    # Made under one absolute name (a name ending in "/" ignores the enclosing
    # name scopes), then named: the name, with the layer's scopes, becomes the
    # handle op's `debug_name`, and DTensor compiles an eager op anew for each
    # distinct attribute value and keeps it for the life of the process. Each
    # variable made cost 0.2 MB that deleting the model never gave back (20 KB
    # under one name; measured).
    variable = MeshVariable(
        place(value, layout),
        name="Variable/",
        trainable=keras_variable.trainable,
        aggregation=keras_variable._map_aggregation(keras_variable.aggregation),
        synchronization=keras_variable._map_synchronization(
            keras_variable.synchronization
        ),
    )
    variable._handle_name = f"{_scoped_name(keras_variable.name)}:0"
    batch_axis = distribution.batch_axis
    if batch_axis is not None and batch_axis in layout_axes(layout):
        variable._gathered_axis = batch_axis
    return variable


def relayout(keras_variable, layout, distribution):
    """Puts a Keras variable (on the host or a mesh) on `layout`, keeping its
    value. Only before an optimizer holds slots for it."""
    current = variable_layout(keras_variable)
    if current is not None and current.to_string() == layout.to_string():
        return
    with tf.init_scope():
        value = to_host(keras_variable._value.read_value())
        keras_variable._value = new_mesh_variable(
            keras_variable, value, layout, distribution
        )


def resolve_layout(distribution, keras_variable, shape):
    """The variable's layout: an inherited DTensor layout (optimizer slots take
    their parameter's), the `keras.distribution.TensorLayout` it was created
    with (`keras.Variable(..., layout=...)`), or what the distribution's layout
    map says for its path."""
    inherited = getattr(keras_variable, "_layout", None)
    path = keras_variable.path
    if isinstance(inherited, dtensor.Layout):
        if inherited.mesh == distribution.mesh.dtensor_mesh:
            return inherited
        axes = layout_axes(inherited)
    elif inherited is not None and hasattr(inherited, "axes"):
        axes = distribution.layout_map.checked_axes(
            tuple(inherited.axes), path, tuple(shape), "its `layout`"
        )
    else:
        axes = distribution.get_variable_axes(path, tuple(shape), declared_axes(path))
    return make_layout(distribution.mesh.dtensor_mesh, axes)


def declared_axes(path):
    """The axes the innermost tf_mp layer being built declares for `path`."""
    for table in reversed(state.get().declared):
        for regex, axes in table.items():
            if re.search(regex, path):
                return axes
    return None


def adopt_variable(keras_variable, distribution):
    """Moves a Keras variable created off-mesh onto the distribution's mesh."""
    raw = getattr(keras_variable, "_value", None)
    if raw is None or isinstance(raw, dtensor.DVariable):
        return
    if tf.DeviceSpec.from_string(raw.device).device_type == "CUSTOM":
        # Created outside the scope, colocated with a mesh variable: its value
        # was computed on the DTensor device without a layout and is unusable.
        raise ValueError(
            f"The variable '{keras_variable.path}' was created outside "
            "`ModelParallel.scope()` next to a variable on the mesh (Keras places "
            "optimizer slots beside their parameter). Create it inside the scope, "
            "e.g. `with distribution.scope(): optimizer.build(model.trainable_"
            "variables)`, or let `fit` build the optimizer."
        )
    with tf.init_scope():
        value = raw.read_value()
        layout = resolve_layout(distribution, keras_variable, value.shape)
        keras_variable._value = new_mesh_variable(
            keras_variable, value, layout, distribution
        )
