"""What distillation reads from a model, in one forward pass: its outputs, and the
hidden states and attention distributions of encoder blocks nested inside it."""

import contextlib

import keras
import keras_hub

from tf_mp.parallel import _dtensor_bridge

LOGITS = "logits"


def hidden_key(block):
    return f"hidden_state_{block}"


def attention_key(block):
    return f"attention_{block}"


def encoder_blocks(model):
    """The keras-hub `TransformerEncoder` blocks (tf_mp's parallel ones included)
    of `model`, in call order, however deep inside nested models they sit."""
    blocks = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras_hub.layers.TransformerEncoder):
            blocks.append(layer)
        elif isinstance(layer, keras.Model):
            blocks.extend(encoder_blocks(layer))
    return blocks


def feature_model(model, hidden_blocks=(), attention_blocks=(), role="model"):
    """A functional model sharing `model`'s layers that returns, in one pass,
    `{"logits": model's output, "hidden_state_i": block i's output,
    "attention_i": block i's attention distribution (batch, heads, query, key)}`
    for the requested block indices.

    Args:
        model: a functional Keras model (keras-hub tasks and backbones, models
            returned by `tf_mp.models.partition_bert`).
        hidden_blocks, attention_blocks: block indices (`encoder_blocks` order).
        role: `"teacher"` or `"student"`, for error messages.
    """
    if not _dtensor_bridge.is_functional(model):
        raise ValueError(
            f"The {role} must be a functional Keras model (keras-hub tasks and "
            f"backbones are). Received: {role}={type(model).__name__}"
        )
    blocks = encoder_blocks(model)
    for index in (*hidden_blocks, *attention_blocks):
        if not 0 <= index < len(blocks):
            raise ValueError(
                f"The {role} has {len(blocks)} encoder blocks (0-"
                f"{len(blocks) - 1}); block {index} does not exist."
            )
    wanted_hidden = {id(blocks[i]): i for i in hidden_blocks}
    wanted_attention = {id(blocks[i]): i for i in attention_blocks}
    captured = {}

    def call(layer, *args, **kwargs):
        if _dtensor_bridge.is_functional(layer):  # Replay nested models inline.
            inputs = args[0] if len(args) == 1 else list(args)
            inner = keras.models.clone_model(
                layer, input_tensors=inputs, clone_function=_same, call_function=call
            )
            return inner.output
        if id(layer) in wanted_attention:
            outputs, scores = _WithAttentionScores(layer)(*args, **kwargs)
            captured[attention_key(wanted_attention[id(layer)])] = scores
        else:
            outputs = layer(*args, **kwargs)
        if id(layer) in wanted_hidden:
            captured[hidden_key(wanted_hidden[id(layer)])] = outputs
        return outputs

    # A model sharded on a mesh gets its feature model built in the same scope,
    # so it trains and predicts with the mesh's step functions too.
    distribution = _dtensor_bridge.distribution_of(model)
    with distribution.scope() if distribution else contextlib.nullcontext():
        replayed = keras.models.clone_model(
            model, clone_function=_same, call_function=call
        )
        outputs = {LOGITS: replayed.output, **captured}
        return keras.Model(replayed.inputs, outputs, name=f"{model.name}_features")


def _same(layer):
    return layer


class _WithAttentionScores(keras.layers.Layer):
    """Calls an encoder block with `return_attention_scores=True`; declares the
    two outputs so the block can be traced symbolically."""

    def __init__(self, block, **kwargs):
        super().__init__(name=f"{block.name}_with_attention_scores", **kwargs)
        self.block = block

    def call(self, inputs, **kwargs):
        return self.block(inputs, return_attention_scores=True, **kwargs)

    def compute_output_spec(self, inputs, **kwargs):
        batch, length = inputs.shape[0], inputs.shape[1]
        scores = (batch, self.block.num_heads, length, length)
        return (
            keras.KerasTensor(inputs.shape, inputs.dtype),
            keras.KerasTensor(scores, inputs.dtype),
        )
