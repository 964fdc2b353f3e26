"""Parallel variants of keras-hub backbone classes built from keras-hub blocks.

`parallel_backbone_class(RobertaBackbone)` is `ParallelRobertaBackbone`: a
subclass with the same constructor (plus `model_axis`), config, attributes and
functional graph, whose `TransformerEncoder` / `TransformerDecoder` blocks are
tf_mp's parallel blocks. It is registered with Keras (package `tf_mp`), so a
saved model or preset reloads as it, with its weights, where tf_mp's models
are imported. BERT's is the hand-written `ParallelBertBackbone`.
"""

import functools

import keras
import keras_hub

from tf_mp.layers.parallel_transformer_decoder import ParallelTransformerDecoder
from tf_mp.layers.parallel_transformer_encoder import ParallelTransformerEncoder
from tf_mp.models.parallel_bert_backbone import ParallelBertBackbone
from tf_mp.parallel import keras_compat

_CLASSES = {keras_hub.models.BertBackbone: ParallelBertBackbone}


def parallel_backbone_class(backbone_class):
    """The parallel subclass of a keras-hub backbone class built from keras-hub
    `TransformerEncoder` / `TransformerDecoder` blocks (made once, registered)."""
    if backbone_class in _CLASSES.values():
        return backbone_class
    if backbone_class not in _CLASSES:
        _CLASSES[backbone_class] = _make(backbone_class)
    return _CLASSES[backbone_class]


def _make(base):
    def __init__(self, model_axis="model", **kwargs):
        blocks = {
            "TransformerEncoder": functools.partial(
                ParallelTransformerEncoder, model_axis=model_axis
            ),
            "TransformerDecoder": functools.partial(
                ParallelTransformerDecoder, model_axis=model_axis
            ),
        }
        with keras_compat.block_classes(base, **blocks):
            base.__init__(self, **kwargs)
        self.model_axis = model_axis

    def get_config(self):
        config = base.get_config(self)
        config["model_axis"] = self.model_axis
        return config

    name = f"Parallel{base.__name__}"
    cls = type(
        name,
        (base,),
        {
            "__init__": __init__,
            "get_config": get_config,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": (
                f"`keras_hub.models.{base.__name__}` with its blocks split "
                "Megatron-style over `model_axis` (tf_mp's parallel blocks); "
                "made by `tf_mp.models.partition`."
            ),
        },
    )
    return keras.saving.register_keras_serializable(package="tf_mp")(cls)


# Made at import, so saved models of these families reload.
for _family in (
    keras_hub.models.RobertaBackbone,
    keras_hub.models.XLMRobertaBackbone,
    keras_hub.models.DistilBertBackbone,
    keras_hub.models.ElectraBackbone,
    keras_hub.models.AlbertBackbone,
    keras_hub.models.GPT2Backbone,
):
    parallel_backbone_class(_family)
