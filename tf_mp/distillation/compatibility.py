"""Can this teacher teach this student? Checked when a `Distiller` is built."""

import keras


def check_compatible(teacher, student):
    """Keras models with matching inputs, number of outputs and vocabulary.

    Inputs match by name when the models take a dict (keras-hub's
    `token_ids`, `padding_mask`, ...), else by count and shape, as
    `keras.distillation.Distiller` checks them. What an unbuilt model (a
    `Sequential` without an `Input`) cannot tell yet is checked when it is.
    """
    for model, role in ((teacher, "teacher"), (student, "student")):
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"The {role} must be a Keras model. Received: {role}={model!r}"
            )
    if _inputs(teacher) is not None and _inputs(student) is not None:
        _check_inputs(_inputs(teacher), _inputs(student))
    classes = [_classes(m) for m in (teacher, student)]
    if None not in classes and classes[0] != classes[1]:
        raise ValueError(
            "The teacher and the student must have the same number of outputs "
            f"(classes). Received: teacher {classes[0]}, student {classes[1]}"
        )
    vocab = [_vocabulary_size(m) for m in (teacher, student)]
    if None not in vocab and vocab[0] != vocab[1]:
        raise ValueError(
            "The teacher and the student must share a vocabulary. Received: "
            f"teacher vocabulary_size={vocab[0]}, student vocabulary_size={vocab[1]}"
        )


def _inputs(model):
    try:
        return model.input if model.built else None
    except (AttributeError, ValueError):  # Subclassed models have no `input`.
        return None


def _check_inputs(teacher, student):
    if isinstance(teacher, dict) or isinstance(student, dict):
        names = [sorted(_names(x)) for x in (teacher, student)]
        if names[0] != names[1]:
            raise ValueError(
                "The teacher and the student must take the same inputs. "
                f"Received: teacher inputs {names[0]}, student inputs {names[1]}"
            )
        return
    shapes = [
        [tuple(t.shape) for t in keras.tree.flatten(x)] for x in (teacher, student)
    ]
    compatible = len(shapes[0]) == len(shapes[1]) and all(
        len(a) == len(b) and all(i is None or j is None or i == j for i, j in zip(a, b))
        for a, b in zip(*shapes)
    )
    if not compatible:
        raise ValueError(
            "The teacher and the student must take the same inputs. Received: "
            f"teacher input shapes {shapes[0]}, student input shapes {shapes[1]}"
        )


def _names(inputs):
    if isinstance(inputs, dict):
        return list(inputs)
    return [t.name for t in keras.tree.flatten(inputs)]


def _classes(model):
    try:
        outputs = model.outputs if model.built else None
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        return None
    return outputs[0].shape[-1]


def _vocabulary_size(model):
    for layer in [model, *getattr(model, "layers", [])]:
        size = getattr(layer, "vocabulary_size", None)
        if isinstance(size, int):
            return size
        if isinstance(layer, keras.Model) and layer is not model:
            size = _vocabulary_size(layer)
            if size is not None:
                return size
    return None
