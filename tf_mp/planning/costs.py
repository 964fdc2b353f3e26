"""The analytical cost of one candidate layout: per-device bytes, the
collectives of one train step, and an estimated step time.

Weights, gradients and optimizer slots are exact (from shapes and dtypes).
Activations are estimated: per token, what each group keeps for the backward
pass, plus attention's scores. Collectives are those of Megatron's scheme:

* a feed-forward or attention group split over the model axis: one
  all-reduce of its output forward and one of its input's gradient backward
  (`tokens x features` each);
* an embedding split by vocabulary: one all-reduce of its output forward; by
  hidden: one all-gather of its output forward;
* data parallelism (batch axis > 1): the gradients all-reduced over the batch
  axis, as one grouped all-reduce (DTensor combines them);
* a weight split over the batch axis (FSDP): all-gathered forward and again
  backward, its gradient reduce-scattered instead of all-reduced.

Time is `flops / flop_rate` plus, per collective, `latency + bytes x
ring_factor / bandwidth` (ring factor `2 (n-1)/n` for an all-reduce, `(n-1)/n`
otherwise), with the constants measured on this machine (`constants.py`).
"""

import collections
import dataclasses

from tf_mp.planning.groups import REPLICATED

SMALL_WEIGHT = 4096  # Elements; smaller weights are never split (FSDP).
SLOTS = {
    "sgd": 0,
    "adam": 2,
    "adamw": 2,
    "nadam": 2,
    "adamax": 2,
    "adafactor": 2,
    "lamb": 2,
    "adadelta": 2,
    "ftrl": 2,
    "rmsprop": 1,
    "adagrad": 1,
    "lion": 1,
}


@dataclasses.dataclass
class Figures:
    """One candidate: its mesh, choices, per-weight axes and costs."""

    mesh: tuple  # (batch, model)
    choices: dict  # role -> option
    fsdp: bool
    axes: list  # One axes tuple per model weight, in weight order.
    weight_bytes: int
    gradient_bytes: int
    slot_bytes: int
    activation_bytes: int
    collectives: dict  # "op@axis" -> {"count": int, "bytes": int}
    compute_s: float
    communication_s: float
    measured_step_s: float = None
    compiled_collectives: dict = None  # Read from the compiled step, if measured.
    calibrated_step_s: float = None  # `calibration.py`, where it could fit.

    @property
    def bytes_per_device(self):
        return (
            self.weight_bytes
            + self.gradient_bytes
            + self.slot_bytes
            + self.activation_bytes
        )

    @property
    def step_s(self):
        return self.compute_s + self.communication_s

    def to_dict(self):
        figures = dataclasses.asdict(self)
        figures["mesh"] = {"batch": self.mesh[0], "model": self.mesh[1]}
        figures["axes"] = [list(a) for a in self.axes]
        figures["bytes_per_device"] = self.bytes_per_device
        figures["step_s"] = self.step_s
        return figures


def optimizer_slots(optimizer):
    """Variables an optimizer keeps per trainable weight: a name, a Keras
    optimizer, or an int."""
    if isinstance(optimizer, int) and not isinstance(optimizer, bool):
        return optimizer
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name not in SLOTS:
            raise ValueError(
                f"`optimizer` must be one of {sorted(SLOTS)}, a Keras optimizer or "
                f"the number of slots per weight. Received: optimizer={optimizer!r}"
            )
        return SLOTS[name]
    name = type(optimizer).__name__.lower()
    if name == "sgd":
        return 1 if getattr(optimizer, "momentum", 0) else 0
    if name in SLOTS:
        return SLOTS[name]
    raise ValueError(
        f"Unknown optimizer class {type(optimizer).__name__}: pass "
        "`optimizer` as the number of slots it keeps per weight. "
        f"Received: optimizer={optimizer!r}"
    )


