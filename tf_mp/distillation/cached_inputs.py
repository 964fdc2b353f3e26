"""What a `Distiller` is fed when its teacher's outputs are cached
(`TeacherCache`): `{INPUTS: x, TEACHER_OUTPUTS: outputs}` in place of `x`."""

INPUTS = "inputs"
TEACHER_OUTPUTS = "teacher_outputs"


def split_cached(x):
    """`(model inputs, cached teacher outputs or None)`."""
    if isinstance(x, dict) and set(x) == {INPUTS, TEACHER_OUTPUTS}:
        return x[INPUTS], x[TEACHER_OUTPUTS]
    return x, None
