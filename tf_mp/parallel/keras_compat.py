"""Keras and keras-hub internals that are not about DTensor (check them on an
upgrade of either).

* `keras.src.models.functional.Functional`: is a model a graph of layers.
* `keras.src.losses.loss.unscale_loss_for_distribution`: a loss scaled for a
  `tf.distribute` replica, back to its mean.
* `Layer._flatten_layers` and `Layer._seed_generators`: the random-number
  state a copied model must carry over for its dropout masks to match; the
  layer tree the planner reads a model's structure from (`layer_tree`).
* `keras.distribution.ModelParallel._layout_map`: the `LayoutMap` a Keras
  distribution was made with (Keras has no public getter).
* The module-level names `TransformerEncoder` / `TransformerDecoder` that
  keras-hub backbones (`bert_backbone`, `roberta_backbone`, `gpt2_backbone`,
  ...) build their blocks from. Swapping them while a backbone is constructed
  gives a real backbone of the same class (constructor, config, attributes,
  functional graph) whose blocks are another class.
"""

import contextlib
import sys

from keras.src.losses import loss as _keras_loss
from keras.src.models import functional as _keras_functional


def is_functional(model):
    """Whether `model` is a Keras functional model (a graph of layers)."""
    return isinstance(model, _keras_functional.Functional)


def unscale_loss_for_distribution(value):
    """A loss scaled by Keras for a `tf.distribute` replica, back to its mean."""
    return _keras_loss.unscale_loss_for_distribution(value)


def seed_states(model):
    """The state variables of every `SeedGenerator` in `model` (dropout layers'
    and attention's), in creation order; not among `model.weights`."""
    return [
        generator.state
        for layer in model._flatten_layers(include_self=True)
        for generator in layer._seed_generators
    ]


def layer_tree(model):
    """`model` and every layer inside it, outer before inner, each with its
    direct sublayers in creation order: `[(layer, children)]`. (Siblings come
    in reverse creation order in the flattened list itself.)"""
    return [
        (layer, list(layer._flatten_layers(include_self=False, recursive=False)))
        for layer in model._flatten_layers(include_self=True)
    ]


def keras_layout_map(distribution):
    """The `keras.distribution.LayoutMap` of a Keras `ModelParallel`."""
    return distribution._layout_map


BLOCK_NAMES = ("TransformerEncoder", "TransformerDecoder")


def block_modules(backbone_class):
    """The modules of `backbone_class` and its bases that name a keras-hub block
    class (`XLMRobertaBackbone` builds its blocks in `roberta_backbone`)."""
    modules = []
    for cls in backbone_class.__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and module not in modules:
            if any(hasattr(module, name) for name in BLOCK_NAMES):
                modules.append(module)
    return modules


def uses_block(backbone_class, name):
    """Whether `backbone_class` builds blocks from keras-hub's `name` class."""
    return any(hasattr(module, name) for module in block_modules(backbone_class))


@contextlib.contextmanager
def block_classes(backbone_class, **factories):
    """While open, `backbone_class(...)` builds its `TransformerEncoder` /
    `TransformerDecoder` blocks with the given factories (keyword: block name)."""
    swapped = []
    try:
        for module in block_modules(backbone_class):
            for name, factory in factories.items():
                if hasattr(module, name):
                    swapped.append((module, name, getattr(module, name)))
                    setattr(module, name, factory)
        yield
    finally:
        for module, name, original in reversed(swapped):
            setattr(module, name, original)