def evaluate(groups, mesh, choices, fsdp, workload, constants):
    """`Figures` of a candidate, or `None` when a choice does not fit `mesh`.

    `workload`: `batch_size`, `sequence_length` (1 without one), `slots` per
    trainable weight and `activation_itemsize`.
    """
    batch, model = mesh
    tokens = workload["batch_size"] * workload["sequence_length"] // batch
    act = workload["activation_itemsize"]
    axes = {}
    memory = collections.Counter()
    collectives = collections.defaultdict(lambda: {"count": 0, "bytes": 0})
    flops = 0
    sync_bytes = 0
    effective = {}  # What each role's choice does on this mesh.
    for group in groups:
        option = choices.get(group.role, REPLICATED)
        dims = group.model_dims(option, model)
        if dims is None:
            return None
        split = any(d is not None for d in dims)
        if len(group.options) > 1:
            effective[group.role] = option if split else REPLICATED
        for weight, dim in zip(group.weights, dims):
            layout, shard = _layout(weight, dim, fsdp, batch, model)
            axes[weight.index] = layout
            memory["weight"] += shard
            if not weight.trainable:
                continue
            memory["gradient"] += shard
            memory["slot"] += shard * workload["slots"]
            if "batch" in layout:
                full = shard * batch
                _add(collectives, "all_gather@batch", 2, 2 * full)
                _add(collectives, "reduce_scatter@batch", 1, full)
            elif batch > 1:
                sync_bytes += shard
        flops += group.flops // (model if split else 1)
        kept, divided = group.activations
        features = kept - divided + (divided // model if split else divided)
        scores = 0
        if group.kind == "attention":
            heads = group.heads // (model if split else 1)
            scores = 2 * heads * workload["sequence_length"]
            flops += (
                4
                * group.boundary[0]
                * workload["sequence_length"]
                // (model if split else 1)
            )
        memory["activation"] += tokens * (features + scores) * act
        if split:
            _boundary_collectives(collectives, group, option, tokens * act)
    if sync_bytes:
        _add(collectives, "all_reduce@batch", 1, sync_bytes)
    compute = 3 * flops * tokens / constants["flops_per_s"]
    communication = sum(
        _seconds(name, entry, mesh, constants) for name, entry in collectives.items()
    )
    return Figures(
        mesh=tuple(mesh),
        choices=effective,
        fsdp=any("batch" in a for a in axes.values()),
        axes=[axes[i] for i in sorted(axes)],
        weight_bytes=memory["weight"],
        gradient_bytes=memory["gradient"],
        slot_bytes=memory["slot"],
        activation_bytes=memory["activation"],
        collectives={k: dict(v) for k, v in sorted(collectives.items())},
        compute_s=compute,
        communication_s=communication,
    )


def _layout(weight, model_dim, fsdp, batch, model):
    """`(axes, bytes per device)` of a weight."""
    axes = [None] * len(weight.shape)
    parts = 1
    if model_dim is not None and model > 1:
        axes[model_dim] = "model"
        parts *= model
    if fsdp and batch > 1 and weight.size >= SMALL_WEIGHT:
        free = [
            d
            for d in range(len(weight.shape))
            if axes[d] is None and weight.shape[d] % batch == 0
        ]
        if free:
            axes[max(free, key=lambda d: weight.shape[d])] = "batch"
            parts *= batch
    return tuple(axes), weight.bytes // parts


def _boundary_collectives(collectives, group, option, bytes_per_feature):
    forward, backward = group.boundary
    if group.kind == "embedding":
        op = "all_reduce" if option == "vocabulary" else "all_gather"
        _add(collectives, f"{op}@model", 1, forward * bytes_per_feature)
        return
    _add(collectives, "all_reduce@model", 1, forward * bytes_per_feature)
    if backward:
        _add(collectives, "all_reduce@model", 1, backward * bytes_per_feature)


def _add(collectives, name, count, size):
    collectives[name]["count"] += count
    collectives[name]["bytes"] += int(size)


def _seconds(name, entry, mesh, constants):
    op, axis = name.split("@")
    n = mesh[0] if axis == "batch" else mesh[1]
    if n == 1:
        return 0.0
    ring = 2 * (n - 1) / n if op == "all_reduce" else (n - 1) / n
    return (
        entry["count"] * constants["latency_s"]
        + entry["bytes"] * ring / constants["bytes_per_s"]
    )
