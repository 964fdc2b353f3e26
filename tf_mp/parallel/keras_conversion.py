"""Keras's `keras.distribution` objects as tf_mp's: a `DeviceMesh` as a
`tf_mp.Mesh`, a distribution's layout map as a `tf_mp.LayoutMap`."""

import keras

from tf_mp.parallel import keras_compat
from tf_mp.parallel import processes as _processes
from tf_mp.parallel import state
from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import Mesh


def mesh_from_keras(device_mesh):
    """The `tf_mp.Mesh` of a `keras.distribution.DeviceMesh` (one per mesh)."""
    mesh = state.process().keras_meshes.get(device_mesh)
    if mesh is None:
        if _processes.num_processes() > 1:
            # Keras lists every process's devices as "cpu:0", ... without the
            # task; a tf_mp mesh over processes takes each one's own.
            first = str(device_mesh.devices.flatten()[0]).split(":")[0]
            mesh = Mesh(
                list(zip(device_mesh.axis_names, device_mesh.shape)),
                device_type=first.upper(),
            )
        else:
            mesh = Mesh.from_keras(device_mesh)
        state.process().keras_meshes[device_mesh] = mesh
    return mesh


def layout_map_from_keras(distribution, mesh):
    """A Keras distribution's variable layouts as a `tf_mp.LayoutMap` (Keras's
    matching rules), or `None` for `DataParallel` (everything replicated)."""
    if isinstance(distribution, keras.distribution.ModelParallel):
        return LayoutMap.from_keras(keras_compat.keras_layout_map(distribution), mesh)
    if isinstance(distribution, keras.distribution.DataParallel):
        return None
    raise TypeError(
        "tf_mp runs `keras.distribution.DataParallel` and `ModelParallel` on "
        "TensorFlow; another `Distribution` decides layouts in Python methods "
        "tf_mp cannot read. Use one of those two, or a `tf_mp.ModelParallel`. "
        f"Received: {distribution!r} of type {type(distribution).__name__}"
    )
