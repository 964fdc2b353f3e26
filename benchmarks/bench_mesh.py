"""Step time and per-device memory of tensor- and data-parallel meshes.

`--model minilm` (default) fine-tunes the pretrained all-MiniLM-L6-v2 (BERT
architecture, 6 layers, hidden 384, 12 heads) as a 2-class `BertTextClassifier`
at seq 64, batch 32 on: single device, 1x2 and 1x4 tensor-parallel meshes
(`tf_mp.bert_layout_map`) and a 2x1 data-parallel mesh. `--model tiny` trains
a randomly initialised BERT (2 layers, hidden 64, 4 heads, intermediate 128) at
seq 16, batch 8 on single device, 1x2, 2x1 and 2x2: steps of a few
milliseconds, where the engine's fixed cost per step shows. `--family gpt2` or
`--family gemma` trains a small randomly initialised `GPT2CausalLM` /
`GemmaCausalLM` (4 layers, hidden 256, 8 heads, feed-forward 1024, vocabulary
8000) at seq 64, batch 8 on single device, 1x2 and 1x4, its backbone split by
`tf_mp.models.partition` under `tf_mp.models.backbone_layout_map`. Step times
are measured interleaved: every round times
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

SETUPS = {
    "minilm": {"single": None, "1x2": (1, 2), "1x4": (1, 4), "2x1": (2, 1)},
    "tiny": {
        "single": None,
        "1x2": (1, 2),
        "2x1": (2, 1),
        "2x2": (2, 2),
        # Without bert_layout_map's "token_embedding/output" key: the residual
        # stream left split along the hidden dimension, as before it existed.
        "1x2_hidden_split": (1, 2),
        "2x2_hidden_split": (2, 2),
    },
}
DEFAULTS = {  # seq_len, batch_size, steps per round
    "minilm": (64, 32, 3),
    "tiny": (16, 8, 20),
    "causal_lm": (64, 8, 5),
}
FAMILY_SETUPS = {"single": None, "1x2": (1, 2), "1x4": (1, 4)}
FAMILIES = ("bert", "gpt2", "gemma")
VOCAB = 8000
# Block weights of every family, by path.
BLOCK_PATH = ("transformer_layer_", "decoder_block_")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=sorted(SETUPS),
        default="minilm",
        help="The BERT classifier to time (with --family bert).",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="bert",
        help="gpt2 / gemma: a small causal LM of that keras-hub family instead.",
    )
    parser.add_argument("--preset", help="BERT preset name or local HF directory.")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, help="Steps per round.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=1,
        help="Above 1, every setup (the single device too) compiles with it and "
        "each round times `fit` over --steps batches instead of `train_on_batch`.",
    )
    parser.add_argument(
        "--setups",
        help="Comma-separated subset of the model's setups to time "
        "(the single-device reference is always included).",
    )
    parser.add_argument(
        "--device",
        choices=["CPU", "GPU"],
        default="CPU",
        help="Split the first device of this type into 4 logical devices.",
    )
    args = parser.parse_args()
    if args.family != "bert":
        args.model = "causal_lm"
    seq_len, batch_size, steps = DEFAULTS[args.model]
    args.seq_len = args.seq_len or seq_len
    args.batch_size = args.batch_size or batch_size
    args.steps = args.steps or steps
    if args.steps_per_execution < 1:
        parser.error(
            f"--steps-per-execution must be >= 1. Received: {args.steps_per_execution}"
        )
    known = FAMILY_SETUPS if args.family != "bert" else SETUPS[args.model]
    if args.setups:
        wanted = {"single", *args.setups.split(",")}
        unknown = sorted(wanted - set(known))
        if unknown:
            parser.error(
                f"--setups {args.setups!r}: unknown for --model {args.model}: "
                f"{', '.join(unknown)} (choose from {', '.join(known)})"
            )
        args.setups = {k: v for k, v in known.items() if k in wanted}
    else:
        args.setups = dict(known)
    return args


def default_preset():
    script = os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "scripts", "fetch_minilm.sh"
    )
    return subprocess.check_output(["bash", script], text=True).strip()


def build_classifier(preset, seq_len):
    """The benchmarked classifier, seeded: `preset` (MiniLM) or, with `None`,
    the tiny BERT (2 layers, hidden 64, 4 heads, intermediate 128). Dropout 0."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    if preset is not None:
        backbone = keras_hub.models.BertBackbone.from_preset(preset, dropout=0.0)
    else:
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=1000,
            num_layers=2,
            num_heads=4,
            hidden_dim=64,
            intermediate_dim=128,
            max_sequence_length=seq_len,
            dropout=0.0,
        )
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=0.0
    )


