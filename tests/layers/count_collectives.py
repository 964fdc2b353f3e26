"""Counts the collectives DTensor emits for a stack of tf_mp encoder blocks.

DTensor lowers a step function to per-device code in its SPMD expansion pass,
then folds sums of all-reduces (`DTensorAllReduceSumOptimization`) and lowers
what is left to collective ops. With `TF_CPP_VMODULE=dtensor_mlir_passes=1` and
`TF_DUMP_GRAPH_PREFIX` it dumps the MLIR module after every pass. This script
builds `Dense -> n x ParallelTransformerEncoder -> Dense` on a `batch=1,
model=k` mesh (so every collective is a tensor-parallel one), runs one `fit`
step and one `predict` step, and prints one JSON line: per step function, the
DTensor collectives left after that optimization, by op type, and the collective
ops they lower to; and, as `fit_read` / `predict_read`, the same step's
collectives as `tf_mp.parallel.timing.watch_collectives` reads them in-process
(what `tf_mp.plan` reports), by op and mesh axes.

    python tests/layers/count_collectives.py --model 2 --blocks 2

`--bert BATCHxMODEL` counts instead a tiny keras-hub `BertTextClassifier`
(2 blocks) laid out by `tf_mp.bert_layout_map` on that mesh, trained with Adam.

Both variables must be set before TensorFlow starts, hence a separate process.
"""

import argparse
import atexit
import collections
import glob
import json
import os
import re
import shutil
import tempfile

COLLECTIVES = re.compile(
    r'"tf\.(DTensor(?:AllReduce|AllGather|ReduceScatter|AllToAll)|'
    r'Collective\w+)"'
)


def _modules(dump_dir, step_name):
    """The step function's dumped modules, in pass order (a pass that changes
    nothing dumps nothing)."""
    files = sorted(glob.glob(os.path.join(dump_dir, f"dtensor.*{step_name}_*.mlir")))
    if not files:
        raise RuntimeError(f"DTensor dumped no {step_name} module to {dump_dir}.")
    return files


def _count(path):
    with open(path) as f:
        return dict(collections.Counter(COLLECTIVES.findall(f.read())))


def counts(dump_dir, step_name):
    files = _modules(dump_dir, step_name)
    lowering = next(i for i, f in enumerate(files) if "AllReduceLowering" in f)
    return {
        # DTensor's collectives once optimized, just before lowering.
        "dtensor": _count(files[lowering - 1]),
        # The collective ops the step runs.
        "lowered": _count(files[-1]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--bert", help="Mesh shape BATCHxMODEL for keras-hub BERT.")
    args = parser.parse_args()

    dump_dir = tempfile.mkdtemp(prefix="dtensor_dump_")
    atexit.register(shutil.rmtree, dump_dir, ignore_errors=True)  # MLIR dumps.
    os.environ["TF_DUMP_GRAPH_PREFIX"] = dump_dir
    os.environ["TF_CPP_VMODULE"] = "dtensor_mlir_passes=1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")

    import tf_mp
    from tf_mp.parallel import timing

    if args.bert:
        return count_bert(args, dump_dir)
    tf_mp.configure_virtual_devices(args.model)
    import keras
    import numpy as np

    hidden, heads, ff, seq, batch = 16, 4, 32, 8, 4
    mesh = tf_mp.Mesh({"batch": 1, "model": args.model})
    with tf_mp.ModelParallel(mesh).scope():
        tokens = keras.Input((seq, hidden))
        x = keras.layers.Dense(hidden)(tokens)  # so block 1's input needs a grad
        for _ in range(args.blocks):
            x = tf_mp.layers.ParallelTransformerEncoder(ff, heads, dropout=0.0)(x)
        model = keras.Model(tokens, keras.layers.Dense(1)(x[:, 0]))
        model.compile(optimizer="sgd", loss="mse")
    data = np.random.default_rng(0).normal(size=(batch, seq, hidden))
    with timing.watch_collectives() as fit_read:
        model.fit(data, np.zeros((batch, 1)), batch_size=batch, verbose=0)
    with timing.watch_collectives() as predict_read:
        model.predict(data, batch_size=batch, verbose=0)
    print(
        json.dumps(
            {
                "model": args.model,
                "blocks": args.blocks,
                "fit": counts(dump_dir, "train_step"),
                "predict": counts(dump_dir, "predict_step"),
                "fit_read": fit_read.collectives,
                "predict_read": predict_read.collectives,
            }
        )
    )


def count_bert(args, dump_dir):
    import tf_mp
    from tf_mp.parallel import timing

    batch_size, model_size = (int(n) for n in args.bert.split("x"))
    tf_mp.configure_virtual_devices(batch_size * model_size)
    import keras
    import keras_hub
    import numpy as np

    mesh = tf_mp.Mesh({"batch": batch_size, "model": model_size})
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=64,
            num_layers=args.blocks,
            num_heads=4,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=8,
            dropout=0.0,
        )
        model = keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=None, dropout=0.0
        )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 64, (4, 8)).astype("int32"),
        "segment_ids": np.zeros((4, 8), "int32"),
        "padding_mask": np.ones((4, 8), "int32"),
    }
    with timing.watch_collectives() as fit_read:
        model.fit(x, rng.integers(0, 2, (4,)), batch_size=4, verbose=0)
    fit = counts(dump_dir, "train_step")
    print(json.dumps({"bert": args.bert, "fit": fit, "fit_read": fit_read.collectives}))


if __name__ == "__main__":
    main()
