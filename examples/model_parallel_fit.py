"""Train a keras-hub BERT classifier tensor-parallel on a DTensor mesh.

Splits the CPU (or uses the GPUs/TPU present) into a `batch x model` mesh, shards
a BertTextClassifier Megatron-style with `tf_mp.bert_layout_map`, trains it with
plain `model.fit`, prints the shard report, and checks the losses against the
same model trained on one device.

    python examples/model_parallel_fit.py --mesh batch=2,model=4
"""

import argparse


def parse_mesh(text):
    from tf_mp.utils.pairs import parse_pairs

    try:
        return parse_pairs(text, "--mesh")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mesh", type=parse_mesh, default={"batch": 2, "model": 4})
    parser.add_argument("--virtual-devices", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()

    import tf_mp

    tf_mp.configure_virtual_devices(args.virtual_devices)
    import keras
    import keras_hub
    import numpy as np

    from tf_mp.utils.classifiers import compile_arguments

    rng = np.random.default_rng(0)
    seq, vocab = 32, 1000
    x = {
        "token_ids": rng.integers(1, vocab, size=(256, seq)).astype("int32"),
        "segment_ids": np.zeros((256, seq), "int32"),
        "padding_mask": np.ones((256, seq), "int32"),
    }
    y = (x["token_ids"][:, 0] > vocab // 2).astype("int32")

    def build():
        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=vocab,
            num_layers=args.layers,
            num_heads=8,
            hidden_dim=128,
            intermediate_dim=512,
            max_sequence_length=seq,
            dropout=0.0,
        )
        model = keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=None, dropout=0.0
        )
        model.compile(
            **compile_arguments(
                keras.optimizers.Adam(1e-3), "sparse_categorical_accuracy"
            )
        )
        return model

    mesh = tf_mp.Mesh(args.mesh)
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        sharded = build()
    print(f"{mesh}\n{tf_mp.shard_report(sharded)}\n")
    history = sharded.fit(x, y, batch_size=32, epochs=args.epochs, shuffle=False)
    single = build().fit(
        x, y, batch_size=32, epochs=args.epochs, shuffle=False, verbose=0
    )
    print("\nepoch  loss (mesh)  loss (one device)")
    for epoch, (a, b) in enumerate(
        zip(history.history["loss"], single.history["loss"])
    ):
        print(f"{epoch + 1:>5}  {a:11.6f}  {b:17.6f}")


if __name__ == "__main__":
    main()
