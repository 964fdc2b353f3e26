"""`partition`: a keras-hub backbone with Megatron-style tensor-parallel blocks."""

import contextlib

import keras_hub

from tf_mp.models.layout_maps import OWN_ATTENTION
from tf_mp.models.layout_maps import backbone_layout_map
from tf_mp.models.parallel_backbones import parallel_backbone_class
from tf_mp.parallel import keras_compat
from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import as_mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.parallel.model_parallel import copy_model_state

SUPPORTED = (
    "BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT and GPT-2 (and any "
    "keras-hub backbone whose blocks are keras-hub `TransformerEncoder` or "
    "`TransformerDecoder` layers, rebuilt with tf_mp's parallel blocks); Gemma, "
    "Gemma 3, Llama, Llama 3, Mistral, Qwen / Qwen2, Qwen3 and Phi-3 (their own "
    "blocks, split by a layout map); Qwen3-MoE (experts split over the model "
    "axis)"
)


def partition(
    model, mesh=None, model_axis="model", shard_embeddings=True, layout_map=None
):
    """Rebuilds a keras-hub backbone, or a task around one, with its blocks split
    Megatron-style.

    The result is a backbone of the same keras-hub class (or a subclass), config
    (dtype policy included), inputs, outputs, layer names, weights and dropout
    random-number state (copied, so it draws the original's masks),
    so every task that takes the original (`RobertaTextClassifier`,
    `GPT2CausalLM`, ...) takes it. What changes depends on the family:

    * Backbones built from keras-hub `TransformerEncoder` / `TransformerDecoder`
      blocks (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT; GPT-2)
      get `tf_mp.layers.ParallelTransformerEncoder` / `...Decoder` blocks
      (heads split over `model_axis`, the feed-forward column- then
      row-parallel), in a registered subclass such as
      `ParallelRobertaBackbone` that saving and presets round-trip.
    * Gemma, Gemma 3, Llama, Llama 3, Mistral, Qwen / Qwen2, Qwen3 and Phi-3
      keep their own blocks, laid out by `tf_mp.models.backbone_layout_map`.

    What each family splits: `docs/partition.md`.

    A keras-hub task (`TextClassifier.from_preset(...)`, `GPT2CausalLM`, ...) is
    rebuilt around its partitioned backbone with the same config, preprocessor
    and weights (heads included); compile it afterwards.

    Args:
        model: a keras-hub backbone of a supported family, or a keras-hub task
            whose `backbone` is one (random init, `from_preset`, or already
            sharded: its weights are gathered).
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
        The rebuilt backbone or task.

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
    backbone = model.backbone if isinstance(model, keras_hub.models.Task) else model
    rebuild = _rebuilder(backbone, model_axis)
    layout_map = _layout_map_for(
        backbone,
        mesh,
        layout_map,
        model_axis=model_axis,
        shard_embeddings=shard_embeddings,
    )
    scope = contextlib.nullcontext()
    if layout_map is not None:
        scope = ModelParallel(layout_map.mesh, layout_map).scope()
    with scope:
        return _copy_around(model, rebuild(backbone.get_config()))


def _layout_map_for(backbone, mesh, layout_map, **map_options):
    """`partition`'s `layout_map` checked against its `mesh`, else tf_mp's map
    for `backbone` on `mesh`, else `None` (the current context decides)."""
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
        return layout_map
    if mesh is not None:
        return backbone_layout_map(backbone, mesh, **map_options)
    return None


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
            "`model` must be a keras-hub `Backbone`, or a keras-hub `Task` with "
            f"one. Received: {backbone!r} of type {type(backbone).__name__}"
        )
    cls = type(backbone)
    if any(isinstance(backbone, own) for own in OWN_ATTENTION):
        # Their own blocks, laid out by the scope's layout map.
        return cls.from_config
    if not isinstance(backbone, keras_hub.models.BertBackbone) and not any(
        keras_compat.uses_block(cls, name) for name in keras_compat.BLOCK_NAMES
    ):
        raise ValueError(
            f"`partition` does not support {cls.__name__}. Supported: {SUPPORTED}."
        )
    parallel = parallel_backbone_class(cls)
    return lambda config: parallel.from_config({**config, "model_axis": model_axis})


def unpartition(model):
    """The inverse of `partition`: the same backbone or task made of keras-hub's
    own classes and blocks, off the mesh, with the weights gathered to the host.

    Use it to hand a model trained on a mesh to code without tf_mp: its
    `save_to_preset` writes a preset that plain keras-hub (and its Hugging Face
    exporters) load. Call it outside any `ModelParallel.scope()`, or the copy is
    laid out by that scope.

    Args:
        model: a keras-hub backbone, or a keras-hub task with one, partitioned
            or not.

    Returns:
        The unpartitioned backbone or task (compile a task again to train it).
    """
    backbone = model.backbone if isinstance(model, keras_hub.models.Task) else model
    _rebuilder(backbone, "model")  # Raises for what `partition` cannot make.
    base = next(
        c for c in type(backbone).__mro__ if c.__module__.startswith("keras_hub")
    )
    config = backbone.get_config()
    config.pop("model_axis", None)
    return _copy_around(model, base.from_config(config))


def _copy_around(source, backbone):
    """`source` (a backbone, or a task around one) copied onto `backbone`: for a
    task, the same task class and config rebuilt around it; then `source`'s
    weights and dropout state."""
    copy = backbone
    if isinstance(source, keras_hub.models.Task):
        config = source.get_config()
        config.update(backbone=backbone, preprocessor=source.preprocessor)
        copy = type(source).from_config(config)
    _copy_lora(source, copy)
    copy_model_state(source, copy)
    return copy


def _copy_lora(source, target):
    """Enables LoRA on `target`'s layers where it is enabled on `source`'s
    (matched by path), with the same rank and alpha, and copies which layers
    train and keras-hub's record of the LoRA layers (`save_lora_weights`)."""
    layers = {layer.path: layer for layer in target._flatten_layers()}
    pairs = [(layer, layers.get(layer.path)) for layer in source._flatten_layers()]
    for layer, twin in pairs:  # Outer layers first, as `trainable` recurses.
        if twin is not None and twin is not target:
            twin.trainable = layer.trainable
    for layer, twin in pairs:
        if not getattr(layer, "lora_enabled", False):
            continue
        if twin is None or not hasattr(twin, "enable_lora"):
            raise ValueError(
                f"LoRA is enabled on layer '{layer.path}', which the rebuilt "
                "model does not have; enable LoRA after `partition` / "
                "`unpartition`."
            )
        if not twin.lora_enabled:
            twin.enable_lora(layer.lora_rank, lora_alpha=layer.lora_alpha)
    theirs, ours = _backbone(source), _backbone(target)
    if getattr(theirs, "_lora_enabled_layers", None):
        weighted = [layer for layer in ours._flatten_layers(include_self=False)]
        weighted = [layer for layer in weighted if layer.weights]
        ours._lora_enabled_layers = [
            i for i, layer in enumerate(weighted) if getattr(layer, "lora_enabled", 0)
        ]
        ours._lora_rank = theirs._lora_rank


def _backbone(model):
    return model.backbone if isinstance(model, keras_hub.models.Task) else model


def move_to_mesh(model, distribution):
    """A keras-hub task moved onto `distribution`'s mesh (weights copied): its
    backbone split by `partition` where the family is supported and the mesh
    has a `model` axis, else laid out by the distribution's layout map. With
    `distribution=None`, `model` itself."""
    if distribution is None:
        return model
    mesh, batch_axis = distribution.mesh, distribution.batch_axis
    if "model" in mesh.shape and is_supported(model.backbone):
        layout_map = backbone_layout_map(model.backbone, mesh, batch_axis=batch_axis)
        distribution = ModelParallel(mesh, layout_map, batch_axis=batch_axis)
        with distribution.scope():
            return partition(model)
    with distribution.scope():
        moved = type(model).from_config(model.get_config())
    moved.set_weights(model.get_weights())
    return moved
