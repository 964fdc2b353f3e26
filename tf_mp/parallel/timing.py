"""Timings of a mesh for the planner's cost model (`tf_mp.planning.constants`)."""

from tf_mp.parallel import dtensor as _engine


def matmul_seconds(mesh, size, repeats=5):
    """Seconds for every device of `mesh` (a one-axis `tf_mp.Mesh`) to multiply
    two `size x size` float32 matrices, all at once."""
    return _engine.matmul_seconds(mesh.dtensor_mesh, size, repeats)


def all_reduce_seconds(mesh, elements, repeats=5):
    """Seconds of one all-reduce of `elements` float32 values over `mesh` (a
    one-axis `tf_mp.Mesh`)."""
    return _engine.all_reduce_seconds(mesh.dtensor_mesh, elements, repeats)
