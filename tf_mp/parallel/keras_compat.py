"""Keras and keras-hub internals that are not about DTensor (check them on an
upgrade of either).

* `keras.src.models.functional.Functional`: is a model a graph of layers.
* `keras.src.losses.loss.unscale_loss_for_distribution`: a loss scaled for a
  `tf.distribute` replica, back to its mean.
* `keras_hub.src.models.bert.bert_backbone.TransformerEncoder`: the name
  `BertBackbone.__init__` builds its encoder blocks from. Swapping it while a
  backbone is constructed gives a real `BertBackbone` (same constructor, config,
  attributes and functional graph) whose blocks are another class.
"""

import contextlib

from keras.src.losses import loss as _keras_loss
from keras.src.models import functional as _keras_functional
from keras_hub.src.models.bert import bert_backbone as _bert_backbone


def is_functional(model):
    """Whether `model` is a Keras functional model (a graph of layers)."""
    return isinstance(model, _keras_functional.Functional)


def unscale_loss_for_distribution(value):
    """A loss scaled by Keras for a `tf.distribute` replica, back to its mean."""
    return _keras_loss.unscale_loss_for_distribution(value)


@contextlib.contextmanager
def bert_encoder_class(factory):
    """While open, `BertBackbone(...)` builds its blocks with `factory(...)`."""
    original = _bert_backbone.TransformerEncoder
    _bert_backbone.TransformerEncoder = factory
    try:
        yield
    finally:
        _bert_backbone.TransformerEncoder = original
