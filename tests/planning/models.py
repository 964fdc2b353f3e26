"""Models no hand-written layout map covers, for the planner's tests."""

import keras
import keras_hub
import numpy as np

# Fixed cost-model constants: the tests do not measure the machine.
CONSTANTS = {"flops_per_s": 1e10, "latency_s": 1e-4, "bytes_per_s": 1e9}
BATCH = 8
SEQ = 8


def mlp(dropout=0.0, features=16, hidden=64, width=32):
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(hidden, activation="relu", name="up"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(width, name="down"),
            keras.layers.Dense(4, name="head"),
        ],
        name="mlp",
    )


def wide_mlp():
    """Large enough weights (>= 4096 elements) for FSDP to split."""
    return mlp(features=64, hidden=256, width=64)


def odd_mlp():
    """A feed-forward pair of 12 units: no model axis of 8 splits it."""
    return mlp(hidden=12, width=6)


def gqa_attention():
    """Keras's `GroupQueryAttention`: 4 query heads, 2 key/value heads."""
    x = keras.Input((SEQ, 32))
    attention = keras.layers.GroupQueryAttention(8, 4, 2, name="gqa")
    return keras.Model(x, attention(x, x))


def transformer(dropout=0.0):
    """A Functional transformer block on `keras.layers.MultiHeadAttention`."""
    keras.utils.set_random_seed(2)
    tokens = keras.Input((SEQ,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(64, 32, name="embed")(tokens)
    attended = keras.layers.MultiHeadAttention(4, 8, dropout=dropout, name="mha")(x, x)
    x = keras.layers.LayerNormalization(name="norm_1")(x + attended)
    h = keras.layers.Dense(64, activation="gelu", name="intermediate")(x)
    h = keras.layers.Dropout(dropout)(h)
    x = keras.layers.LayerNormalization(name="norm_2")(
        x + keras.layers.Dense(32, name="output")(h)
    )
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(4, name="logits")(pooled))


@keras.saving.register_keras_serializable(package="tf_mp_tests")
class Subclassed(keras.Model):
    """Auto-named sublayers: their names change each time one is built."""

    def __init__(self, units=64, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dropout = dropout
        self.first = keras.layers.Dense(units, activation="relu")
        self.drop = keras.layers.Dropout(dropout)
        self.second = keras.layers.Dense(32)
        self.out = keras.layers.Dense(4)

    def call(self, x, training=False):
        return self.out(self.second(self.drop(self.first(x), training=training)))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


def subclassed(dropout=0.0):
    keras.utils.set_random_seed(3)
    model = Subclassed(dropout=dropout)
    model(np.zeros((1, 16), "float32"))  # `build` would build no sublayer.
    return model


def vit(dropout=0.0):
    """A keras-hub ViT backbone with a classification head on its class token."""
    keras.utils.set_random_seed(4)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3),
        patch_size=4,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        mlp_dim=64,
        dropout_rate=dropout,
        attention_dropout=dropout,
    )
    images = keras.Input((8, 8, 3))
    features = backbone(images)
    return keras.Model(images, keras.layers.Dense(4, name="logits")(features[:, 0]))


def data(shape, integer=False):
    """`4 x BATCH` examples of `shape` (token ids below 64 with `integer`) and
    integer class targets."""
    rng = np.random.default_rng(0)
    shape = (4 * BATCH,) + tuple(shape)
    if integer:
        x = rng.integers(0, 64, shape).astype("int32")
    else:
        x = rng.standard_normal(shape).astype("float32")
    return x, rng.integers(0, 4, (4 * BATCH,)).astype("int32")
