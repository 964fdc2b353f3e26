"""Students for an encoder teacher: copied blocks, sliced widths, or a fresh config.

Teachers are keras-hub encoders built from keras-hub's `TransformerEncoder`
block: `BertBackbone`, `RobertaBackbone`, `XLMRobertaBackbone`,
`DistilBertBackbone` and `ElectraBackbone`, a keras-hub text classifier on one
(`BertTextClassifier`, `RobertaTextClassifier`, ...), or either after
`tf_mp.models.partition` (a `ParallelRobertaBackbone` gives a
`RobertaBackbone` student). Every student is the teacher's keras-hub class and
keeps its vocabulary, sequence length, segments and (ELECTRA) embedding size,
so the teacher's tokenizer and preprocessor serve both. A classifier teacher
gives a classifier student, its head copied (sliced to a narrower width).

Not supported: ALBERT (one block shared by several layers, so there are no
per-layer blocks to pick) and decoder families (GPT-2, Gemma, Llama and the
families built like them); the `Distiller`'s logits terms take any student,
its hidden-state and attention terms any keras-hub `TransformerEncoder` blocks.
"""

import inspect
import re

import keras
import keras_hub
import numpy as np

from tf_mp.distillation.features import encoder_blocks

_BLOCK = re.compile(r"^transformer_layer_(\d+)/")
TEACHER_BACKBONES = (
    keras_hub.models.BertBackbone,
    keras_hub.models.RobertaBackbone,  # and XLMRobertaBackbone, a subclass
    keras_hub.models.DistilBertBackbone,
    keras_hub.models.ElectraBackbone,
)


def encoder_config(teacher):
    """The keras-hub backbone arguments of a teacher (backbone or classifier,
    plain or partitioned): `{"num_layers": ..., "hidden_dim": ..., ...}` as its
    keras-hub class takes them (no `name` or `dtype`)."""
    backbone = _backbone(teacher)
    cls = _keras_hub_class(backbone)
    config = backbone.get_config()
    accepted = inspect.signature(cls.__init__).parameters
    return {
        k: v for k, v in config.items() if k in accepted and k not in ("name", "dtype")
    }


def bert_config(teacher):
    """`encoder_config`, under its name from when teachers were BERT only."""
    return encoder_config(teacher)


def student_from_teacher(teacher, layers=None, num_heads=None, intermediate_dim=None):
    """A student initialised from the teacher's weights.

    With `layers` only, DistilBERT-style: the teacher's width, the listed
    blocks copied (e.g. `[0, 2, 4]`), embeddings and pooler copied. With
    `num_heads` and/or `intermediate_dim` below the teacher's, a narrower
    student sliced from it: each block keeps its `num_heads` most important
    heads (largest summed L2 norm of their query, key, value and output
    weights) and its `intermediate_dim` most important feed-forward units
    (largest product of input- and output-weight norms); the hidden size becomes
    `num_heads x head size` and keeps the residual dimensions whose weights
    (embeddings, and every matrix that reads or writes them) have the largest
    norms.

    Args:
        teacher: an encoder backbone or classifier (see the module docstring).
        layers: teacher block indices to keep, in order. Defaults to all.
        num_heads: heads per block, <= the teacher's. Defaults to the teacher's.
        intermediate_dim: feed-forward units, <= the teacher's. Defaults to
            the teacher's.

    Returns:
        A backbone of the teacher's keras-hub class (e.g. `BertBackbone`), or
        a classifier of its class on one when the teacher is a classifier.
    """
    config = encoder_config(teacher)
    depth = config["num_layers"]
    layers = list(range(depth)) if layers is None else [int(i) for i in layers]
    if not layers or any(not 0 <= i < depth for i in layers):
        raise ValueError(
            f"`layers` must name blocks of the teacher, which has {depth} (0-"
            f"{depth - 1}). Received: layers={layers}"
        )
    heads = _within("num_heads", num_heads, config["num_heads"])
    units = _within("intermediate_dim", intermediate_dim, config["intermediate_dim"])
    head_size = config["hidden_dim"] // config["num_heads"]
    student_config = dict(
        config,
        num_layers=len(layers),
        num_heads=heads,
        hidden_dim=heads * head_size,
        intermediate_dim=units,
    )
    source = {w.path: keras.ops.convert_to_numpy(w) for w in teacher.weights}
    keep = _selection(source, layers, heads, units, config, student_config)
    student = _build(teacher, student_config)
    for weight in student.weights:
        weight.assign(_slice(weight.path, tuple(weight.shape), source, layers, keep))
    return student


def student_from_config(teacher, num_layers, hidden_dim, num_heads, intermediate_dim):
    """A randomly initialised student of the given size, sharing the teacher's
    vocabulary, sequence length and segments (same kind: backbone or
    classifier)."""
    config = dict(
        encoder_config(teacher),
        num_layers=int(num_layers),
        hidden_dim=int(hidden_dim),
        num_heads=int(num_heads),
        intermediate_dim=int(intermediate_dim),
    )
    if config["hidden_dim"] % config["num_heads"]:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. Received: "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}"
        )
    return _build(teacher, config)


