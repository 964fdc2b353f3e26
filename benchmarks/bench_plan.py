"""How long `tf_mp.plan` takes, and how its plan compares with the hand map.

Plans a BERT-base-shaped `BertBackbone` (vocabulary 30522, 12 layers, hidden
768, 12 heads, feed-forward 3072; random weights) for batch 32 at sequence 128
on 8 virtual CPUs, with the cost model only (`measure=0`): the time to measure
the machine's constants (once, on a fresh cache), to read the structure and to
search. Then, on the 2x4 and 4x2 meshes, the per-device bytes (weights,
gradients, Adam slots, estimated activations) and the collectives per step of
the plan restricted to that mesh, beside those of the hand map
(`tf_mp.models.backbone_layout_map`) laid out on the same mesh and costed by
the same model. Prints one JSON line.

    python benchmarks/bench_plan.py [--layers 12] [--measure 0]
"""

import argparse
import json
import os
import tempfile
import time

WORKLOAD = {
    "batch_size": 32,
    "sequence_length": 128,
    "slots": 2,
    "activation_itemsize": 4,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--measure", type=int, default=0)
    args = parser.parse_args()
    os.environ["TF_MP_CACHE_DIR"] = tempfile.mkdtemp(prefix="tf_mp_plan_bench_")
    import tf_mp

    tf_mp.configure_virtual_devices(8)
    import keras_hub

    from tf_mp.planning import constants as machine

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522,
        num_layers=args.layers,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        max_sequence_length=512,
    )
    start = time.perf_counter()
    constants = machine.machine_constants(tf_mp.list_devices("CPU"), "CPU")
    constants_s = time.perf_counter() - start
    start = time.perf_counter()
    plan = tf_mp.plan(
        backbone, batch_size=32, sequence_length=128, measure=args.measure
    )
    plan_s = time.perf_counter() - start
    result = {
        "benchmark": "plan",
        "model": f"bert-base shape, {args.layers} layers",
        "devices": 8,
        "constants": {k: float(f"{v:.4g}") for k, v in constants.items()},
        "constants_s": round(constants_s, 2),
        "plan_s": round(plan_s, 2),
        "candidates": len(plan.candidates),
        "best": _figures(plan.best),
        "meshes": {},
    }
    for mesh in ((2, 4), (4, 2)):
        restricted = tf_mp.plan(
            backbone,
            devices=[mesh],
            batch_size=32,
            sequence_length=128,
            measure=0,
            constants=constants,
        )
        result["meshes"][f"{mesh[0]}x{mesh[1]}"] = {
            "plan": _figures(restricted.best),
            "hand_map": _figures(_hand_map(backbone, mesh, constants)),
        }
    print(json.dumps(result))


def _hand_map(backbone, mesh, constants):
    """The hand map's layout, costed by the planner's model."""
    import tf_mp
    from tf_mp.planning import referee

    layout_map = tf_mp.models.backbone_layout_map(
        backbone, tf_mp.Mesh({"batch": mesh[0], "model": mesh[1]})
    )
    return referee.megatron_map_figures(
        backbone, layout_map, WORKLOAD, constants
    ).to_dict()


def _figures(figures):
    return {
        "mesh": figures["mesh"],
        "choices": sorted(set(figures["choices"].values())),
        "fsdp": figures["fsdp"],
        "mib_per_device": round(figures["bytes_per_device"] / 2**20, 1),
        "weight_mib_per_device": round(figures["weight_bytes"] / 2**20, 1),
        "collectives": {
            k: {"count": v["count"], "mib": round(v["bytes"] / 2**20, 2)}
            for k, v in figures["collectives"].items()
        },
        "model_step_s": round(figures["step_s"], 4),
        "measured_step_s": figures.get("measured_step_s"),
    }


if __name__ == "__main__":
    main()
