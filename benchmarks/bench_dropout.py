"""Cost of tf_mp's dropout rule: masks drawn at the global shape on every device.

A tiny partitioned BERT classifier (2 blocks, hidden 64, 4 heads, intermediate
128, seq 16, batch 8, Adam, `tf_mp.bert_layout_map`, dropout 0.1 everywhere)
trains on meshes (1,2), (2,1) and (2,2) of 4 logical CPUs in three arms:

- `tf_mp`: the default rule, every mask drawn whole on every device, then
  sliced to the activation's layout (masks equal single-device ones);
- `dtensor`: DTensor's own expansion of the random ops (each device draws its
  shard; on these models it draws wrong masks, which is why it is not used:
  timed only to price the rule);
- `no_dropout`: dropout 0, the floor.

Step times are measured interleaved (every round times every setup once, in a
shuffled order) and reported as medians over rounds of the ratio to the
single-device step with dropout of the same round. Prints one JSON line.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time

MESHES = {"1x2": (1, 2), "2x1": (2, 1), "2x2": (2, 2)}
ARMS = ("tf_mp", "dtensor", "no_dropout")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="Steps per round.")
    parser.add_argument("--rounds", type=int, default=7)
    return parser.parse_args()


def main():
    args = parse_args()
    import tf_mp

    tf_mp.configure_virtual_devices(4)
    import keras
    import keras_hub
    import numpy as np

    from tf_mp.parallel.dtensor import randomness

    @contextlib.contextmanager
    def dtensor_random_expansion():
        """Traces with the rule off: DTensor expands the random ops itself."""
        original = randomness._tracing_mesh
        randomness._tracing_mesh = lambda: None
        try:
            yield
        finally:
            randomness._tracing_mesh = original

    def build(mesh_shape, dropout):
        keras.utils.set_random_seed(0)
        scope = contextlib.nullcontext()
        if mesh_shape is not None:
            mesh = tf_mp.Mesh({"batch": mesh_shape[0], "model": mesh_shape[1]})
            scope = tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope()
        with scope:
            backbone = keras_hub.models.BertBackbone(
                vocabulary_size=1000,
                num_layers=2,
                num_heads=4,
                hidden_dim=64,
                intermediate_dim=128,
                max_sequence_length=args.seq_len,
                dropout=dropout,
            )
            model = keras_hub.models.BertTextClassifier(
                tf_mp.models.partition_bert(backbone),
                num_classes=2,
                preprocessor=None,
                dropout=dropout,
            )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    rng = np.random.default_rng(0)
    b, s = args.batch_size, args.seq_len
    x = {
        "token_ids": rng.integers(1, 1000, size=(b, s)).astype("int32"),
        "segment_ids": np.zeros((b, s), "int32"),
        "padding_mask": np.ones((b, s), "int32"),
    }
    y = rng.integers(0, 2, size=(b,))

    models = {"single": build(None, 0.1), "single_no_dropout": build(None, 0.0)}
    for mesh_name, shape in MESHES.items():
        for arm in ARMS:
            models[f"{mesh_name}/{arm}"] = build(
                shape, 0.0 if arm == "no_dropout" else 0.1
            )
    for name, model in models.items():  # Trace, build optimizer slots.
        expansion = (
            dtensor_random_expansion
            if name.endswith("/dtensor")
            else (contextlib.nullcontext)
        )
        with expansion():
            model.train_on_batch(x, y)

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

    result = {
        "benchmark": "bench_dropout",
        "batch_size": b,
        "seq_len": s,
        "steps_x_rounds": [args.steps, args.rounds],
        "single_device_step_s": round(statistics.median(single_times), 4),
        "step_time_ratio": {
            name: round(statistics.median(r), 3) for name, r in ratios.items()
        },
        "step_time_ratio_range": {
            name: [round(min(r), 3), round(max(r), 3)] for name, r in ratios.items()
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
