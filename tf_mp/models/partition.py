"""`partition`: a keras-hub backbone with Megatron-style tensor-parallel blocks."""

import contextlib
import functools

import keras_hub

from tf_mp.layers.parallel_transformer_decoder import ParallelTransformerDecoder
from tf_mp.layers.parallel_transformer_encoder import ParallelTransformerEncoder
from tf_mp.models.layout_maps import OWN_ATTENTION
from tf_mp.models.layout_maps import backbone_layout_map
from tf_mp.models.parallel_bert_backbone import ParallelBertBackbone
from tf_mp.parallel import keras_compat
from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import as_mesh
from tf_mp.parallel.model_parallel import ModelParallel

SUPPORTED = (
    "BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT and GPT-2 (and any "
    "keras-hub backbone whose blocks are keras-hub `TransformerEncoder` or "
    "`TransformerDecoder` layers, rebuilt with tf_mp's parallel blocks); Gemma "
    "and Llama (their own blocks, split by a layout map)"
)


def partition(
    backbone, mesh=None, model_axis="model", shard_embeddings=True, layout_map=None
):
    """Rebuilds a keras-hub backbone with its blocks split Megatron-style.

    The result is a backbone of the same keras-hub class, config (dtype policy
    included), inputs, outputs, layer names and weights (copied), so every task
    that takes the original (`RobertaTextClassifier`, `GPT2CausalLM`, ...) takes
    it. What changes depends on the family:

    * Backbones built from keras-hub `TransformerEncoder` blocks (BERT, RoBERTa,
      XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT) get
      `tf_mp.layers.ParallelTransformerEncoder` blocks, and backbones built from
      `TransformerDecoder` blocks (GPT-2) get
      `tf_mp.layers.ParallelTransformerDecoder` blocks: heads split over
      `model_axis`, the feed-forward column- then row-parallel, the residual
      stream whole on every device between blocks. ALBERT shares one block
      between layers: it is split like any other, once. A BERT backbone
      becomes a `tf_mp.models.ParallelBertBackbone` (`partition_bert`).
    * Gemma and Llama keep their own blocks; their weights are laid out by
      `tf_mp.models.backbone_layout_map` (the same Megatron split of heads and
      of the gated feed-forward).

    Saved with `save_to_preset` or `model.save`, a rebuilt non-BERT backbone
    reloads as its keras-hub class with keras-hub's blocks and the same
    weights; call `partition` again after loading.

    Args:
        backbone: a keras-hub backbone of a supported family (random init,
            `from_preset`, or already sharded: its weights are gathered).
        mesh: optional `tf_mp.Mesh`. When given, the new backbone is created on
            it, laid out by `backbone_layout_map(backbone, mesh, ...)` (or
            `layout_map`). When `None`, it is created in the current context:
            unsharded, or sharded by an enclosing `ModelParallel.scope()`.
        model_axis: str. The tensor-parallel mesh axis. Defaults to `"model"`.
        shard_embeddings: bool. With `mesh`, also split the token embedding
            along its hidden dimension. Defaults to `True`.
        layout_map: optional `tf_mp.LayoutMap` to create the backbone with
            instead of tf_mp's, e.g.
            `tf_mp.LayoutMap.from_keras(GemmaBackbone.get_layout_map(mesh))`.
            Its mesh is used; `mesh` may then be omitted.

    Returns:
        The rebuilt backbone.

    Example:

    ```python
    backbone = keras_hub.models.RobertaBackbone.from_preset(path)
    mesh = tf_mp.Mesh({"batch": 2, "model": 4})
    layout_map = tf_mp.models.backbone_layout_map(backbone, mesh)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        parallel = tf_mp.models.partition(backbone)
        classifier = keras_hub.models.RobertaTextClassifier(
            parallel, num_classes=2, preprocessor=None
        )
    classifier.compile(...); classifier.fit(...)
    ```
    """
    rebuild = _rebuilder(backbone, model_axis)
    if layout_map is not None:
        if not isinstance(layout_map, LayoutMap):
            raise TypeError(
                "`layout_map` must be a `tf_mp.LayoutMap` (convert a Keras one with "
                "`tf_mp.LayoutMap.from_keras`). Received: "
                f"layout_map={layout_map!r} of type {type(layout_map).__name__}"
            )
        if mesh is not None and as_mesh(mesh) != layout_map.mesh:
            raise ValueError(
                "`mesh` and `layout_map.mesh` differ; pass one of them. Received: "
                f"mesh={mesh!r}, layout_map.mesh={layout_map.mesh!r}"
            )
    elif mesh is not None:
        layout_map = backbone_layout_map(
            backbone, mesh, model_axis=model_axis, shard_embeddings=shard_embeddings
        )
    scope = contextlib.nullcontext()
    if layout_map is not None:
        scope = ModelParallel(layout_map.mesh, layout_map).scope()
    with scope:
        partitioned = rebuild(backbone.get_config())
    partitioned.set_weights(backbone.get_weights())
    return partitioned


def is_supported(backbone):
    """Whether `partition` can rebuild `backbone`."""
    try:
        _rebuilder(backbone, "model")
    except (TypeError, ValueError):
        return False
    return True


def _rebuilder(backbone, model_axis):
    """`config -> backbone` for `backbone`'s family; raises if unsupported."""
    if not isinstance(backbone, keras_hub.models.Backbone):
        raise TypeError(
            "`backbone` must be a keras-hub `Backbone`. Received: "
            f"{backbone!r} of type {type(backbone).__name__}"
        )
    cls = type(backbone)
    if isinstance(backbone, keras_hub.models.BertBackbone):
        return lambda config: ParallelBertBackbone.from_config(
            {**config, "model_axis": model_axis}
        )
    if any(isinstance(backbone, own) for own in OWN_ATTENTION):
        return cls.from_config
    if not any(keras_compat.uses_block(cls, name) for name in keras_compat.BLOCK_NAMES):
        raise ValueError(
            f"`partition` does not support {cls.__name__}. Supported: {SUPPORTED}."
        )
    blocks = {
        "TransformerEncoder": functools.partial(
            ParallelTransformerEncoder, model_axis=model_axis
        ),
        "TransformerDecoder": functools.partial(
            ParallelTransformerDecoder, model_axis=model_axis
        ),
    }

    def rebuild(config):
        with keras_compat.block_classes(cls, **blocks):
            return cls.from_config(config)

    return rebuild
