"""`StudentSpace`: the choices a student search draws from."""

import dataclasses

from tf_mp.automl.settings import NO_TRANSFER
from tf_mp.utils.checks import check_numbers
from tf_mp.utils.schedules import LR_SCHEDULES

# Choices counted in whole units, and the checks on the named strings.
_SIZES = ("num_layers", "num_heads", "head_size", "intermediate_dim")
_NAMED = {"init": ("teacher", "random"), "lr_schedule": LR_SCHEDULES}


@dataclasses.dataclass(frozen=True)
class StudentSpace:
    """The search space of a `StudentHyperModel`.

    Every field takes a list of values to choose from, or a single value to
    fix it. The hidden size is `num_heads x head_size`. With `init="teacher"`
    (only offered when `head_size` is the teacher's), the student starts from
    the teacher's weights: depth L copies L evenly spread teacher blocks
    (`[0, 2, 4]` of 6 for L=3), narrower widths keep the teacher's most
    important heads and units (see `tf_mp.distillation.student_from_teacher`);
    `init="random"` starts from a fresh initialisation (`student_from_config`).

    Args:
        num_layers: student depths. Defaults to 1..teacher depth.
        num_heads: heads per block. Defaults to the teacher's heads / 4, / 2
            and x 1.
        head_size: size of each head. Defaults to the teacher's.
        intermediate_dim: feed-forward widths. Defaults to the teacher's / 4,
            / 2 and x 1.
        init: `"teacher"` and/or `"random"`.
        temperature: distillation temperatures.
        alpha: weights of the labels loss (the logits term gets `1 - alpha`).
        learning_rate: Adam learning rates.
        lr_schedule: `"linear"` (default) decays each trial's learning rate
            linearly to 0 over the steps its `fit` runs, as `tf-mp distill`,
            `tf-mp tune` and the distillation benchmarks train; `"constant"`
            keeps it. A list of both searches them.
        hidden_weight: weight of the hidden-state term (0 means logits only,
            the cheapest teacher cache).
        transfer: optional choices of training data, a Keras Tuner
            hyperparameter named `"transfer"`: `"none"` (the labelled rows
            alone) and names of `TransferData.sets` (unlabelled rows the
            teacher labels, mixed with the labelled rows). `fit` then takes
            the `TransferChoices` that `search_student` builds. Defaults to no
            such hyperparameter.
    """

    num_layers: object = None
    num_heads: object = None
    head_size: object = None
    intermediate_dim: object = None
    init: object = ("teacher", "random")
    temperature: object = (1.0, 2.0, 4.0)
    alpha: object = (0.1, 0.3, 0.5, 0.7)
    learning_rate: object = (5e-5, 1e-4, 3e-4)
    lr_schedule: object = "linear"
    hidden_weight: object = 0.0
    transfer: object = None

    def __post_init__(self):
        given = {
            field.name: choices_of(field.name, getattr(self, field.name), ())
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        }
        for name in _SIZES:
            if name in given:
                check_numbers(name, given[name], integer=True, low=1)
        for name, allowed in _NAMED.items():
            if any(v not in allowed for v in given[name]):
                raise ValueError(
                    f"`{name}` values must be one of {list(allowed)}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if not all(isinstance(v, str) for v in given.get("transfer", ())):
            raise ValueError(
                f"`transfer` values must be names: {NO_TRANSFER!r} or names of "
                f"`TransferData.sets`. Received: transfer={self.transfer!r}"
            )

    def choices(self, teacher_config, model_parallelism=1):
        """`{hyperparameter: [choices]}` for a teacher of `teacher_config`
        (`encoder_config`'s dict), keeping the head and unit counts that
        `model_parallelism` divides (an error naming the field when none is
        left)."""
        depth, heads = teacher_config["num_layers"], teacher_config["num_heads"]
        defaults = {
            "num_layers": range(1, depth + 1),
            "num_heads": fractions_of(heads),
            "head_size": [teacher_config["hidden_dim"] // heads],
            "intermediate_dim": fractions_of(teacher_config["intermediate_dim"]),
        }
        space = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "transfer" and value is None:
                continue
            space[field.name] = choices_of(
                field.name, value, defaults.get(field.name, ())
            )
        for name in ("num_heads", "intermediate_dim"):
            space[name] = dividing_choices(name, space[name], model_parallelism)
        return space


def fractions_of(value):
    """A quarter, a half and all of `value` (at least 1): default choices."""
    return sorted({v for v in (value // 4, value // 2, value) if v >= 1})


def choices_of(argument, value, default):
    """`value` (one or a list; `default` when None) as a list of distinct
    choices; an error naming `argument` when it offers none."""
    if value is None:
        value = list(default)
    if isinstance(value, (str, int, float)):
        value = [value]
    try:
        values = list(dict.fromkeys(value))
    except TypeError:
        raise ValueError(
            f"`{argument}` must be a value or a list of values. "
            f"Received: {argument}={value!r}"
        ) from None
    if not values:
        raise ValueError(
            f"`{argument}` offers no value. Received: {argument}={value!r}"
        )
    return values


def dividing_choices(argument, values, k):
    """The `values` the model axis size `k` divides; an error naming
    `argument` when none is left."""
    if k == 1:
        return values
    kept = [v for v in values if isinstance(v, int) and v % k == 0]
    if not kept:
        raise ValueError(
            f"No `{argument}` value divides the mesh's model axis ({k}). "
            f"Received: {argument}={values}"
        )
    return kept


def model_axis_size(distribution, model_axis):
    if distribution is None:
        return 1
    shape = distribution.mesh.shape
    if model_axis not in shape:
        raise ValueError(
            f"`model_axis` must be one of the mesh axes {list(shape)}. "
            f"Received: model_axis={model_axis!r}"
        )
    return int(shape[model_axis])
