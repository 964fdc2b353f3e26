"""What a DTensor collective costs, without Keras or tf_mp.

A minimal pure-DTensor reproduction of the engine's fixed cost per step. On
meshes of 1, 2 and 4 devices (CPU virtual devices unless `--device GPU`), it
times one `tf.function` call of:

* `chain`: 300 small element-wise steps (tanh, multiply, add) on a replicated
  8x64 tensor: per-device dispatch, no communication;
* `separate`: 40 sums over the batch-split axis of 40 8x64 tensors: 40
  all-reduces, as DTensor emits one per gradient of a batch-split mesh;
* `grouped`: the same 40 sums from one concatenated tensor: one all-reduce.

Calls are interleaved across meshes in each round; medians over rounds are
reported in milliseconds. DTensor reads its all-reduce combining flag once per
process, so the script runs twice, in child processes, with the pass off and on
(on, DTensor groups `separate` itself), and prints one JSON line with both.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["CPU", "GPU"], default="CPU")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="Calls per round.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.child:
        return measure(args)
    results = {}
    for combine in ("0", "1"):
        env = dict(os.environ, DTENSOR_ENABLE_COMBINE_ALL_REDUCES_OPTIMIZATION=combine)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--device",
                args.device,
                "--rounds",
                str(args.rounds),
                "--calls",
                str(args.calls),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results["combine_on" if combine == "1" else "combine_off"] = json.loads(
            out.strip().splitlines()[-1]
        )
    print(
        json.dumps(
            {
                "benchmark": "bench_collectives",
                "device": args.device,
                "ms_per_call_median": results,
            }
        )
    )


def measure(args):
    import tensorflow as tf
    from tensorflow.experimental import dtensor

    physical = tf.config.list_physical_devices(args.device)
    if not physical:
        raise SystemExit(f"No {args.device} device.")
    if args.device == "CPU" or len(physical) == 1:
        config = tf.config.LogicalDeviceConfiguration
        memory = {"memory_limit": 2048} if args.device == "GPU" else {}
        tf.config.set_logical_device_configuration(
            physical[0], [config(**memory) for _ in range(4)]
        )

    def chain(x):
        for _ in range(300):
            x = tf.tanh(x) * 0.5 + 0.1
        return x

    def separate(xs):
        return [tf.reduce_sum(x, axis=0) for x in xs]

    def grouped(xs):
        flat = tf.concat([tf.reshape(x, [8, -1]) for x in xs], axis=1)
        return tf.reduce_sum(flat, axis=0)

    cases = {}
    for n in (1, 2, 4):
        mesh = dtensor.create_mesh(
            [("batch", n)], devices=[f"{args.device}:{i}" for i in range(n)]
        )
        replicated = dtensor.Layout.replicated(mesh, 2)
        split = dtensor.Layout.batch_sharded(mesh, "batch", 2)
        x = dtensor.copy_to_mesh(tf.random.normal([8, 64]), replicated)
        xs = [
            dtensor.relayout(
                dtensor.copy_to_mesh(tf.random.normal([8, 64]), replicated), split
            )
            for _ in range(40)
        ]
        for name, fn, arg in (
            ("chain", chain, x),
            ("separate", separate, xs),
            ("grouped", grouped, xs),
        ):
            cases[f"{name}@{n}"] = (tf.function(fn), arg)

    def call(function, arg):
        out = function(arg)
        for t in tf.nest.flatten(out):
            dtensor.unpack(t)[0].numpy()  # wait for every device's result

    times = {name: [] for name in cases}
    for function, arg in cases.values():
        call(function, arg)  # trace and compile
    for _ in range(args.rounds):
        for name, (function, arg) in cases.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                call(function, arg)
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    print(json.dumps({k: round(statistics.median(v), 3) for k, v in times.items()}))


if __name__ == "__main__":
    sys.exit(main())
