import functools

import keras
import keras_hub

from tf_mp.layers.parallel_transformer_encoder import ParallelTransformerEncoder
from tf_mp.parallel import keras_compat


@keras.saving.register_keras_serializable(package="tf_mp")
class ParallelBertBackbone(keras_hub.models.BertBackbone):
    """A `keras_hub.models.BertBackbone` whose encoder blocks are split
    Megatron-style (`tf_mp.layers.ParallelTransformerEncoder`).

    It is a `BertBackbone`: same constructor, config, attributes
    (`token_embedding`, `vocabulary_size`, `hidden_dim`, ...), inputs, outputs,
    layer names and weight shapes, so every keras-hub task that takes a BERT
    backbone (`BertTextClassifier`, `BertMaskedLM`, ...) takes this one, keras-hub
    weights load one to one, and `save_to_preset` / `Backbone.from_preset`
    round-trip it (with `tf_mp` imported, which registers the class). Without a
    mesh it computes exactly what `BertBackbone` computes. Usually made from an
    existing backbone with `tf_mp.models.partition_bert`.

    Args:
        model_axis: str. The tensor-parallel mesh axis that heads and the
            feed-forward are split over. Defaults to `"model"`.
        **kwargs: the (keyword) arguments of `keras_hub.models.BertBackbone`
            (`vocabulary_size`, `num_layers`, `num_heads`, `hidden_dim`,
            `intermediate_dim`, `dropout`, `max_sequence_length`, `dtype`, ...).
            `num_heads` and `intermediate_dim` must be divisible by the size of
            `model_axis` on the mesh the backbone is built on.

    Example:

    ```python
    mesh = tf_mp.Mesh({"batch": 2, "model": 4})
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        backbone = tf_mp.models.ParallelBertBackbone(
            vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512,
        )
        masked_lm = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    ```

    References:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805)
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    # Keyword arguments only: a `(*args, **kwargs)` constructor would make Keras
    # treat the class as a functional-model constructor (`clone_model` would
    # call it with inputs and outputs).
    def __init__(self, model_axis="model", **kwargs):
        blocks = functools.partial(ParallelTransformerEncoder, model_axis=model_axis)
        with keras_compat.block_classes(
            keras_hub.models.BertBackbone, TransformerEncoder=blocks
        ):
            super().__init__(**kwargs)
        self.model_axis = model_axis

    def get_config(self):
        config = super().get_config()
        config["model_axis"] = self.model_axis
        return config
