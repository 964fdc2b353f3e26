"""Students for a BERT teacher: copied blocks, sliced widths, or a fresh config.

Every student keeps the teacher's vocabulary, sequence length and segments, so
the teacher's tokenizer and preprocessor serve both. Teachers may be a keras-hub
`BertBackbone`, a `BertTextClassifier` on one, or either after
`tf_mp.models.partition_bert`; a classifier teacher gives a classifier student
(its head copied when the widths allow).
"""

import re

import keras
import keras_hub
import numpy as np

from tf_mp.distillation.features import encoder_blocks

_BLOCK = re.compile(r"^transformer_layer_(\d+)/")


def bert_config(teacher):
    """The `BertBackbone` arguments of a teacher (backbone or classifier, plain
    or partitioned), read from its layers."""
    backbone = _backbone(teacher)
    if isinstance(backbone, keras_hub.models.BertBackbone):
        config = backbone.get_config()
        return {k: config[k] for k in _CONFIG_KEYS}
    blocks = encoder_blocks(backbone)
    token = backbone.get_layer("token_embedding")
    return {
        "vocabulary_size": int(token.input_dim),
        "num_layers": len(blocks),
        "num_heads": int(blocks[0].num_heads),
        "hidden_dim": int(token.output_dim),
        "intermediate_dim": int(blocks[0].intermediate_dim),
        "dropout": float(blocks[0].dropout),
        "max_sequence_length": int(
            backbone.get_layer("position_embedding").sequence_length
        ),
        "num_segments": int(backbone.get_layer("segment_embedding").input_dim),
    }


_CONFIG_KEYS = (
    "vocabulary_size",
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "dropout",
    "max_sequence_length",
    "num_segments",
)


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
        teacher: a BERT backbone or classifier (see the module docstring).
        layers: teacher block indices to keep, in order. Defaults to all.
        num_heads: heads per block, <= the teacher's. Defaults to the teacher's.
        intermediate_dim: feed-forward units, <= the teacher's. Defaults to
            the teacher's.

    Returns:
        A `keras_hub.models.BertBackbone`, or a `BertTextClassifier` on one
        when the teacher is a classifier.
    """
    config = bert_config(teacher)
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
    keep = _selection(source, layers, heads, units, head_size, student_config)
    student = _build(teacher, student_config)
    for weight in student.weights:
        weight.assign(_slice(weight.path, source, layers, keep))
    return student


def student_from_config(teacher, num_layers, hidden_dim, num_heads, intermediate_dim):
    """A randomly initialised student of the given size, sharing the teacher's
    vocabulary, sequence length and segments (same kind: backbone or
    classifier)."""
    config = dict(
        bert_config(teacher),
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
        return teacher.backbone
    if isinstance(teacher, keras.Model) and encoder_blocks(teacher):
        return teacher
    raise TypeError(
        "`teacher` must be a BERT backbone or a keras-hub `BertTextClassifier`. "
        f"Received: teacher={type(teacher).__name__}"
    )


def _build(teacher, config):
    backbone = keras_hub.models.BertBackbone(
        **config, dtype=_backbone(teacher).dtype_policy
    )
    if not isinstance(teacher, keras_hub.models.TextClassifier):
        return backbone
    task = teacher.get_config()
    return keras_hub.models.BertTextClassifier(
        backbone,
        num_classes=task["num_classes"],
        preprocessor=teacher.preprocessor,
        activation=task["activation"],
        dropout=task["dropout"],
    )


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


def _selection(source, layers, heads, units, head_size, config):
    """Indices to keep: residual dims, and per kept block its heads and units."""
    hidden = config["hidden_dim"]
    dims_score = _norm(source["token_embedding/embeddings"], 0)
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
    keep["dims"] = _top(dims_score, hidden)
    return keep


def _top(scores, k):
    """Indices of the k largest scores, in their original order."""
    return np.sort(np.argsort(-np.asarray(scores), kind="stable")[:k])


def _slice(path, source, layers, keep):
    match = _BLOCK.match(path)
    if match:
        block = layers[int(match.group(1))]
        heads, units = keep["blocks"][block]
        value = source[_BLOCK.sub(f"transformer_layer_{block}/", path)]
    else:
        heads = units = None
        value = source[path]
    d = keep["dims"]
    name = path.split("/", 1)[1] if match else path
    rules = {
        r"(query|key|value)/kernel$": lambda v: v[d][:, heads],
        r"(query|key|value)/bias$": lambda v: v[heads],
        r"attention_output/kernel$": lambda v: v[heads][:, :, d],
        r"feedforward_intermediate_dense/kernel$": lambda v: v[d][:, units],
        r"feedforward_intermediate_dense/bias$": lambda v: v[units],
        r"feedforward_output_dense/kernel$": lambda v: v[units][:, d],
        r"embedding/embeddings$": lambda v: v[:, d],
        r"pooled_dense/kernel$": lambda v: v[d][:, d],
        r"logits/kernel$": lambda v: v[d],
        r"logits/bias$": lambda v: v,
    }
    for pattern, rule in rules.items():
        if re.search(pattern, name):
            return rule(value)
    return value[d]  # Layer norms and biases over the residual dims.
