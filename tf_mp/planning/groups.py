"""The planner's data: a model weight, and a group of weights split together."""

import dataclasses
import math
import re

REPLICATED = "replicated"


@dataclasses.dataclass(frozen=True)
class Weight:
    index: int  # Position in `model.weights`.
    path: str
    shape: tuple
    itemsize: int
    trainable: bool

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def bytes(self):
        return self.size * self.itemsize


@dataclasses.dataclass(frozen=True)
class Group:
    """Weights split together, and how they may be split.

    `options` maps an option name to the dimension of each weight put on the
    model axis (`None`: not split); `soft` names weights whose split is dropped,
    not the option, when the model axis does not divide them. `flops` is the
    forward multiply-adds x 2 per token; `boundary` the per-token features of
    the activations its split option all-reduces or all-gathers, forward and
    backward; `activations` the per-token features it keeps for the backward
    pass, and how many of them the split divides.
    """

    kind: str  # "attention", "feedforward", "embedding" or "weight".
    name: str
    weights: tuple
    options: dict
    soft: frozenset = frozenset()
    flops: int = 0
    boundary: tuple = ()
    activations: tuple = (0, 0)
    heads: int = 0

    @property
    def role(self):
        """Groups of one role (the same block, repeated) share one choice."""
        shapes = ",".join("x".join(map(str, w.shape)) for w in self.weights)
        return f"{self.kind}:{re.sub(r'[0-9]+', '#', self.name)}:{shapes}"

    def model_dims(self, option, model_size):
        """The model-axis dimension per weight, or `None` where `option` does
        not fit `model_size`."""
        dims = self.options[option]
        if model_size == 1:
            return (None,) * len(dims)
        result = []
        for i, (weight, dim) in enumerate(zip(self.weights, dims)):
            if dim is not None and weight.shape[dim] % model_size:
                if i not in self.soft:
                    return None
                dim = None
            result.append(dim)
        return tuple(result)
