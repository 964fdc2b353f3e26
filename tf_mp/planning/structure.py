"""A model's weights in the groups a parallel layout splits together.

Read from the layers and weight shapes, never from the model's class:

* attention: a layer with sublayers named `query`, `key`, `value` and
  `attention_output` (Keras's `MultiHeadAttention` and keras-hub's attention
  layers name them so), whose output kernel is `(heads, head_dim, hidden)`.
  Split by heads: the head dimension of all four kernels (and of the
  query/key/value biases) together. Key/value heads that the model axis does
  not divide (grouped-query attention) stay replicated.
* feed-forward: consecutive projections (a 2-D kernel) `(h, f)`, optionally a
  second `(h, f)` (a gate), then `(f, h')`: column- then row-parallel, one
  all-reduce forward and one backward (Megatron's pairing).
* embedding: a 2-D `embeddings` weight, split by vocabulary or by hidden.
* every other weight on its own: replicated (or, when large, split over the
  batch axis, FSDP style).

A split group whose input no trainable weight precedes needs no backward
all-reduce (its input gradient is never used): that is the first group of a
Sequential or Functional model, whose weights are in the order the layers
run. Subclassed models keep the backward count (their order is the order
weights were made).
"""

import dataclasses

import keras
import numpy as np

from tf_mp.parallel import keras_compat
from tf_mp.planning.groups import REPLICATED
from tf_mp.planning.groups import Group
from tf_mp.planning.groups import Weight

ATTENTION_PROJECTIONS = ("query", "key", "value", "attention_output")
MAX_COLUMNS = 2  # A gated feed-forward reads its input with two projections.


def model_groups(model):
    """Every weight of `model` in exactly one `Group`, in weight order."""
    weights = {id(v): _weight(i, v) for i, v in enumerate(model.weights)}
    claimed = set()
    groups = []
    tree = keras_compat.layer_tree(model)
    for layer, children in tree:
        group = _attention(layer, children, weights)
        if group is not None:
            groups.append(group)
            # Only its projections: other sublayers' weights (Gemma 3's and
            # Qwen3's query/key norms) are grouped on their own below.
            claimed.update(id(model.weights[w.index]) for w in group.weights)
    projections, tables = [], []
    # The layer each layer is a direct sublayer of: a pair is two projections
    # of one parent. Paths do not say it (a nested backbone's weights have no
    # prefix, so its pooler and the task's head would look like siblings).
    parent_of = {id(c): id(layer) for layer, children in tree for c in children}
    for layer, _ in tree:
        own = _own(layer, weights, claimed)
        kernel = own.get("kernel")
        if kernel is not None and len(kernel.shape) == 2:
            projections.append((parent_of.get(id(layer)), own))
            claimed.update(id(v) for v in layer.weights if id(v) in weights)
        elif "embeddings" in own and len(own["embeddings"].shape) == 2:
            tables.append((layer.path, own))
            claimed.update(id(v) for v in layer.weights if id(v) in weights)
    convolutions = any(
        len(w.shape) >= 3
        for layer, _ in tree
        for name, w in _own(layer, weights, claimed).items()
        if name.endswith("kernel")
    )
    groups.extend(_embedding(path, own, not convolutions) for path, own in tables)
    made = {c.path: i for _, children in tree for i, c in enumerate(children)}
    groups.extend(_feedforwards(projections, made))
    for variable in model.weights:
        if id(variable) not in claimed:
            groups.append(_single(weights[id(variable)]))
            claimed.add(id(variable))
    groups.sort(key=lambda g: min(w.index for w in g.weights))
    graph = isinstance(model, keras.Sequential) or keras_compat.is_functional(model)
    if groups and graph and groups[0].boundary:
        forward, _ = groups[0].boundary
        groups[0] = dataclasses.replace(groups[0], boundary=(forward, 0))
    return groups


def _weight(index, variable):
    return Weight(
        index=index,
        path=variable.path,
        shape=tuple(int(d) for d in variable.shape),
        itemsize=np.dtype(variable.dtype).itemsize,
        trainable=bool(variable.trainable),
    )


def _own(layer, weights, claimed):
    """`{name: Weight}` of the variables `layer` holds itself (not through a
    sublayer), unclaimed."""
    if not layer.path:  # A layer without weights.
        return {}
    prefix = layer.path + "/"
    own = {}
    for variable in layer.weights:
        name = variable.path[len(prefix) :]
        if id(variable) in weights and id(variable) not in claimed:
            if variable.path.startswith(prefix) and "/" not in name:
                own[name] = weights[id(variable)]
    return own


def _attention(layer, children, weights):
    named = {child.name: child for child in children}
    if not all(name in named for name in ATTENTION_PROJECTIONS):
        return None
    parts = {name: _own(named[name], weights, set()) for name in ATTENTION_PROJECTIONS}
    if any("kernel" not in p for p in parts.values()):
        return None
    output = parts["attention_output"]["kernel"]
    query = parts["query"]["kernel"]
    if len(output.shape) != 3 or len(query.shape) != 3:
        return None
    heads, head_dim, hidden = output.shape
    axis = _head_axis(query.shape, heads, head_dim)
    if axis is None:
        return None
    members, dims, soft = [], [], set()
    for name in ATTENTION_PROJECTIONS:
        for kind in ("kernel", "bias"):
            weight = parts[name].get(kind)
            if weight is None:
                continue
            if name == "attention_output":
                dim = 0 if kind == "kernel" else None
            else:
                # Keras's biases are `(heads, head_dim)`.
                dim = axis if kind == "kernel" else 0
                if kind == "bias" and len(weight.shape) != 2:
                    dim = None
            if name in ("key", "value") and dim is not None:
                soft.add(len(members))
            members.append(weight)
            dims.append(dim)
    in_hidden = query.size // (heads * head_dim)
    projection = sum(parts[n]["kernel"].size for n in ATTENTION_PROJECTIONS)
    return Group(
        kind="attention",
        name=layer.path,
        weights=tuple(members),
        options={REPLICATED: (None,) * len(members), "heads": tuple(dims)},
        soft=frozenset(soft),
        flops=2 * projection,
        boundary=(hidden, in_hidden),
        # Query, key, value and the heads' output per token; scores added by
        # the cost model, which knows the sequence length.
        activations=(4 * heads * head_dim, 4 * heads * head_dim),
        heads=heads,
    )


