"""`partition_bert`: a keras-hub BERT backbone with tensor-parallel encoder blocks
(the BERT case of `tf_mp.models.partition`)."""

import keras_hub

from tf_mp.models.partition import partition


def partition_bert(backbone, mesh=None, model_axis="model", shard_embeddings=True):
    """Rebuilds a BERT backbone with `ParallelTransformerEncoder` blocks.

    The result is a `tf_mp.models.ParallelBertBackbone`, itself a
    `keras_hub.models.BertBackbone`: the same config (dtype policy included),
    attributes, inputs (`token_ids`, `segment_ids`, `padding_mask`), outputs
    (`sequence_output`, `pooled_output`), layer names and weights (copied). Any
    keras-hub task that takes a BERT backbone takes it, and
    `tf_mp.bert_layout_map` applies to it unchanged.

    Args:
        backbone: a `keras_hub.models.BertBackbone` (random init, `from_preset`,
            or already sharded; its weights are gathered).
        mesh: optional `tf_mp.Mesh`. When given, the new backbone is created on
            it (blocks split over `model_axis`, the rest replicated). When
            `None`, it is created in the current context: unsharded, or sharded
            by an enclosing `ModelParallel.scope()`.
        model_axis: str. The tensor-parallel mesh axis. Defaults to `"model"`.
        shard_embeddings: bool. With `mesh`, also split the token embedding
            along its hidden dimension. Defaults to `True`.

    Returns:
        A `tf_mp.models.ParallelBertBackbone`.

    Example:

    ```python
    backbone = keras_hub.models.BertBackbone.from_preset(path)
    mesh = tf_mp.Mesh({"batch": 2, "model": 4})
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        parallel = tf_mp.models.partition_bert(backbone)
        # Models that train on the mesh are built in its scope.
        classifier = keras_hub.models.BertTextClassifier(
            parallel, num_classes=2, preprocessor=None
        )
    classifier.compile(...); classifier.fit(...)
    ```
    """
    if not isinstance(backbone, keras_hub.models.BertBackbone):
        raise TypeError(
            "`backbone` must be a `keras_hub.models.BertBackbone`. "
            f"Received: {backbone!r} of type {type(backbone).__name__}"
        )
    return partition(
        backbone, mesh, model_axis=model_axis, shard_embeddings=shard_embeddings
    )
