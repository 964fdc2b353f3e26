"""The cost of the process boundary: one (2,2) mesh as 2 processes x 2 devices
vs 1 process x 4 devices vs one device.

Fine-tunes the pretrained all-MiniLM-L6-v2 as a 2-class `BertTextClassifier`
(seq 64, batch 32, AdamW, `tf_mp.bert_layout_map`) in three setups held by
long-lived workers: `single` and `1proc_2x2` share one process of 4 virtual
CPUs; `2proc_2x2` is 2 processes of 2 virtual CPUs joined by `tf_mp.initialize`
on loopback. Every round asks each setup, in a shuffled order, for `--steps`
`train_on_batch` steps (the two processes of `2proc_2x2` together) and reports
ratios against the single device of the same round; medians over rounds. Prints
one JSON line. `--model tiny` uses the tiny BERT of `bench_mesh.py --model tiny`.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_mesh import build_classifier  # noqa: E402
from bench_mesh import default_preset  # noqa: E402

from tf_mp.cli.launch import free_ports  # noqa: E402 (imports no TensorFlow)

DEFAULTS = {"minilm": (64, 32, 3), "tiny": (16, 8, 20)}  # seq, batch, steps


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="minilm")
    parser.add_argument("--preset", help="BERT preset name or local HF directory.")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, help="Steps per round.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # setups of a worker
    args = parser.parse_args()
    seq_len, batch_size, steps = DEFAULTS[args.model]
    args.seq_len, args.batch_size = seq_len, batch_size
    args.steps = args.steps or steps
    if args.model == "minilm" and not args.preset:
        args.preset = default_preset()
    return args


def worker(args):
    """Builds its setups, then answers each `NAME` line on stdin with the
    seconds per step of `--steps` steps (and `loss NAME` with the first loss)."""
    import tf_mp

    tf_mp.initialize()  # 2proc_2x2: joins the other process; else nothing.
    if tf_mp.parallel.num_processes() == 1:
        tf_mp.configure_virtual_devices(4)
    import keras
    import numpy as np

    def classifier():
        return build_classifier(args.preset, args.seq_len)

    def build(name):
        if name == "single":
            model = classifier()
        else:
            mesh = tf_mp.Mesh({"batch": 2, "model": 2})
            with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
                model = classifier()
        optimizer = (
            keras.optimizers.AdamW(2e-5) if args.preset else keras.optimizers.Adam(1e-3)
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    rng = np.random.default_rng(0)
    b, s = args.batch_size, args.seq_len
    tokens = (1000, 30000) if args.preset else (1, 1000)
    x = {
        "token_ids": rng.integers(*tokens, size=(b, s)).astype("int32"),
        "segment_ids": np.zeros((b, s), "int32"),
        "padding_mask": np.ones((b, s), "int32"),
    }
    y = rng.integers(0, 2, size=(b,))
    models = {name: build(name) for name in args.worker.split(",")}
    losses = {
        name: float(model.train_on_batch(x, y, return_dict=True)["loss"])
        for name, model in models.items()
    }
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "loss":
            print(losses[command[1]], flush=True)
            continue
        model = models[command[0]]
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        print((time.perf_counter() - start) / args.steps, flush=True)


class Worker:
    def __init__(self, args, setups, env=None):
        command = [sys.executable, os.path.abspath(__file__), "--model", args.model]
        command += ["--steps", str(args.steps), "--worker", setups]
        if args.preset:
            command += ["--preset", args.preset]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        )

    def send(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a worker exited with status {self.process.wait()}")
        return line.strip()


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    one_process = Worker(args, "single,1proc_2x2")
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    two_processes = [
        Worker(
            args,
            "2proc_2x2",
            {
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses,
                "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
                "TF_MP_VIRTUAL_DEVICES": "2",
            },
        )
        for index in range(2)
    ]
    holders = {
        "single": [one_process],
        "1proc_2x2": [one_process],
        "2proc_2x2": two_processes,
    }
    try:
        for worker_ in [one_process, *two_processes]:
            assert worker_.receive() == "ready"
        losses = {}
        for name, workers in holders.items():
            workers[0].send(f"loss {name}")
            losses[name] = round(float(workers[0].receive()), 6)
        ratios = {"1proc_2x2": [], "2proc_2x2": []}
        single_times = []
        order = list(holders)
        for _ in range(args.rounds):
            random.shuffle(order)
            seconds = {}
            for name in order:
                for worker_ in holders[name]:  # Both processes step together.
                    worker_.send(name)
                seconds[name] = max(float(w.receive()) for w in holders[name])
            single_times.append(seconds["single"])
            for name in ratios:
                ratios[name].append(seconds[name] / seconds["single"])
        boundary = [
            two / one for two, one in zip(ratios["2proc_2x2"], ratios["1proc_2x2"])
        ]
    finally:
        for worker_ in [one_process, *two_processes]:
            worker_.process.kill()
    print(
        json.dumps(
            {
                "benchmark": "bench_multiprocess",
                "model": args.model,
                "preset": os.path.basename(os.path.normpath(args.preset))
                if args.preset
                else None,
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "steps_x_rounds": [args.steps, args.rounds],
                "single_device_step_s": round(statistics.median(single_times), 4),
                "step_time_ratio": {
                    k: round(statistics.median(v), 3) for k, v in ratios.items()
                },
                "step_time_ratio_range": {
                    k: [round(min(v), 3), round(max(v), 3)] for k, v in ratios.items()
                },
                "process_boundary_ratio": round(statistics.median(boundary), 3),
                "process_boundary_ratio_range": [
                    round(min(boundary), 3),
                    round(max(boundary), 3),
                ],
                "first_step_loss": losses,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
