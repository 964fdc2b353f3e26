"""What distillation reads from a model, in one forward pass: its outputs, and the
hidden states and attention distributions of encoder blocks nested inside it."""

import keras
import keras_hub

from tf_mp.parallel import keras_compat
from tf_mp.parallel.model_parallel import distribution_of
from tf_mp.utils.scopes import optional_scope

LOGITS = "logits"


def hidden_key(block):
    return f"hidden_state_{block}"


def attention_key(block):
    return f"attention_{block}"


def layer_key(name):
    """The key of a named layer's output (`keras.distillation.FeatureDistillation`)."""
    return f"layer/{name}"


def get(outputs, key):
    """`outputs[key]`, or an error saying how to get it into a teacher cache."""
    if key not in outputs:
        raise ValueError(
            f"The cached teacher outputs have no {key!r} (they hold "
            f"{sorted(outputs)}). Build the `TeacherCache` with the "
            "blocks this distiller reads (`distiller.teacher_blocks_needed`)."
        )
    return outputs[key]


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


def feature_model(
    model, hidden_blocks=(), attention_blocks=(), role="model", layer_names=()
):
    """A functional model sharing `model`'s layers that returns, in one pass,
    `{"logits": model's output, "hidden_state_i": block i's output,
    "attention_i": block i's attention distribution (batch, heads, query, key),
    "layer/<name>": the named layer's output}` for the requested blocks/layers.

    Args:
        model: a functional Keras model (keras-hub tasks and backbones, models
            returned by `tf_mp.models.partition_bert`). A built `Sequential`
            model serves named layers only.
        hidden_blocks, attention_blocks: block indices (`encoder_blocks` order).
        role: `"teacher"` or `"student"`, for error messages.
        layer_names: names of layers (at the model's top level) whose outputs
            to return.
    """
    if isinstance(model, keras.Sequential) and not (hidden_blocks or attention_blocks):
        return _named_layer_model(model, layer_names, role)
    if not keras_compat.is_functional(model):
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
    wanted_layers = {id(_layer(model, name, role)): name for name in layer_names}
    captured = {}

    def call(layer, *args, **kwargs):
        if keras_compat.is_functional(layer):  # Replay nested models inline.
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
        if id(layer) in wanted_layers:
            captured[layer_key(wanted_layers[id(layer)])] = outputs
        return outputs

    # A model sharded on a mesh gets its feature model built in the same scope,
    # so it trains and predicts with the mesh's step functions too.
    distribution = distribution_of(model)
    with optional_scope(distribution):
        replayed = keras.models.clone_model(
            model, clone_function=_same, call_function=call
        )
        outputs = {LOGITS: replayed.output, **captured}
        return keras.Model(replayed.inputs, outputs, name=f"{model.name}_features")


def _same(layer):
    return layer


def _layer(model, name, role):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"The {role} has no layer named {name!r}. Received: "
            f"{role}_layer_name={name!r}"
        ) from None


def _named_layer_model(model, layer_names, role):
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Reading named layers needs a built {role} with known inputs (give "
            f"it a `keras.Input`). Received: {role}={model.name!r}"
        )
    outputs = {LOGITS: model.outputs[0]}
    for name in layer_names:
        outputs[layer_key(name)] = _layer(model, name, role).output
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")


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


class Untracked:
    """What Keras must not track: the feature models (they share the teacher's
    and student's layers, tracked once, as themselves), and the student's
    features of the step being traced. Keras's trainer calls `call` (which
    runs the student once, for logits and features) and then `compute_loss`
    with the logits; `student_pass` carries the features from one to the
    other, keyed by the logits tensor so a mismatch recomputes them."""

    student = None
    teacher = None
    student_pass = None
