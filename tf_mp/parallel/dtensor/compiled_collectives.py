"""The collectives a compiled DTensor step runs, read back in-process.

DTensor lowers a function called on mesh tensors to one per-device (SPMD)
function and adds it to the eager context's function library as
`_func_<fingerprint>`. Its `Collective*` nodes are the collectives each device
runs, after DTensor's own optimizations (gradient all-reduces grouped, sums of
all-reduces folded): the ops of the last module `TF_DUMP_GRAPH_PREFIX` dumps,
which the layer tests count in a subprocess. Each node keeps the DTensor op it
lowers (`original_node_names`), its local output shape and dtype, and a table
of group keys by device id, from which the mesh axes it spans follow.
"""

import contextlib
import re

import numpy as np
import tensorflow as tf
from tensorflow.experimental import dtensor
from tensorflow.python.eager import context

_LOWERED_PREFIX = "_func_"
_DTENSOR_OP = re.compile(r"DTensor(AllReduce|AllGather|ReduceScatter|AllToAll)Op")
_SNAKE = {
    "AllReduce": "all_reduce",
    "AllGather": "all_gather",
    "ReduceScatter": "reduce_scatter",
    "AllToAll": "all_to_all",
}
# Collectives with no DTensor op recorded (made by DTensor's combining pass),
# named by what they compute.
_LOWERED = {
    "CollectiveReduceV2": "all_reduce",
    "CollectiveGatherV2": "all_gather",
    "CollectiveReduceScatterV2": "reduce_scatter",
    "CollectiveAllToAllV2": "all_to_all",
}


class Reading:
    """What `watch` read: `collectives`, `"op@axes"` (axes joined by `+`) ->
    `{"count", "bytes"}` (bytes: each device's buffer), or `None` where no
    step was compiled for a mesh inside the block."""

    collectives = None


@contextlib.contextmanager
def watch():
    """Yields a `Reading` of the collectives of the per-device functions
    DTensor compiled inside the block, filled on exit.

    A function compiled before the block (the same step traced again) is not
    seen: run the block on a freshly compiled step.
    """
    before = set(context.context().list_function_names())
    reading = Reading()
    yield reading
    for name in context.context().list_function_names():
        if name.startswith(_LOWERED_PREFIX) and name not in before:
            if reading.collectives is None:
                reading.collectives = {}
            function = context.context().get_function_def(name)
            for key, size in _collectives(function):
                entry = reading.collectives.setdefault(key, {"count": 0, "bytes": 0})
                entry["count"] += 1
                entry["bytes"] += size


def _collectives(function):
    nodes = {node.name: node for node in function.node_def}
    for node in function.node_def:
        if node.op.startswith("Collective"):
            yield _name(node, nodes), _bytes(node)


def _name(node, nodes):
    origin = " ".join(node.experimental_debug_info.original_node_names)
    match = _DTENSOR_OP.search(origin)
    op = _SNAKE[match.group(1)] if match else _LOWERED.get(node.op, node.op)
    return f"{op}@{_axes(node, nodes)}"


def _bytes(node):
    shapes = node.attr["_output_shapes"].list.shape
    if not shapes or any(d.size < 0 for d in shapes[0].dim):
        return 0
    elements = int(np.prod([d.size for d in shapes[0].dim]))
    return elements * tf.as_dtype(node.attr["T"].type).size


def _axes(node, nodes):
    """The mesh axes along which the devices of one group differ."""
    layouts = node.attr["_layout"].list.s
    if not layouts:
        return "mesh"
    mesh = dtensor.Layout.from_string(layouts[0].decode()).mesh
    names, sizes = mesh.dim_names, mesh.shape()
    table = _group_key_table(node, nodes, mesh.size)
    if table is None:
        return "mesh"
    coordinates = np.array(np.unravel_index(np.arange(len(table)), sizes)).T
    leaders = [int(np.flatnonzero(table == key)[0]) for key in table]
    varying = {
        names[axis]
        for device, leader in enumerate(leaders)
        for axis in range(len(names))
        if coordinates[device][axis] != coordinates[leader][axis]
    }
    return "+".join(n for n in names if n in varying) or "none"


def _group_key_table(node, nodes, devices):
    """The constant group key per device id that the group key input slices
    (DTensor's lowering: `Reshape(Slice(Const table, device_id))`)."""
    if len(node.input) < 3:
        return None
    frontier = [node.input[2]]
    for _ in range(4):
        step = []
        for name in frontier:
            source = nodes.get(name.split(":")[0].lstrip("^"))
            if source is None:
                continue
            if source.op == "Const":
                table = tf.make_ndarray(source.attr["value"].tensor)
                if table.shape == (devices,):
                    return table
            step.extend(source.input)
        frontier = step
    return None
