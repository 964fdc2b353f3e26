"""Megatron-style layout maps for keras-hub backbones, by family.

Encoder and decoder families (blocks made of keras-hub `TransformerEncoder` /
`TransformerDecoder`) share one map: their weight paths end the same way.
The decoder-only LLM families have their own attention layers, whose kernels
put the heads on another dimension: Gemma's (Gemma, Gemma 3) and Llama's
(Llama, Llama 3, Mistral, Qwen / Qwen2, Qwen3, Phi-3) each have a map here,
and Qwen3-MoE Llama's with its experts split (expert parallelism).
"""

import keras_hub

from tf_mp.layers.block_parts import feedforward_weight_axes
from tf_mp.layers.parallel_transformer_decoder import decoder_weight_axes
from tf_mp.layers.parallel_transformer_encoder import encoder_weight_axes
from tf_mp.parallel.layout_map import LayoutMap

TOKEN_EMBEDDING = r"token_embedding/embeddings$"
# An untied output projection, (hidden, vocabulary).
REVERSE_EMBEDDING = r"token_embedding/reverse_embeddings$"


def transformer_block_axes(model_axis):
    """Axes of keras-hub `TransformerEncoder` and `TransformerDecoder` weights."""
    axes = encoder_weight_axes(model_axis)
    axes.update(decoder_weight_axes(model_axis))
    return axes


def _key_value_axis(backbone, model_axis, model_size):
    """`model_axis` where the key/value heads divide it, else `None`
    (replicated): grouped-query attention may have fewer of them."""
    return model_axis if backbone.num_key_value_heads % model_size == 0 else None


def gemma_axes(backbone, model_axis, model_size):
    """Gemma and Gemma 3: attention kernels are (heads, hidden, head_dim) and
    (heads, head_dim, hidden); the gated feed-forward is column-parallel
    (`ffw_gating`, `ffw_gating_2`) then row-parallel (`ffw_linear`). Gemma 3's
    query/key norms act on `head_dim` and stay replicated."""
    m = model_axis
    kv = _key_value_axis(backbone, model_axis, model_size)
    return {
        r"attention/query/kernel$": (m, None, None),
        r"attention/(key|value)/kernel$": (kv, None, None),
        r"attention/attention_output/kernel$": (m, None, None),
        r"ffw_gating(_2)?/kernel$": (None, m),
        r"ffw_linear/kernel$": (m, None),
    }


def llama_axes(backbone, model_axis, model_size):
    """Llama and the families built like it (Mistral, Qwen, Qwen3, Phi-3):
    query/key/value kernels are (hidden, heads, head_dim), their biases
    (heads, head_dim) where they have them (Qwen), the output
    (heads, head_dim, hidden); the gated feed-forward as keras-hub names it.
    The attention layer is `self_attention` (Phi-3: `attention`)."""
    m = model_axis
    kv = _key_value_axis(backbone, model_axis, model_size)
    axes = {
        r"attention/query/kernel$": (None, m, None),
        r"attention/(key|value)/kernel$": (None, kv, None),
        r"attention/query/bias$": (m, None),
        r"attention/(key|value)/bias$": (kv, None),
        r"attention/attention_output/kernel$": (m, None, None),
        r"feedforward_gate_dense/kernel$": (None, m),
    }
    axes.update(feedforward_weight_axes(m))
    return axes


def qwen3_moe_axes(backbone, model_axis, model_size):
    """Qwen3-MoE: Llama's attention map, and expert parallelism: the expert
    bank's stacked kernels, `(experts, hidden, 2 x intermediate)` and
    `(experts, intermediate, hidden)`, split by expert over `model_axis`
    (where the experts divide it). Each device runs its experts on every
    token; their weighted sum over experts is one all-reduce per block, as a
    row-parallel layer's. The router stays replicated."""
    axes = llama_axes(backbone, model_axis, model_size)
    experts = model_axis if backbone.num_experts % model_size == 0 else None
    axes[r"expert_feedforward_(gate|output)_dense$"] = (experts, None, None)
    return axes


# keras-hub backbone classes with their own attention layers, and their axes
# (subclasses included: `Llama3Backbone` is a `LlamaBackbone`, and
# `Qwen2Backbone` is `QwenBackbone`).
OWN_ATTENTION = {
    keras_hub.models.GemmaBackbone: gemma_axes,
    keras_hub.models.Gemma3Backbone: gemma_axes,
    keras_hub.models.LlamaBackbone: llama_axes,
    keras_hub.models.MistralBackbone: llama_axes,
    keras_hub.models.QwenBackbone: llama_axes,
    keras_hub.models.Qwen3Backbone: llama_axes,
    keras_hub.models.Phi3Backbone: llama_axes,
    keras_hub.models.Qwen3MoeBackbone: qwen3_moe_axes,
}


def backbone_layout_map(
    backbone, mesh, model_axis="model", shard_embeddings=True, batch_axis="batch"
):
    """The tf_mp `LayoutMap` that splits `backbone`'s blocks Megatron-style.

    Attention is split by heads and the feed-forward column- then
    row-parallel over `model_axis`; everything else is replicated. With
    `shard_embeddings`, the token embedding table is split along its hidden
    (or embedding) dimension when that divides the `model_axis` size, and its
    lookup's output is gathered so the residual stream stays whole on every
    device, as `tf_mp.bert_layout_map` does; an untied output projection
    (`reverse_embeddings`, hidden x vocabulary: Llama, Mistral, Phi-3) is
    split by vocabulary, as Megatron-LM's output layer, so each device
    computes and holds 1/k of the logits' columns. Key/value kernels of
    grouped-query attention are split only when their head count divides the
    axis size too (one key/value head, as in Gemma 2B, stays replicated).

    Args:
        backbone: a keras-hub backbone `tf_mp.models.partition` supports.
        mesh: a `tf_mp.Mesh` (or `keras.distribution.DeviceMesh`) with an axis
            named `model_axis`.
        model_axis: str. Defaults to `"model"`.
        shard_embeddings: bool. Defaults to `True`.
        batch_axis: str. The mesh axis batches are split over. Defaults to
            `"batch"`; ignored when the mesh has no such axis.

    Returns:
        A `tf_mp.LayoutMap`.
    """
    layout_map = LayoutMap(mesh)
    if model_axis not in layout_map.mesh.shape:
        raise ValueError(
            f"`model_axis` must be one of the mesh axes {layout_map.mesh.axis_names}. "
            f"Received: model_axis={model_axis!r}"
        )
    own = next(
        (axes for cls, axes in OWN_ATTENTION.items() if isinstance(backbone, cls)),
        None,
    )
    if own is not None:
        block_axes = own(backbone, model_axis, layout_map.mesh.shape[model_axis])
    else:
        block_axes = transformer_block_axes(model_axis)
    for regex, axes in block_axes.items():
        layout_map[regex] = axes
    table = _weight(backbone, "token_embedding/embeddings")
    model_size = layout_map.mesh.shape[model_axis]
    if shard_embeddings and table is not None and table.shape[-1] % model_size == 0:
        layout_map[TOKEN_EMBEDDING] = (None, model_axis)
        batch = batch_axis if batch_axis in layout_map.mesh.shape else None
        layout_map[r"token_embedding/output$"] = (batch, None, None)
    output = _weight(backbone, "token_embedding/reverse_embeddings")
    if shard_embeddings and output is not None and output.shape[1] % model_size == 0:
        layout_map[REVERSE_EMBEDDING] = (None, model_axis)
    return layout_map


def _weight(backbone, path_end):
    return next((w for w in backbone.weights if w.path.endswith(path_end)), None)
