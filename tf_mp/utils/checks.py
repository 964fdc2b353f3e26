"""Argument checks with Keras's error style: name the argument and the value."""

import numbers


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A `TypeError`, as Python has it, and a
    `ValueError`, as Keras raises for bad arguments (so code written against
    either convention catches it), like NumPy's `AxisError`."""


def _describe(integer, low, high, low_open, plural=False):
    if integer and low == 1 and not low_open and high is None:
        return "positive integers" if plural else "a positive integer"
    noun = "integer" if integer else "number"
    noun = f"{noun}s" if plural else f"{'an' if integer else 'a'} {noun}"
    if low is not None and high is not None:
        return f"{noun} in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{noun} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{noun} <= {high:g}"
    return noun


def _is_number(value, integer):
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def _in_range(value, low, high, low_open):
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def check_number(
    argument,
    value,
    *,
    integer=False,
    low=None,
    high=None,
    low_open=False,
    optional=False,
):
    """Returns `value`, or raises naming `argument` and `value`.

    `ArgumentTypeError` (a `TypeError` and a `ValueError`) when `value` is not
    a number (not an int with `integer=True`; `bool` is neither), `ValueError`
    when it is outside `[low, high]` (`(low, high]` with `low_open=True`).
    `optional=True` lets `None` through.
    """
    if value is None and optional:
        return value
    if not _is_number(value, integer) or not _in_range(value, low, high, low_open):
        error = ValueError if _is_number(value, integer) else ArgumentTypeError
        kind = _describe(integer, low, high, low_open)
        raise error(f"`{argument}` must be {kind}. Received: {argument}={value!r}")
    return value


def check_numbers(argument, values, **bounds):
    """`check_number` for each of `values` (a search space's choices)."""
    for value in values:
        try:
            check_number(argument, value, **bounds)
        except (TypeError, ValueError) as error:
            kind = _describe(
                bounds.get("integer", False),
                bounds.get("low"),
                bounds.get("high"),
                bounds.get("low_open", False),
                plural=True,
            )
            raise type(error)(
                f"`{argument}` values must be {kind}. Received: {argument}={values}"
            ) from None
    return values
