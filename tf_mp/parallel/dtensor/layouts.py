"""Meshes and layouts: tf_mp's axis tuples to and from `dtensor.Layout`."""

from tensorflow.experimental import dtensor

UNSHARDED = dtensor.UNSHARDED


def create_mesh(axis_names, shape, device_names, device_type):
    """Builds a `dtensor.Mesh` over `device_names` (full TF device names)."""
    if device_type == "TPU":
        _ensure_tpu_system()
    return dtensor.create_mesh(list(zip(axis_names, shape)), devices=list(device_names))


def _ensure_tpu_system():
    try:
        dtensor.initialize_accelerator_system("TPU")
    except ValueError as error:  # Already initialised by an earlier mesh.
        if "already" not in str(error).lower():
            raise


def make_layout(dtensor_mesh, axes):
    """`axes` is a tuple of mesh axis names or `None` (replicated), one per dim."""
    specs = [UNSHARDED if axis is None else axis for axis in axes]
    return dtensor.Layout(specs, dtensor_mesh)


def replicated_layout(dtensor_mesh, rank):
    return dtensor.Layout.replicated(dtensor_mesh, rank)


def layout_axes(layout):
    """The inverse of `make_layout`: a tuple of axis names or `None`."""
    return tuple(None if s == UNSHARDED else s for s in layout.sharding_specs)


def variable_layout(variable):
    """The DTensor layout of a Keras variable, or `None` if it is not on a mesh."""
    value = getattr(variable, "_value", variable)
    if isinstance(value, dtensor.DVariable):
        return value.layout
    return None


def sharding_of(variable):
    """`(axes, local_shape)` of a Keras variable, or `None` if it is off-mesh."""
    layout = variable_layout(variable)
    if layout is None:
        return None
    shape = tuple(int(d) for d in variable.shape)
    local = tuple(
        d if spec == UNSHARDED else d // layout.mesh.dim_size(spec)
        for d, spec in zip(shape, layout.sharding_specs)
    )
    return layout_axes(layout), local


def shard_indices(layout, global_shape):
    """For each local device, in mesh order, the slice of the global value it
    holds under `layout`."""
    mesh = layout.mesh
    indices = []
    for location in mesh.local_device_locations():
        index = []
        for dim, spec in enumerate(layout.sharding_specs):
            if spec == UNSHARDED:
                index.append(slice(None))
                continue
            chunk = global_shape[dim] // mesh.dim_size(spec)
            start = location[spec] * chunk
            index.append(slice(start, start + chunk))
        indices.append(tuple(index))
    return indices
