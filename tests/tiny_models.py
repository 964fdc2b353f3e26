"""Tiny models and data shared by the tests. Same seed -> same weights."""

import keras
import keras_hub
import numpy as np

import tf_mp

NUM_SAMPLES = 32
BATCH_SIZE = 16
VOCAB = 64
SEQ = 8


def mlp():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(16, activation="tanh", name="middle"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="mlp",
    )


def mlp_layout_map(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"hidden/kernel"] = (None, "model")  # column-parallel
    layout_map[r"hidden/bias"] = ("model",)
    layout_map[r"middle/kernel"] = ("model", None)  # row-parallel
    return layout_map


def mlp_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_SAMPLES, 8)).astype("float32")
    y = rng.integers(0, 4, size=(NUM_SAMPLES,))
    return x, y


def embedding_model():
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input((SEQ,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 8, name="embedding"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="embedder",
    )


def embedding_layout_map(mesh):
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"embedding/embeddings"] = (None, "model")
    layout_map[r"hidden/kernel"] = (None, "model")
    return layout_map


def embedding_data():
    rng = np.random.default_rng(1)
    # Repeated token ids make the sparse gradient carry duplicate indices.
    x = rng.integers(0, VOCAB // 4, size=(NUM_SAMPLES, SEQ)).astype("int32")
    y = rng.integers(0, 4, size=(NUM_SAMPLES,))
    return x, y


def _bert_backbone(dropout):
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_heads=4,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=SEQ,
        dropout=dropout,
    )


def bert_classifier():
    keras.utils.set_random_seed(3)
    return keras_hub.models.BertTextClassifier(
        _bert_backbone(dropout=0.0), num_classes=2, preprocessor=None, dropout=0.0
    )


def partitioned_bert_with_dropout():
    """keras-hub's defaults for fine-tuning (dropout 0.1 everywhere), with
    tf_mp's partitioned blocks: dropout on replicated and sharded activations."""
    keras.utils.set_random_seed(4)
    return keras_hub.models.BertTextClassifier(
        tf_mp.models.partition_bert(_bert_backbone(dropout=0.1)),
        num_classes=2,
        preprocessor=None,
        dropout=0.1,
    )


def bert_data():
    rng = np.random.default_rng(2)
    lengths = rng.integers(3, SEQ + 1, size=(NUM_SAMPLES,))
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    x = {
        "token_ids": rng.integers(1, VOCAB, size=(NUM_SAMPLES, SEQ)).astype("int32")
        * mask,
        "segment_ids": np.zeros((NUM_SAMPLES, SEQ), "int32"),
        "padding_mask": mask,
    }
    y = rng.integers(0, 2, size=(NUM_SAMPLES,))
    return x, y


MODELS = {
    "mlp": (mlp, mlp_layout_map, mlp_data),
    "embedding": (embedding_model, embedding_layout_map, embedding_data),
    "bert": (bert_classifier, tf_mp.bert_layout_map, bert_data),
    "bert_dropout": (partitioned_bert_with_dropout, tf_mp.bert_layout_map, bert_data),
}

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
    "adamw": lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05),
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.1),
}


def loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def keras_device_mesh(shape):
    """A `keras.distribution.DeviceMesh` of `(batch, model)` CPU devices."""
    return keras.distribution.DeviceMesh(
        shape=shape,
        axis_names=("batch", "model"),
        devices=[f"cpu:{i}" for i in range(shape[0] * shape[1])],
    )


def mesh_axes(weight):
    """The mesh axis of each dimension of a Keras weight (`None`: whole), read
    from its DTensor layout; `None` for a weight off the mesh."""
    layout = getattr(weight.value, "layout", None)
    if layout is None:
        return None
    return tuple(
        None if axis == "unsharded" else axis for axis in layout.sharding_specs
    )