def encoder_parameters(model):
    """Parameters in the encoder blocks of `model` (embeddings and head excluded)."""
    return int(sum(block.count_params() for block in encoder_blocks(model)))


def _backbone(teacher):
    if isinstance(teacher, keras_hub.models.TextClassifier):
        teacher = teacher.backbone
    if isinstance(teacher, TEACHER_BACKBONES):
        return teacher
    supported = ", ".join(cls.__name__ for cls in TEACHER_BACKBONES)
    raise TypeError(
        f"`teacher` must be a keras-hub encoder backbone ({supported}, or "
        "XLMRobertaBackbone) or a text classifier on one, plain or partitioned. "
        f"Received: teacher={type(teacher).__name__}"
    )


def _keras_hub_class(model):
    """The keras-hub class of `model` (tf_mp's `Parallel*` subclasses give
    their keras-hub base)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("keras_hub."):
            return cls
    raise TypeError(f"{type(model).__name__} is not a keras-hub model.")


def _build(teacher, config):
    original = _backbone(teacher)
    backbone = _keras_hub_class(original)(**config, dtype=original.dtype_policy)
    if not isinstance(teacher, keras_hub.models.TextClassifier):
        return backbone
    task_class = _keras_hub_class(teacher)
    accepted = inspect.signature(task_class.__init__).parameters
    head = {
        k: v
        for k, v in teacher.get_config().items()
        if k in accepted and k not in ("backbone", "preprocessor", "name")
    }
    return task_class(backbone, preprocessor=teacher.preprocessor, **head)


def _within(argument, value, maximum):
    if value is None:
        return maximum
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int or not 1 <= value <= maximum:
        raise ValueError(
            f"`{argument}` must be an int from 1 to the teacher's {maximum}. "
            f"Received: {argument}={value!r}"
        )
    return value


def _norm(array, axes):
    return np.sqrt(np.sum(np.square(array), axis=axes))


def _selection(source, layers, heads, units, config, student_config):
    """Indices to keep: residual dims, and per kept block its heads and units."""
    hidden = config["hidden_dim"]
    dims_score = np.zeros(hidden)
    for path, value in source.items():
        # The token embedding, or ELECTRA's projection from its smaller one.
        if path.endswith(
            ("token_embedding/embeddings", "embeddings_projection/kernel")
        ):
            if value.shape[-1] == hidden:
                dims_score = dims_score + _norm(value, 0)
    keep = {"blocks": {}}
    for i in layers:
        p = f"transformer_layer_{i}/"
        attention = p + "self_attention_layer/"
        qkv = [source[attention + n + "/kernel"] for n in ("query", "key", "value")]
        output = source[attention + "attention_output/kernel"]  # (H, hd, D)
        up = source[p + "feedforward_intermediate_dense/kernel"]  # (D, F)
        down = source[p + "feedforward_output_dense/kernel"]  # (F, D)
        head_score = sum(_norm(k, (0, 2)) for k in qkv) + _norm(output, (1, 2))
        unit_score = _norm(up, 0) * _norm(down, 1)
        keep["blocks"][i] = (_top(head_score, heads), _top(unit_score, units))
        dims_score = dims_score + sum(_norm(k, (1, 2)) for k in qkv)
        dims_score = dims_score + _norm(output, (0, 1)) + _norm(up, 1) + _norm(down, 0)
    keep["dims"] = _top(dims_score, student_config["hidden_dim"])
    keep["hidden_dim"] = hidden
    return keep


def _top(scores, k):
    """Indices of the k largest scores, in their original order."""
    return np.sort(np.argsort(-np.asarray(scores), kind="stable")[:k])


def _slice(path, shape, source, layers, keep):
    """The teacher's value for the student weight at `path` (of `shape`)."""
    d = keep["dims"]
    match = _BLOCK.match(path)
    if not match:
        # Embeddings, their norm and projection, pooler, head: any dimension
        # narrower than the teacher's is the residual width.
        value = source[path]
        for axis, (size, teacher_size) in enumerate(zip(shape, value.shape)):
            if size != teacher_size:
                if teacher_size != keep["hidden_dim"]:
                    raise ValueError(
                        f"Cannot slice '{path}' {value.shape} -> {shape}: only the "
                        f"hidden width ({keep['hidden_dim']}) narrows outside blocks."
                    )
                value = np.take(value, d, axis=axis)
        return value
    block = layers[int(match.group(1))]
    heads, units = keep["blocks"][block]
    value = source[_BLOCK.sub(f"transformer_layer_{block}/", path)]
    name = path.split("/", 1)[1]
    rules = {
        r"(query|key|value)/kernel$": lambda v: v[d][:, heads],
        r"(query|key|value)/bias$": lambda v: v[heads],
        r"attention_output/kernel$": lambda v: v[heads][:, :, d],
        r"feedforward_intermediate_dense/kernel$": lambda v: v[d][:, units],
        r"feedforward_intermediate_dense/bias$": lambda v: v[units],
        r"feedforward_output_dense/kernel$": lambda v: v[units][:, d],
    }
    for pattern, rule in rules.items():
        if re.search(pattern, name):
            return rule(value)
    return value[d]  # Layer norms and biases over the residual dims.
