"""`tf-mp train --task causal-lm`: fine-tune a keras-hub causal LM on plain
text (one example per line), on a mesh, optionally with LoRA; saves a
keras-hub preset that plain keras-hub loads."""

import os
import time

from tf_mp.cli import common
from tf_mp.cli import outputs
from tf_mp.utils.files import write_json


def check_arguments(args):
    """No TensorFlow: the text file and the numbers."""
    for name in ("lora_rank", "epochs", "seq_len", "batch_size"):
        common.positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if not args.data.endswith(".txt"):
        raise common.UsageError(
            f"--task causal-lm reads a .txt file, one text per line. Received: "
            f"--data {args.data}"
        )
    texts = read_texts(args.data)
    if len(texts) < args.batch_size:
        raise common.UsageError(
            f"--batch-size {args.batch_size} is more than the {len(texts)} lines "
            f"of {args.data}; lower it"
        )
    return texts


def read_texts(path):
    try:
        with open(path, encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise common.UsageError(f"No such data file: {path}") from None
    if not texts:
        raise common.UsageError(f"The dataset is empty: {path}")
    return texts


def load(args, distribution):
    """The preset's causal LM, on the mesh, with LoRA if asked, compiled."""
    import keras
    import keras_hub

    import tf_mp

    try:
        model = keras_hub.models.CausalLM.from_preset(args.preset)
    except (ValueError, FileNotFoundError) as error:
        raise common.UsageError(f"--preset {args.preset}: {error}") from None
    model.preprocessor.sequence_length = args.seq_len
    if distribution is not None:
        model = tf_mp.models.partition(model, mesh=distribution.mesh)
    if args.lora_rank:
        model.backbone.enable_lora(args.lora_rank)
        # Keras draws each `A` from its global seed state, which differs with
        # what ran before: drawn again from fixed seeds, the same on any mesh.
        lora_a = [
            w
            for w in model.weights
            if w.path.endswith(("lora_kernel_a", "lora_embeddings_a"))
        ]
        for seed, weight in enumerate(lora_a):
            weight.assign(keras.initializers.HeUniform(seed=seed)(weight.shape))
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def fit(model, texts, args):
    import tensorflow as tf

    # Full batches only: a mesh splits each along its batch axis.
    data = tf.data.Dataset.from_tensor_slices(texts).shuffle(len(texts), seed=0)
    data = data.batch(args.batch_size, drop_remainder=True)
    start = time.perf_counter()
    history = model.fit(data, epochs=args.epochs, verbose=common.verbosity())
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in history.history.items()}
    return history, seconds


def save(model, args, history, seconds, texts):
    """The model as a keras-hub preset (off the mesh, LoRA merged into its
    kernels by Keras's saving), `history.json` and `metrics.json`."""
    import tf_mp

    output = outputs.output_dir(args.output)
    directory = os.path.join(output, "model")
    tf_mp.models.unpartition(model).save_to_preset(directory)
    metrics = {
        "task": "causal-lm",
        "preset": args.preset,
        "data": args.data,
        "mesh": args.mesh,
        "lora_rank": args.lora_rank,
        "train_examples": len(texts),
        "epochs": args.epochs,
        "train_seconds": round(seconds, 2),
        "final_loss": round(history["loss"][-1], 4),
        "trainable_parameters": int(
            sum(int(w.numpy().size) for w in model.trainable_weights)
        ),
    }
    write_json(os.path.join(output, "history.json"), history)
    write_json(os.path.join(output, "metrics.json"), metrics)
    print(
        outputs.table(
            [
                ("final loss", metrics["final_loss"]),
                ("trainable parameters", f"{metrics['trainable_parameters']:,}"),
                ("training time (s)", metrics["train_seconds"]),
                ("model", directory),
            ],
            ["train --task causal-lm", ""],
        )
    )
    return metrics


def run(args):
    texts = check_arguments(args)
    distribution = common.setup_devices(args)
    model = load(args, distribution)
    print(f"Training on {len(texts)} texts, mesh {args.mesh or 'none'}")
    history, seconds = fit(model, texts, args)
    return save(model, args, history, seconds, texts)
