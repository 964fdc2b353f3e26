"""What it costs to put a batch on the mesh: tf_mp's host path against
`tf.experimental.dtensor.DTensorDataset`.

The probe of issue 17 / 21: before a step runs, `fit` on a mesh pulls each
batch from its `tf.data` iterator on the host and places it on the mesh
(`distribute_batch`: numpy rows packed onto the batch shards). DTensorDataset
yields batch-sharded DTensors from the pipeline itself and can be iterated
inside a `tf.function`, so `steps_per_execution` steps could take their
batches in the graph. On meshes of 4 CPU virtual devices, for BERT-shaped
batches (`token_ids`, `segment_ids`, `padding_mask`, labels), each round
times, in shuffled order, `--batches` batches through:

* `host`: a `tf.data` iterator, then `distribute_batch` (what `fit` does);
* `dtensor_dataset`: a DTensorDataset iterator, eagerly, one batch a call;
* `dtensor_dataset_in_graph`: the same iterator read 8 batches per
  `tf.function` call (a loop in the graph), each batch reduced to a scalar so
  it is really read.

Every path returns the same batches (checked on the first round). Prints one
JSON line: milliseconds per batch, medians (ranges) over rounds.
"""

import argparse
import json
import random
import statistics
import time

SHAPES = {"tiny": (16, 8), "minilm": (64, 32)}  # seq, batch
IN_GRAPH = 8  # Batches per call of the in-graph loop.


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="minilm")
    parser.add_argument("--mesh", default="2x2", help="BATCHxMODEL, 4 devices.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=32)
    return parser.parse_args()


def main():
    args = parse_args()
    import numpy as np
    import tensorflow as tf
    from tensorflow.experimental import dtensor

    import tf_mp
    from tf_mp.parallel.dtensor import batches as batches_lib
    from tf_mp.parallel.dtensor.transfer import to_host

    tf_mp.configure_virtual_devices(4)
    batch, model = (int(n) for n in args.mesh.split("x"))
    mesh = tf_mp.Mesh({"batch": batch, "model": model})
    distribution = tf_mp.ModelParallel(mesh)
    seq_len, batch_size = SHAPES[args.shape]
    rows = batch_size * (args.batches + IN_GRAPH)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 30000, (rows, seq_len)).astype("int32"),
        "segment_ids": np.zeros((rows, seq_len), "int32"),
        "padding_mask": np.ones((rows, seq_len), "int32"),
    }
    y = rng.integers(0, 2, (rows,)).astype("int32")
    pipeline = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
    layouts = (
        {k: dtensor.Layout.batch_sharded(mesh.dtensor_mesh, "batch", 2) for k in x},
        dtensor.Layout.batch_sharded(mesh.dtensor_mesh, "batch", 1),
    )
    dtensor_batches = dtensor.DTensorDataset(
        dataset=pipeline,
        mesh=mesh.dtensor_mesh,
        layouts=layouts,
        global_batch_size=batch_size,
        # Without it, every batch shard silently gets the same first rows
        # ([0, 1] on each of 4 shards of a batch of 8; rows 2-7 never used).
        batch_dim="batch",
    )

    host_iterator = iter(pipeline.batch(batch_size))
    dtensor_iterator = iter(dtensor_batches)

    def host():
        return batches_lib.distribute_batch(next(host_iterator), distribution)[0]

    def eager():
        return next(dtensor_iterator)

    @tf.function
    def in_graph(iterator):
        total = tf.constant(0, tf.int32)
        for _ in tf.range(IN_GRAPH):
            features, labels = next(iterator)
            total += tf.reduce_sum(features["token_ids"][:, :1]) + tf.reduce_sum(labels)
        return total

    graph_iterator = iter(dtensor_batches)

    def check_same_batches():
        first = [host() for _ in range(2)]
        second = [eager() for _ in range(2)]
        for a, b in zip(first, second):
            for got, want in zip(tf.nest.flatten(b), tf.nest.flatten(a)):
                np.testing.assert_array_equal(to_host(got), to_host(want))
        in_graph(graph_iterator)  # Traced here, outside the timings.

    def time_path(name):
        start = time.perf_counter()
        if name == "dtensor_dataset_in_graph":
            for _ in range(args.batches // IN_GRAPH):
                in_graph(graph_iterator).numpy()
        else:
            step = host if name == "host" else eager
            for _ in range(args.batches):
                step()
            # Wait for the last batch's placement to finish.
            to_host(tf.nest.flatten(step())[0])
        return (time.perf_counter() - start) * 1000 / args.batches

    check_same_batches()
    names = ["host", "dtensor_dataset", "dtensor_dataset_in_graph"]
    times = {name: [] for name in names}
    order = list(names)
    for _ in range(args.rounds):
        random.Random(len(times["host"])).shuffle(order)
        for name in order:
            times[name].append(time_path(name))
    print(
        json.dumps(
            {
                "benchmark": "bench_input_pipeline",
                "mesh": args.mesh,
                "seq_len": seq_len,
                "batch_size": batch_size,
                "batches_x_rounds": [args.batches, args.rounds],
                "ms_per_batch_median": {
                    k: round(statistics.median(v), 3) for k, v in times.items()
                },
                "ms_per_batch_range": {
                    k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
