"""Collectives of one compiled train step: the plan, the hand map, keras-hub's.

For Gemma, Llama and Qwen (the families with a keras-hub `get_layout_map()`),
a small classifier on the backbone of `bench_plan_families.py` is laid out on
a `batch=1,model=2` mesh (so every collective is a tensor-parallel one) by:
`plan` (`tf_mp.plan`, memory objective, applied), `hand` (tf_mp's
`backbone_layout_map`) and `keras_hub` (the family's `get_layout_map()`), and
trained one step with Adam. Each runs in its own process with DTensor's MLIR
dump on, and the DTensor collectives left just before lowering are counted as
`tests/layers/count_collectives.py` counts them. Prints one JSON line.

    python benchmarks/bench_plan_collectives.py [--families gemma,llama,qwen]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYOUTS = ("plan", "hand", "keras_hub")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="gemma,llama,qwen")
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "LAYOUT"))
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    rows = {}
    for family in args.families.split(","):
        for layout in LAYOUTS:
            output = subprocess.run(
                [sys.executable, __file__, "--child", family, layout],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.setdefault(family, {})[layout] = json.loads(output.splitlines()[-1])
    print(json.dumps({"benchmark": "plan_collectives", "mesh": "1x2", "rows": rows}))


def _child(family, layout):
    dump_dir = tempfile.mkdtemp(prefix="dtensor_dump_")
    os.environ["TF_DUMP_GRAPH_PREFIX"] = dump_dir
    os.environ["TF_CPP_VMODULE"] = "dtensor_mlir_passes=1"
    sys.path[:0] = [ROOT, HERE, os.path.join(ROOT, "tests", "layers")]
    import tf_mp

    tf_mp.configure_virtual_devices(2)
    import keras
    import numpy as np
    from bench_plan_families import CONSTANTS
    from bench_plan_families import backbone
    from count_collectives import counts

    mesh = tf_mp.Mesh({"batch": 1, "model": 2})

    def classifier():
        net = backbone(family)
        inputs = {
            n: keras.Input((32,), dtype="int32", name=n)
            for n in ("token_ids", "padding_mask")
        }
        pooled = keras.layers.GlobalAveragePooling1D()(net(inputs))
        keras.utils.set_random_seed(1)
        return keras.Model(inputs, keras.layers.Dense(2, name="logits")(pooled))

    if layout == "plan":
        model = classifier()
        plan = tf_mp.plan(
            model,
            devices=[(1, 2)],
            batch_size=2,
            objective="memory",
            measure=0,
            constants=CONSTANTS,
        )
        model = plan.apply(model)
    else:
        if layout == "hand":
            layout_map = tf_mp.models.backbone_layout_map(backbone(family), mesh)
        else:
            device_mesh = keras.distribution.DeviceMesh(
                (1, 2), ["batch", "model"], keras.distribution.list_devices()[:2]
            )
            keras_map = type(backbone(family)).get_layout_map(
                device_mesh,
                model_parallel_dim_name="model",
                data_parallel_dim_name="batch",
            )
            layout_map = tf_mp.LayoutMap.from_keras(keras_map, mesh)
        with tf_mp.ModelParallel(mesh, layout_map).scope():
            model = classifier()
    weights = tf_mp.shard_report(model).bytes_per_device
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = {
        "token_ids": np.ones((2, 32), "int32"),
        "padding_mask": np.ones((2, 32), "int32"),
    }
    model.fit(x, np.zeros((2,), "int32"), batch_size=2, epochs=1, verbose=0)
    print(json.dumps({"weight_bytes": weights, **counts(dump_dir, "train_step")}))


if __name__ == "__main__":
    main()