def build_causal_lm(family, seq_len):
    """A small causal LM of `family`, seeded, dropout 0: `(backbone, task)` where
    `task(backbone)` makes the task model around a backbone."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    shape = dict(vocabulary_size=VOCAB, num_layers=4, hidden_dim=256)
    if family == "gpt2":
        backbone = keras_hub.models.GPT2Backbone(
            **shape,
            num_heads=8,
            intermediate_dim=1024,
            max_sequence_length=seq_len,
            dropout=0.0,
        )
        task = keras_hub.models.GPT2CausalLM
    else:
        backbone = keras_hub.models.GemmaBackbone(
            **shape,
            num_query_heads=8,
            num_key_value_heads=8,
            head_dim=32,
            intermediate_dim=2048,  # two gating kernels of 1024
        )
        task = keras_hub.models.GemmaCausalLM
    return backbone, lambda b: task(b, preprocessor=None)


def main():
    args = parse_args()
    preset = None
    if args.model == "minilm":
        preset = args.preset or default_preset()

    import tf_mp

    memory = 16384 if args.device == "GPU" else None
    tf_mp.configure_virtual_devices(4, device_type=args.device, memory_limit=memory)
    import keras
    import numpy as np

    def classifier():
        return build_classifier(preset, args.seq_len)

    def causal_lm(mesh=None):
        backbone, task = build_causal_lm(args.family, args.seq_len)
        if mesh is None:
            return task(backbone)
        layout_map = tf_mp.models.backbone_layout_map(backbone, mesh)
        with tf_mp.ModelParallel(mesh, layout_map).scope():
            return task(tf_mp.models.partition(backbone))

    def build(name, mesh_shape):
        mesh = None
        if mesh_shape is not None:
            mesh = tf_mp.Mesh(
                {"batch": mesh_shape[0], "model": mesh_shape[1]},
                device_type=args.device,
            )
        if args.family != "bert":
            model = causal_lm(mesh)
        elif mesh is None:
            model = classifier()
        else:
            layout_map = tf_mp.bert_layout_map(mesh)
            if name.endswith("_hidden_split"):
                del layout_map[r"token_embedding/output$"]
            with tf_mp.ModelParallel(mesh, layout_map).scope():
                model = classifier()
        optimizer = (
            keras.optimizers.AdamW(2e-5) if preset else keras.optimizers.Adam(1e-3)
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=args.steps_per_execution,
        )
        return model

    rng = np.random.default_rng(0)
    b, s = args.batch_size, args.seq_len
    token_range = (1000, 30000) if preset else (1, 1000)
    if args.family != "bert":
        token_range = (1, VOCAB)
    x = {
        "token_ids": rng.integers(*token_range, size=(b, s)).astype("int32"),
        "segment_ids": np.zeros((b, s), "int32"),
        "padding_mask": np.ones((b, s), "int32"),
    }
    y = rng.integers(0, 2, size=(b,))
    if args.family != "bert":
        x = {"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]}
        y = rng.integers(1, VOCAB, size=(b, s))
    # `fit` data: --steps copies of the batch.
    xs = {k: np.concatenate([v] * args.steps) for k, v in x.items()}
    ys = np.concatenate([y] * args.steps)

    def run_steps(model):
        if args.steps_per_execution == 1:
            for _ in range(args.steps):
                model.train_on_batch(x, y)
        else:
            model.fit(xs, ys, batch_size=b, epochs=1, shuffle=False, verbose=0)

    models = {name: build(name, shape) for name, shape in args.setups.items()}
    losses = {}
    for name, model in models.items():  # Trace, build optimizer slots.
        losses[name] = model.train_on_batch(x, y, return_dict=True)["loss"]
        if args.steps_per_execution > 1:
            run_steps(model)  # Trace the unrolled steps.
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
            run_steps(models[name])
            seconds[name] = (time.perf_counter() - start) / args.steps
        single_times.append(seconds["single"])
        for name in ratios:
            ratios[name].append(seconds[name] / seconds["single"])

    def block_fraction(model):
        """Per-device bytes of the blocks' weights and optimizer slots."""
        report = tf_mp.shard_report(model, include_optimizer=True)
        rows = [r for r in report.rows if any(p in r.path for p in BLOCK_PATH)]
        return sum(r.bytes_per_device for r in rows) / sum(r.bytes for r in rows)

    def model_fraction(model):
        return tf_mp.shard_report(model, include_optimizer=True).fraction_per_device

    result = {
        "benchmark": "bench_mesh",
        "model": args.model,
        "family": args.family,
        "device": args.device,
        "preset": os.path.basename(os.path.normpath(preset)) if preset else None,
        "seq_len": s,
        "batch_size": b,
        "steps_x_rounds": [args.steps, args.rounds],
        "steps_per_execution": args.steps_per_execution,
        "all_reduces_grouped": tf_mp.parallel.dtensor.flags.all_reduces_grouped(),
        "single_device_step_s": round(statistics.median(single_times), 4),
        "step_time_ratio": {
            name: round(statistics.median(r), 3) for name, r in ratios.items()
        },
        "step_time_ratio_range": {
            name: [round(min(r), 3), round(max(r), 3)] for name, r in ratios.items()
        },
        "encoder_bytes_per_device_fraction": {
            name: round(block_fraction(models[name]), 4)
            for name in models
            if name != "single"
        },
        "model_bytes_per_device_fraction": {
            name: round(model_fraction(models[name]), 4)
            for name in models
            if name != "single"
        },
        "first_step_loss": {k: round(v, 6) for k, v in losses.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