def _head_axis(shape, heads, head_dim):
    """The head dimension of a query kernel: `(hidden, heads, head_dim)` in
    Keras and Llama, `(heads, hidden, head_dim)` in Gemma."""
    for axis in range(2):
        rest = [d for i, d in enumerate(shape) if i != axis]
        if shape[axis] == heads and rest[-1] == head_dim:
            return axis
    return None


def _embedding(path, own, by_hidden):
    """An embedding table's group, with an untied output projection
    (`reverse_embeddings`, `(hidden, vocabulary)`: keras-hub's Llama, Mistral,
    Phi-3) split the same way, transposed.

    Split by hidden, the lookup's output is split over the model axis and
    DTensor carries that layout into what reads it; in a model with
    convolutions (`by_hidden=False`) that reached a `Conv2D`, whose SPMD
    expansion then failed (keras-hub's ViT), so the option is left out."""
    table = own["embeddings"]
    others = [(n, w) for n, w in own.items() if n != "embeddings"]
    members = [table] + [w for _, w in others]

    def dims(table_dim):
        reverse = 1 - table_dim  # The projection is the table transposed.
        return (table_dim,) + tuple(
            reverse if n == "reverse_embeddings" and len(w.shape) == 2 else None
            for n, w in others
        )

    options = {REPLICATED: (None,) * len(members), "vocabulary": dims(0)}
    if by_hidden:
        options["hidden"] = dims(1)
    return Group(
        kind="embedding",
        name=path,
        weights=tuple(members),
        options=options,
        boundary=(table.shape[1], 0),
        activations=(table.shape[1], 0),
    )


def _feedforwards(projections, made):
    """Feed-forward groups of the projections (`(parent layer id, weights)`)
    of each parent layer, and the projections in none alone.

    Creation order does not say which projection feeds which (keras-hub's ViT
    lists `dense_2` first), so within one parent the pair `(h, f)` -> `(f, h')`
    with the widest middle `f` is taken first (a feed-forward widens, then
    narrows), with up to `MAX_COLUMNS - 1` more `(h, f)` projections (gates).
    Among equally wide pairs (square projections: Gemma's at hidden = half
    the intermediate size), the first made column and the last made row
    (`made`: each layer's position among its parent's sublayers).
    """
    by_parent = {}
    for parent, own in projections:
        by_parent.setdefault(parent, []).append(own)
    groups = []
    for members in by_parent.values():
        while True:
            pairs = [
                (a, b)
                for a in members
                for b in members
                if a is not b and a["kernel"].shape[1] == b["kernel"].shape[0]
            ]
            if not pairs:
                break
            first, last = max(
                pairs,
                key=lambda p: (
                    p[0]["kernel"].shape[1],  # The widest middle,
                    -_made(p[0], made),  # then the first made column
                    _made(p[1], made),  # and the last made row.
                ),
            )
            columns = [first] + [
                m
                for m in members
                if m is not first
                and m is not last
                and m["kernel"].shape == first["kernel"].shape
            ][: MAX_COLUMNS - 1]
            groups.append(_feedforward(columns + [last]))
            members = [m for m in members if m is not last and m not in columns]
        for own in members:
            groups.extend(_single(w) for w in own.values())
    return groups


def _made(own, made):
    return made.get(own["kernel"].path.rsplit("/", 1)[0], 0)


def _feedforward(run):
    members, dims = [], []
    for k, own in enumerate(run):
        last = k == len(run) - 1
        for name, weight in own.items():
            members.append(weight)
            if name == "kernel":
                dims.append(0 if last else 1)
            else:  # A column's bias splits with its outputs; a row's does not.
                dims.append(None if last or len(weight.shape) != 1 else 0)
    hidden_in, hidden = run[0]["kernel"].shape
    hidden_out = run[-1]["kernel"].shape[1]
    return Group(
        kind="feedforward",
        name=",".join(own["kernel"].path.rsplit("/", 1)[0] for own in run),
        weights=tuple(members),
        options={REPLICATED: (None,) * len(members), "megatron": tuple(dims)},
        flops=2 * sum(own["kernel"].size for own in run),
        boundary=(hidden_out, hidden_in),
        activations=(hidden * len(run) + hidden_out, hidden * (len(run) - 1)),
    )


def _single(weight):
    flops = 2 * weight.size if len(weight.shape) == 2 else 0
    out = weight.shape[-1] if len(weight.shape) == 2 else 0
    return Group(
        kind="weight",
        name=weight.path,
        weights=(weight,),
        options={REPLICATED: (None,)},
        flops=flops,
        activations=(out, 0),
    )
