"""Reports the collectives of a partitioned causal LM's compiled steps.

Builds a tiny keras-hub causal LM partitioned on a `BATCHxMODEL` mesh, with
DTensor's MLIR dump on (it must be switched on before TensorFlow starts, hence a
separate process), and prints one JSON line.

`--step generate` runs `generate` (greedy, one prompt per batch shard) and
reports, for each `while` loop of the SPMD-expanded step, its loop variables
(global shape, layout) and the collectives in its body (op, local shape of the
result). `--step fit` runs one `fit` step (with `--lora RANK`, after
`backbone.enable_lora(RANK)`) and reports its DTensor collectives by op type,
as `tests/layers/count_collectives.py` counts them.

    python tests/models/step_collectives.py --family llama --mesh 2x2
    python tests/models/step_collectives.py --step fit --lora 2
"""

import argparse
import json
import os
import re
import sys
import tempfile

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
_COLLECTIVE = re.compile(
    r'"tf\.DTensor(AllReduce|AllGather|AllScatter|ReduceScatter|AllToAll)"'
    r"[^\n]*-> tensor<([0-9x]*)x?[a-z]\w*>"
)


sys.path.insert(0, os.path.join(_ROOT, "tests", "layers"))
from count_collectives import _modules  # noqa: E402
from count_collectives import counts  # noqa: E402


def _expanded_module(dump_dir, step_name):
    """The step as per-device code: the last dump before collectives lower
    (and before DTensor combines all-reduces into groups)."""
    files = _modules(dump_dir, step_name)
    lowering = next(i for i, f in enumerate(files) if "AllGatherLowering" in f)
    with open(files[lowering - 1]) as f:
        return f.read()


def _shape(text):
    return [int(n) for n in text.split("x") if n]


def loops(module):
    """Each `tf.WhileRegion`: its loop variables and the collectives inside."""
    found = []
    for start in re.finditer(r'\n( *)%\S+ = "tf\.WhileRegion"', module):
        end = module.index(f"\n{start.group(1)}}}) {{", start.end())
        body = module[start.end() : end]
        attributes = module[end : module.index("\n", end + 1)]
        shapes = re.search(r"_global_shape = \[([^\]]*)\]", attributes).group(1)
        layouts = re.search(r"_layout = \[([^\]]*)\]", attributes).group(1)
        found.append(
            {
                "variables": [
                    {"shape": _shape(shape), "layout": specs.split(",")[:-1]}
                    for shape, specs in zip(
                        re.findall(r"shape<([0-9x]*)>", shapes),
                        re.findall(r"sharding_specs:([^ ]*) mesh", layouts),
                    )
                ],
                "collectives": [
                    {"op": op, "shape": _shape(shape)}
                    for op, shape in _COLLECTIVE.findall(body)
                ],
            }
        )
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="llama")
    parser.add_argument("--mesh", default="1x2", help="BATCHxMODEL")
    parser.add_argument("--step", choices=("generate", "fit"), default="generate")
    parser.add_argument("--lora", type=int, default=0, help="LoRA rank, for fit")
    args = parser.parse_args()
    batch_size, model_size = (int(n) for n in args.mesh.split("x"))

    dump_dir = tempfile.mkdtemp(prefix="dtensor_dump_")
    os.environ["TF_DUMP_GRAPH_PREFIX"] = dump_dir
    os.environ["TF_CPP_VMODULE"] = "dtensor_mlir_passes=1"
    sys.path.insert(0, _ROOT)
    import numpy as np

    import tf_mp

    tf_mp.configure_virtual_devices(batch_size * model_size)
    from tests.models import families

    backbone = families.backbone(args.family)
    model = families.GENERATIVE[args.family](backbone=backbone, preprocessor=None)
    mesh = tf_mp.Mesh({"batch": batch_size, "model": model_size})
    partitioned = tf_mp.models.partition(model, mesh=mesh)
    if args.step == "fit":
        return _fit(partitioned, args.lora, families, dump_dir)
    partitioned.compile(sampler="greedy")
    mask = np.zeros((batch_size, families.SEQ), "int32")
    mask[:, :3] = 1
    partitioned.generate(
        {"token_ids": mask * 5, "padding_mask": mask}, stop_token_ids=None
    )
    print(json.dumps({"loops": loops(_expanded_module(dump_dir, "generate_step"))}))


def _fit(model, lora_rank, families, dump_dir):
    import keras

    if lora_rank:
        model.backbone.enable_lora(lora_rank)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y, _ = families.next_token_data(families.inputs(model.backbone))
    model.fit(x, y, batch_size=len(y), epochs=1, verbose=0)
    module = _expanded_module(dump_dir, "train_step")
    collectives = [
        {"op": op, "shape": _shape(shape)} for op, shape in _COLLECTIVE.findall(module)
    ]
    print(
        json.dumps({"fit": counts(dump_dir, "train_step"), "collectives": collectives})
    )


if __name__ == "__main__":
    main()
