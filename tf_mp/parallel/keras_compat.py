"""The keras-hub internals tf_mp touches (check them on a keras-hub upgrade).

`keras_hub.src.models.bert.bert_backbone.TransformerEncoder`: the name
`BertBackbone.__init__` builds its encoder blocks from. Swapping it while a
backbone is constructed gives a real `BertBackbone` (same constructor, config,
attributes and functional graph) whose blocks are another class.
"""

import contextlib

from keras_hub.src.models.bert import bert_backbone as _bert_backbone


@contextlib.contextmanager
def bert_encoder_class(factory):
    """While open, `BertBackbone(...)` builds its blocks with `factory(...)`."""
    original = _bert_backbone.TransformerEncoder
    _bert_backbone.TransformerEncoder = factory
    try:
        yield
    finally:
        _bert_backbone.TransformerEncoder = original
