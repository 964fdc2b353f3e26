"""A plan put to use: its layout map keys, Keras's layout map, and a model
copied onto the plan's mesh."""

import re

import keras
import numpy as np
from keras.src import tree

from tf_mp.parallel.model_parallel import copy_model_state
from tf_mp.parallel.model_parallel import lay_out_variable


def exact_key(path):
    """A layout-map key that matches `path` only, under both matching rules."""
    return "^" + re.escape(path) + "$"


def keras_layout_map(plan, device_mesh=None):
    if device_mesh is None:
        shape = tuple(plan.mesh_shape.values())
        count = shape[0] * shape[1]
        device_mesh = keras.distribution.DeviceMesh(
            shape=shape,
            axis_names=list(plan.mesh_shape),
            devices=keras.distribution.list_devices()[:count],
        )
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for key, axes in plan.split_weights():
        layout_map[key] = axes
    return layout_map


def apply(plan, model, distribution):
    """`model` rebuilt from its config in `distribution`'s scope, each weight
    laid out as the plan says for the weight at its position, and `model`'s
    weights and random-number state copied in."""
    _check_matches(plan, model)
    try:
        config = model.get_config()
        with distribution.scope():
            copy = type(model).from_config(config)
            if not copy.built or len(copy.weights) < len(model.weights):
                _build_by_calling(copy, model, distribution)
    except (NotImplementedError, TypeError, ValueError) as error:
        raise ValueError(
            f"`apply` rebuilds the model from its config, which failed for "
            f"{type(model).__name__} ({error}). Build it inside `plan.scope()` "
            "instead, with the code that built the planned model."
        ) from error
    if len(copy.weights) != len(plan.weights):
        raise ValueError(
            f"{type(model).__name__}.from_config(model.get_config()) made a model "
            f"with {len(copy.weights)} weights, not {len(plan.weights)}. Build it "
            "inside `plan.scope()` instead."
        )
    for variable, (_, _, axes) in zip(copy.weights, plan.weights):
        lay_out_variable(variable, axes, distribution)
    copy_model_state(model, copy)
    return copy


def _build_by_calling(copy, model, distribution):
    """Builds `copy` with `model`'s recorded input shape, by calling it on
    zeros: a subclassed model's `build_from_config` builds no sublayers."""
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        copy.build_from_config(model.get_build_config())
        return
    rows = distribution.num_replicas_in_sync
    copy(
        tree.map_shape_structure(
            lambda s: np.zeros(
                [rows] + [1 if d is None else d for d in s[1:]], "float32"
            ),
            shape,
        )
    )


def _check_matches(plan, model):
    shapes = [tuple(int(d) for d in w.shape) for w in model.weights]
    planned = [tuple(shape) for _, shape, _ in plan.weights]
    if shapes != planned:
        first = next(
            (i for i, (a, b) in enumerate(zip(shapes, planned)) if a != b),
            min(len(shapes), len(planned)),
        )
        raise ValueError(
            "`model` is not the model this plan was made for: it has "
            f"{len(shapes)} weights, the plan {len(planned)}; they first differ "
            f"at weight {first}."
        )
