"""What the planner measures on a mesh: timings for its cost model
(`tf_mp.planning.constants`) and the collectives of compiled steps."""

from tf_mp.parallel import dtensor as _engine


def matmul_seconds(mesh, size, repeats=5):
    """Seconds for every device of `mesh` (a one-axis `tf_mp.Mesh`) to multiply
    two `size x size` float32 matrices, all at once."""
    return _engine.matmul_seconds(mesh.dtensor_mesh, size, repeats)


def all_reduce_seconds(mesh, elements, repeats=5):
    """Seconds of one all-reduce of `elements` float32 values over `mesh` (a
    one-axis `tf_mp.Mesh`)."""
    return _engine.all_reduce_seconds(mesh.dtensor_mesh, elements, repeats)


def watch_collectives():
    """A context manager yielding a reading whose `collectives`, on exit, are
    those of the steps compiled for a mesh inside it: `"op@axes"` ->
    `{"count", "bytes"}` per device, as DTensor lowered them (gradient
    all-reduces grouped); `None` where no step was compiled for a mesh (one
    compiled before the block is not seen)."""
    return _engine.watch_collectives()
