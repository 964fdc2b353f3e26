"""The plan against the hand maps, measured: compiled collectives and step time.

For each of the fourteen families of `bench_plan_families.py` (the same small
backbones), a classifier (the backbone, mean-pooled, a 2-way Dense head) is
laid out on a 2x2 mesh of virtual CPUs four ways: `tf_mp.plan` with the
memory objective (cost model constants of `bench_plan_families.py`, nothing
measured) and with the step-time objective (the same constants, `--measure`
candidates timed and the cost model calibrated on them), tf_mp's hand map
(`backbone_layout_map`) and, where the family has one, keras-hub's
`get_layout_map()`. Each is compiled and trained on one synthetic batch
(8 x 32 tokens) with Adam the way `tf_mp.plan` measures its candidates, the
collectives read from the compiled step; then every layout's step is timed in
interleaved rounds. Prints one JSON line: per family and layout, weight bytes
per device, the compiled step's collectives (count, bytes, by op and axes) and
the median step time (min, max).

    python benchmarks/bench_plan_measured.py [--families bert,llama] [--measure 3]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MESH = (2, 2)
BATCH, SEQUENCE = 8, 32


def classifier(family):
    import keras
    from bench_plan_families import backbone

    net = backbone(family)
    inputs = {
        name: keras.Input((SEQUENCE,), dtype="int32", name=name) for name in net.input
    }
    outputs = net(inputs)
    if isinstance(outputs, dict):
        outputs = outputs["sequence_output"]
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)
    keras.utils.set_random_seed(1)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(pooled))


def _row(weight_bytes, times, collectives):
    return {
        "weight_bytes": weight_bytes,
        "collectives": sum(v["count"] for v in collectives.values()),
        "collective_bytes": sum(v["bytes"] for v in collectives.values()),
        "by_op": {k: v["count"] for k, v in sorted(collectives.items())},
        "step_ms": round(1000 * statistics.median(times), 2),
        "range_ms": [round(1000 * min(times), 2), round(1000 * max(times), 2)],
    }


def layouts(family, mesh, measure):
    """`{name: (model on the mesh, weight bytes per device)}`, and the step-time
    plan's seconds and choices."""
    from bench_plan_families import CONSTANTS
    from bench_plan_families import _keras_hub_map
    from bench_plan_families import backbone

    import tf_mp

    models = {}
    for objective in ("memory", "step_time"):
        start = time.perf_counter()
        plan = tf_mp.plan(
            classifier(family),
            devices=[MESH],
            batch_size=BATCH,
            sequence_length=SEQUENCE,
            objective=objective,
            measure=measure if objective == "step_time" else 0,
            constants=CONSTANTS,
        )
        seconds = time.perf_counter() - start
        models[f"plan_{objective}"] = plan.apply(classifier(family), mesh)
        if objective == "step_time":
            planned = {
                "plan_s": round(seconds, 1),
                "timed": sum(c["measured_step_s"] is not None for c in plan.candidates),
                "choices": sorted(set(plan.best["choices"].values())),
                "fsdp": plan.best["fsdp"],
                "calibration": plan.settings.get("calibration"),
            }
    maps = {"hand": tf_mp.models.backbone_layout_map(backbone(family), mesh)}
    keras_hub_map = _keras_hub_map(backbone(family), mesh)
    if keras_hub_map is not None:
        maps["keras_hub"] = keras_hub_map
    for name, layout_map in maps.items():
        with tf_mp.ModelParallel(mesh, layout_map).scope():
            models[name] = classifier(family)
    sized = {n: (m, tf_mp.shard_report(m).bytes_per_device) for n, m in models.items()}
    return sized, planned


def measure_family(family, mesh, rounds, plan_measure):
    """Each layout compiled and its collectives read as `tf_mp.plan` measures
    a candidate, then `rounds` interleaved timed steps of every layout."""
    from tf_mp.planning import measure

    models, planned = layouts(family, mesh, plan_measure)
    x, y = measure.synthetic_batch(classifier(family), BATCH, SEQUENCE)
    counted, times = {}, {name: [] for name in models}
    for name, (model, _) in models.items():
        _, counted[name] = measure.train_step(model, (x, y), "adam")
    for _ in range(rounds):
        for name, (model, _) in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    rows = {
        name: _row(weights, times[name], counted[name])
        for name, (_, weights) in models.items()
    }
    return {**rows, "step_time_plan": planned}


def main():
    from bench_plan_families import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--measure", type=int, default=3)
    args = parser.parse_args()
    import tf_mp

    tf_mp.configure_virtual_devices(MESH[0] * MESH[1])
    mesh = tf_mp.Mesh({"batch": MESH[0], "model": MESH[1]})
    rows = {
        f: measure_family(f, mesh, args.rounds, args.measure)
        for f in args.families.split(",")
    }
    print(json.dumps({"benchmark": "plan_measured", "mesh": "2x2", "rows": rows}))


if __name__ == "__main__":
    main()
