"""Step time and per-device memory of tensor- and data-parallel meshes.

Fine-tunes the pretrained all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden
384, 12 heads) as a 2-class `BertTextClassifier` at seq 64, batch 32 on:
single device, 1x2 and 1x4 tensor-parallel meshes (`tf_mp.bert_layout_map`) and
a 2x1 data-parallel mesh. Step times are measured interleaved: every round times
each setup in a shuffled order, each ratio is taken against the single-device
time of the same round, and the median over rounds is reported with its range.
Prints one JSON line.

The checkpoint comes from `../shared/scripts/fetch_minilm.sh` (or `--preset`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETUPS = {"single": None, "1x2": (1, 2), "1x4": (1, 4), "2x1": (2, 1)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="BERT preset name or local HF directory.")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="Steps per round.")
    parser.add_argument("--rounds", type=int, default=8)
    return parser.parse_args()


def default_preset():
    script = os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "scripts", "fetch_minilm.sh"
    )
    return subprocess.check_output(["bash", script], text=True).strip()


def main():
    args = parse_args()
    preset = args.preset or default_preset()

    import tf_mp

    tf_mp.configure_virtual_devices(4)
    import keras
    import keras_hub
    import numpy as np

    def build(mesh_shape):
        keras.utils.set_random_seed(0)
        if mesh_shape is None:
            backbone = keras_hub.models.BertBackbone.from_preset(preset, dropout=0.0)
            model = keras_hub.models.BertTextClassifier(
                backbone, num_classes=2, preprocessor=None, dropout=0.0
            )
        else:
            mesh = tf_mp.Mesh({"batch": mesh_shape[0], "model": mesh_shape[1]})
            with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
                backbone = keras_hub.models.BertBackbone.from_preset(
                    preset, dropout=0.0
                )
                model = keras_hub.models.BertTextClassifier(
                    backbone, num_classes=2, preprocessor=None, dropout=0.0
                )
        model.compile(
            optimizer=keras.optimizers.AdamW(2e-5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    rng = np.random.default_rng(0)
    b, s = args.batch_size, args.seq_len
    x = {
        "token_ids": rng.integers(1000, 30000, size=(b, s)).astype("int32"),
        "segment_ids": np.zeros((b, s), "int32"),
        "padding_mask": np.ones((b, s), "int32"),
    }
    y = rng.integers(0, 2, size=(b,))

    models = {name: build(shape) for name, shape in SETUPS.items()}
    losses = {}
    for name, model in models.items():  # Trace, build optimizer slots.
        losses[name] = model.train_on_batch(x, y, return_dict=True)["loss"]
    # Each round times every setup once, in a shuffled order; a setup's ratio
    # is taken against the single-device time of the same round, so slow phases
    # of the shared machine cancel out. The median over rounds is reported.
    ratios = {name: [] for name in models if name != "single"}
    single_times = []
    order = list(models)
    for _ in range(args.rounds):
        rng.shuffle(order)
        seconds = {}
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                models[name].train_on_batch(x, y)
            seconds[name] = (time.perf_counter() - start) / args.steps
        single_times.append(seconds["single"])
        for name in ratios:
            ratios[name].append(seconds[name] / seconds["single"])

    def encoder_fraction(model):
        report = tf_mp.shard_report(model, include_optimizer=True)
        rows = [r for r in report.rows if "transformer_layer_" in r.path]
        return sum(r.bytes_per_device for r in rows) / sum(r.bytes for r in rows)

    result = {
        "benchmark": "bench_mesh",
        "preset": os.path.basename(os.path.normpath(preset)),
        "seq_len": s,
        "batch_size": b,
        "steps_x_rounds": [args.steps, args.rounds],
        "single_device_step_s": round(statistics.median(single_times), 4),
        "step_time_ratio": {
            name: round(statistics.median(r), 3) for name, r in ratios.items()
        },
        "step_time_ratio_range": {
            name: [round(min(r), 3), round(max(r), 3)] for name, r in ratios.items()
        },
        "encoder_bytes_per_device_fraction": {
            name: round(encoder_fraction(models[name]), 4)
            for name in ("1x2", "1x4", "2x1")
        },
        "first_step_loss": {k: round(v, 6) for k, v in losses.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
