"""Fine-tune BERT on SST-2 with model parallelism, on a Colab TPU or a CPU/GPU mesh.

The working version of the well-known broken snippet (it imported a
`tensorflow_addons.models.bert` module that never existed, called `tf.gradients`
in eager mode and built the model twice). The same steps, with code that runs:

1. resolve the TPU (`tf_mp.tpu.tpu_strategy`), or fall back to a DTensor mesh
   on CPU/GPU and say so;
2. load BERT (`keras_hub.models.BertBackbone.from_preset`) and partition its
   encoder blocks (`tf_mp.models.partition_bert`) inside the strategy's scope;
3. train with Adam through plain `model.fit`, printing the losses.

On Colab (TPU runtime):

    python examples/bert_model_parallel_tpu.py --preset bert_base_en_uncased

Offline, on CPU, with a local keras-hub or Hugging Face BERT checkpoint (a
directory) and the GLUE SST-2 TSV files (`train.tsv`, `dev.tsv`):

    python examples/bert_model_parallel_tpu.py \\
        --preset path/to/bert --data-dir path/to/SST-2 --steps 20
"""

import argparse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        default="bert_base_en_uncased",
        help="keras-hub preset name or local checkpoint directory.",
    )
    parser.add_argument(
        "--data-dir",
        help="Directory with GLUE-format train.tsv and dev.tsv. "
        "Default: TFDS glue/sst2 (needs the internet once).",
    )
    parser.add_argument("--steps", type=int, default=100, help="Steps per epoch.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument(
        "--model-parallelism",
        type=int,
        default=2,
        help="Cores (TPU) or devices (mesh) that split the model.",
    )
    parser.add_argument(
        "--virtual-devices",
        type=int,
        default=8,
        help="Without TPU or GPU: logical CPU devices to create.",
    )
    return parser.parse_args(argv)


def load_sst2(data_dir, examples):
    """SST-2 train (first `examples` rows) and validation as `tf.data` pairs:
    from GLUE TSV files in `data_dir`, else from TFDS `glue/sst2`."""
    import tensorflow as tf

    from tf_mp import data

    source = data_dir or "glue/sst2"
    splits = (
        data.load(source, "train", limit=examples),
        data.load(source, "validation"),
    )
    return [
        tf.data.Dataset.from_tensor_slices((list(s.texts), s.labels)) for s in splits
    ]


def distribution(args):
    """The TPU strategy, or a DTensor mesh on CPU/GPU (and say which)."""
    import tf_mp

    found_tpu = tf_mp.tpu.tpu_present()
    strategy = tf_mp.auto_parallel(
        model_parallelism=args.model_parallelism,
        layout_map=tf_mp.bert_layout_map,
        virtual_devices=args.virtual_devices,
    )
    if found_tpu:
        print(
            f"TPU: {strategy.num_replicas_in_sync} replicas x "
            f"{args.model_parallelism} cores"
        )
    else:
        print(f"No TPU found: falling back to a DTensor mesh {strategy.mesh}.")
    return strategy


def main(argv=None):
    args = parse_args(argv)
    import tf_mp

    strategy = distribution(args)
    import keras
    import keras_hub

    from tf_mp.utils.classifiers import compile_arguments

    with strategy.scope():
        backbone = keras_hub.models.BertBackbone.from_preset(args.preset)
        backbone = tf_mp.models.partition_bert(backbone)
        classifier = keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=None
        )
        classifier.compile(
            **compile_arguments(
                keras.optimizers.Adam(args.learning_rate),
                "sparse_categorical_accuracy",
            )
        )
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        args.preset, sequence_length=args.seq_len
    )
    # Every batch must split evenly over the data-parallel devices.
    replicas = strategy.num_replicas_in_sync
    batch = args.batch_size - args.batch_size % replicas or replicas
    train, dev = load_sst2(args.data_dir, args.steps * batch)
    train, dev = (
        split.batch(batch, drop_remainder=True).map(preprocessor).cache()
        for split in (train, dev)
    )
    history = classifier.fit(
        train.repeat(),
        validation_data=dev,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
    )
    for name, values in history.history.items():
        print(f"{name}: {values[-1]:.4f}")
    return history


if __name__ == "__main__":
    main()
