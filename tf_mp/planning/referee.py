"""Layouts not made by the planner (a hand-written map, keras-hub's
`get_layout_map()`), measured with the planner's yardstick."""

import dataclasses
import math

import numpy as np

from tf_mp.planning import costs
from tf_mp.planning.structure import model_groups

GIVEN = "given"


def weight_bytes_per_device(model, layout_map):
    """Exact per-device bytes of `model`'s weights under any `layout_map`
    (a `tf_mp.LayoutMap`): each weight's size over the sizes of the mesh axes
    that split it."""
    sizes = layout_map.mesh.shape
    total = 0
    for variable in model.weights:
        shape = tuple(int(d) for d in variable.shape)
        axes = layout_map.axes_for(variable.path, shape)
        parts = math.prod(sizes[a] for a in axes if a is not None)
        total += math.prod(shape) * np.dtype(variable.dtype).itemsize // parts
    return total


def megatron_map_figures(model, layout_map, workload, constants):
    """The cost model's `Figures` for a map that splits over the `model` axis
    only (as tf_mp's hand maps do): each group pinned to the map's split.
    `workload` as `costs.evaluate` takes it."""
    mesh = layout_map.mesh.shape
    pinned = []
    for group in model_groups(model):
        dims = []
        for weight in group.weights:
            axes = layout_map.axes_for(weight.path, weight.shape)
            if any(a not in (None, "model") for a in axes):
                raise ValueError(
                    f"The map splits '{weight.path}' over {axes}: only the "
                    "'model' axis is costed here."
                )
            dims.append(axes.index("model") if "model" in axes else None)
        pinned.append(dataclasses.replace(group, options={GIVEN: tuple(dims)}))
    return costs.evaluate(
        pinned,
        (mesh.get("batch", 1), mesh.get("model", 1)),
        {g.role: GIVEN for g in pinned},
        False,
        workload,
        constants,
    )
