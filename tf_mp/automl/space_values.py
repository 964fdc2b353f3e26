"""The choices of a student search space, from the arguments given."""


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
