"""`tf_mp.plan`: a mesh and layout for any built Keras model, by cost and
measurement."""

import numpy as np

from tf_mp.planning import calibration
from tf_mp.planning import costs
from tf_mp.planning import measure as measuring
from tf_mp.planning import search as searching
from tf_mp.planning.arguments import candidate_meshes
from tf_mp.planning.arguments import check_model
from tf_mp.planning.arguments import check_settings
from tf_mp.planning.arguments import parse_bytes
from tf_mp.planning.arguments import sequence_length_of
from tf_mp.planning.constants import check_constants
from tf_mp.planning.constants import machine_constants
from tf_mp.planning.plan import Plan
from tf_mp.planning.structure import model_groups


def plan(
    model,
    devices=None,
    memory_per_device=None,
    batch_size=None,
    sequence_length=None,
    optimizer="adam",
    objective="step_time",
    measure=3,
    constants=None,
):
    """Plans how to split a built Keras model over devices.

    Reads the model's structure (attention layers, feed-forward pairs,
    embeddings, other weights), searches mesh shapes and per-group splits with
    a Keras Tuner oracle scored by an analytical cost model (measured machine
    constants), then measures the step time of the best `measure` candidates.

    Args:
        model: a built Keras 3 model: Functional, Sequential, subclassed,
            keras-hub backbone or task.
        devices: `None` (all local devices), a device count, a list of device
            names, or candidate mesh shapes (`(batch, model)` tuples or
            `{"batch": b, "model": m}` dicts).
        memory_per_device: optional budget, bytes or a string such as `"2GB"`
            or `"512MiB"`: weights, gradients, optimizer slots and estimated
            activations per device must fit.
        batch_size: int, the global training batch size (required).
        sequence_length: int, tokens per example; read from the model's
            inputs when they fix it. Models without attention or embeddings
            default to 1.
        optimizer: `"adam"`, `"sgd"`, ... , a Keras optimizer, or the number
            of slot variables it keeps per weight.
        objective: `"step_time"` (default) or `"memory"`.
        measure: int, how many candidates to train for a few steps and
            time. For the step-time objective, a spread (the cost model's
            best, the least compute, the least communication) calibrates the
            cost model on this model, and the rest go to the candidates the
            calibrated time ranks first. `0` ranks by the cost model alone.
        constants: optional `{"flops_per_s", "latency_s", "bytes_per_s"}` for
            the cost model; measured once per machine when omitted.

    Returns:
        A `tf_mp.Plan`.
    """
    check_model(model)
    check_settings(batch_size, measure, objective, searching.OBJECTIVES)
    budget = parse_bytes("memory_per_device", memory_per_device)
    slots = costs.optimizer_slots(optimizer)
    groups = model_groups(model)
    names, device_type, meshes = candidate_meshes(devices, batch_size, groups)
    workload = {
        "batch_size": batch_size,
        "sequence_length": sequence_length_of(model, groups, sequence_length),
        "slots": slots,
        "activation_itemsize": np.dtype(model.dtype_policy.compute_dtype).itemsize,
    }
    if constants is None:
        constants = machine_constants(names, device_type)
    constants = check_constants(constants)
    if budget is not None:
        _check_budget(groups, meshes, workload, constants, budget, memory_per_device)
    ranked = searching.search(groups, meshes, workload, constants, budget, objective)
    if not ranked:  # The search missed what `_check_budget` found.
        ranked = [searching.smallest_footprint(groups, meshes, workload, constants)]
    settings = {
        "batch_size": batch_size,
        "sequence_length": workload["sequence_length"],
        "optimizer_slots": slots,
        "objective": objective,
        "memory_per_device": budget,
        "devices": len(names),
        "device_type": device_type,
        "constants": constants,
    }
    if measure:
        ranked = _measured(model, ranked, measure, workload, optimizer, settings)
    return _plan_of(model, ranked, settings)


def _plan_of(model, ranked, settings):
    best = ranked[0]
    weights = [
        (w.path, tuple(int(d) for d in w.shape), axes)
        for w, axes in zip(model.weights, best.axes, strict=True)
    ]
    mesh = {"batch": best.mesh[0], "model": best.mesh[1]}
    return Plan(mesh, weights, [f.to_dict() for f in ranked], settings)


def _measured(model, ranked, count, workload, optimizer, settings):
    """`ranked` with `count` candidates timed. For the memory objective, its
    first `count`. For step time, a spread the cost model is calibrated on,
    then the candidates the calibrated time ranks first (`calibration.py`);
    the timed ones come first, fastest first, the rest by calibrated time."""
    batch = measuring.synthetic_batch(
        model, workload["batch_size"], workload["sequence_length"]
    )
    name = optimizer if not isinstance(optimizer, int) else "adam"

    def measure_one(figures):
        candidate = _plan_of(model, [figures], settings)
        copy = candidate.apply(model)
        figures.measured_step_s, figures.compiled_collectives = measuring.train_step(
            copy, batch, name
        )

    if settings["objective"] != "step_time":
        for figures in ranked[:count]:
            measure_one(figures)
        return ranked
    timed = calibration.spread(ranked, count)
    for index in timed:
        measure_one(ranked[index])
    factors = calibration.fit([ranked[i] for i in timed])
    while factors is not None:
        calibration.calibrate(ranked, factors)
        index = calibration.next_to_measure(ranked)
        if index is None or len(timed) >= count:
            break
        timed.append(index)
        measure_one(ranked[index])
        factors = calibration.fit([ranked[i] for i in timed])
    first = sorted((ranked[i] for i in timed), key=lambda f: f.measured_step_s)
    rest = [f for i, f in enumerate(ranked) if i not in timed]
    if factors is not None:
        settings["calibration"] = {"compute": factors[0], "communication": factors[1]}
        rest.sort(key=lambda f: f.calibrated_step_s)
    return first + rest


def _check_budget(groups, meshes, workload, constants, budget, given):
    leanest = searching.smallest_footprint(groups, meshes, workload, constants)
    if leanest is None or leanest.bytes_per_device > budget:
        need = leanest.bytes_per_device if leanest else float("nan")
        mesh = f"{leanest.mesh[0]}x{leanest.mesh[1]}" if leanest else "none"
        raise ValueError(
            f"No layout fits `memory_per_device={given!r}` ({budget:,} bytes). "
            f"The smallest per-device memory that fits is {need:,} bytes "
            f"({need / 2**20:,.1f} MiB), on the {mesh} (batch x model) mesh "
            "with FSDP; a smaller `batch_size` or more devices need less."
        )
