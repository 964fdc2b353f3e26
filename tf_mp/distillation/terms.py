"""Distillation terms as `keras.distillation.DistillationLoss` objects.

Keras ships `LogitsDistillation` (soft targets) and `FeatureDistillation`
(outputs of named layers). tf_mp adds the two terms of TinyBERT and MiniLM that
read encoder blocks by index, however deeply they are nested in the models:
`HiddenStateDistillation` and `AttentionDistillation`. They take the feature
dicts of `tf_mp.distillation.features.feature_model` (`"hidden_state_i"`,
`"attention_i"`) and the padding mask, and work the same whether the teacher
runs in the step or comes from a `TeacherCache`.
"""

import keras

from tf_mp.distillation import features as features_lib
from tf_mp.distillation import losses


def uniform_layer_map(student_depth, teacher_depth):
    """`{student_block: teacher_block}`: student block i reads teacher block
    ceil((i + 1) * T / S) - 1, so the last blocks are paired."""
    if not student_depth or not teacher_depth:
        return {}
    return {
        i: -(-(i + 1) * teacher_depth // student_depth) - 1
        for i in range(student_depth)
    }


def check_layer_map(argument, layer_map, student_depth, teacher_depth):
    """`layer_map` with int keys and values, or an error naming `argument`."""
    if not isinstance(layer_map, dict):
        raise TypeError(
            f"`{argument}` must be a dict {{student_block: teacher_block}}. "
            f"Received: {argument}={layer_map!r}"
        )
    checked = {}
    for s, t in layer_map.items():
        s, t = int(s), int(t)
        if not (0 <= s < student_depth and 0 <= t < teacher_depth):
            raise ValueError(
                f"`{argument}` maps student block {s} to teacher block {t}, but "
                f"the student has {student_depth} encoder blocks and the teacher "
                f"{teacher_depth}. Received: {argument}={layer_map!r}"
            )
        checked[s] = t
    return checked


class BlockDistillation(keras.distillation.DistillationLoss):
    """Base of the terms that pair student and teacher encoder blocks.

    Args:
        layer_map: `{student_block: teacher_block}`, block indices in call
            order. `None`: the `Distiller` picks the default for the pair of
            models (see subclasses).
    """

    def __init__(self, layer_map=None):
        self.layer_map = None if layer_map is None else dict(layer_map)

    def default_layer_map(self, student_depth, teacher_depth):
        raise NotImplementedError

    def resolved(self, student_depth, teacher_depth, argument="layer_map"):
        """A copy whose `layer_map` is checked against the models' depths."""
        layer_map = self.layer_map
        if layer_map is None:
            layer_map = self.default_layer_map(student_depth, teacher_depth)
        layer_map = check_layer_map(argument, layer_map, student_depth, teacher_depth)
        if not layer_map:
            raise ValueError(
                f"{type(self).__name__} pairs encoder blocks, but the student has "
                f"{student_depth} and the teacher {teacher_depth} (keras-hub "
                "`TransformerEncoder`s or tf_mp's parallel ones). Remove the term "
                "(a zero weight) or use models with encoder blocks."
            )
        return type(self)(**{**self.get_config(), "layer_map": layer_map})

    def validate_outputs(self, teacher_outputs, student_outputs):
        for outputs, role in (
            (teacher_outputs, "teacher"),
            (student_outputs, "student"),
        ):
            if not isinstance(outputs, dict):
                raise ValueError(
                    f"{type(self).__name__} reads feature dicts; the {role} gave "
                    f"{type(outputs).__name__}."
                )

    def get_config(self):
        layer_map = self.layer_map
        if layer_map is not None:
            layer_map = {str(s): t for s, t in layer_map.items()}
        return {"layer_map": layer_map}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tf_mp")
class HiddenStateDistillation(BlockDistillation):
    """Mean squared error between encoder block outputs (TinyBERT), averaged
    over the tokens the padding mask keeps and over the mapped block pairs.

    Where widths differ, the student's states go through a learned projection
    (`projections[str(student_block)]`, owned by the `Distiller`, not the
    student). The default `layer_map` is uniform: student block i reads teacher
    block ceil((i + 1) * T / S) - 1.
    """

    def default_layer_map(self, student_depth, teacher_depth):
        return uniform_layer_map(student_depth, teacher_depth)

    def compute_loss(
        self, teacher_outputs, student_outputs, padding_mask=None, projections=None
    ):
        values = []
        for s, t in self.layer_map.items():
            hidden = student_outputs[features_lib.hidden_key(s)]
            if projections and str(s) in projections:
                hidden = projections[str(s)](hidden)
            target = features_lib.get(teacher_outputs, features_lib.hidden_key(t))
            values.append(losses.hidden_state_loss(target, hidden, padding_mask))
        return keras.ops.mean(keras.ops.stack(values))


@keras.saving.register_keras_serializable(package="tf_mp")
class AttentionDistillation(BlockDistillation):
    """KL(teacher || student) between attention distributions (MiniLM), over the
    queries the padding mask keeps, averaged over the mapped block pairs. With
    different head counts the head-averaged distributions are compared. The
    default `layer_map` pairs the last blocks."""

    def default_layer_map(self, student_depth, teacher_depth):
        if not student_depth or not teacher_depth:
            return {}
        return {student_depth - 1: teacher_depth - 1}

    def compute_loss(
        self, teacher_outputs, student_outputs, padding_mask=None, projections=None
    ):
        values = [
            losses.attention_loss(
                features_lib.get(teacher_outputs, features_lib.attention_key(t)),
                student_outputs[features_lib.attention_key(s)],
                padding_mask,
            )
            for s, t in self.layer_map.items()
        ]
        return keras.ops.mean(keras.ops.stack(values))


LOGITS_LOSSES = {
    "kl_divergence": "kl_divergence",
    "kld": "kl_divergence",
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
}


def logits_distillation(logits_loss="kl_divergence", temperature=2.0):
    """`keras.distillation.LogitsDistillation` for tf_mp's `logits_loss` names."""
    if not isinstance(logits_loss, str) or logits_loss not in LOGITS_LOSSES:
        raise ValueError(
            "`logits_loss` must be one of "
            f"{sorted(LOGITS_LOSSES)}. Received: logits_loss={logits_loss!r}"
        )
    if LOGITS_LOSSES[logits_loss] == "mean_squared_error":
        # Temperature 1: the loss on the raw logits, unscaled.
        return keras.distillation.LogitsDistillation(
            temperature=1.0, loss=keras.losses.MeanSquaredError()
        )
    # A `KLDivergence` instance, not the default "kl_divergence" string:
    # Keras 3.15 resolves the string to a plain function, which skips the
    # softmax and the T^2 scaling (KL of clipped raw logits).
    return keras.distillation.LogitsDistillation(
        temperature=temperature, loss=keras.losses.KLDivergence()
    )


def evaluate(term, teacher, student, y_pred, padding_mask=None, projections=None):
    """One term's value on what it reads: the feature dicts for tf_mp's block
    terms; named layers' outputs for `keras.distillation.FeatureDistillation`
    with layer names; else the teacher's and the student's logits."""
    if isinstance(term, BlockDistillation):
        term.validate_outputs(teacher, student)
        return term.compute_loss(
            teacher, student, padding_mask=padding_mask, projections=projections
        )
    t_name = getattr(term, "teacher_layer_name", None)
    s_name = getattr(term, "student_layer_name", None)
    t_key = features_lib.layer_key(t_name) if t_name else features_lib.LOGITS
    t_out = features_lib.get(teacher, t_key)
    s_out = student[features_lib.layer_key(s_name)] if s_name else y_pred
    t_out, s_out = (keras.ops.cast(v, "float32") for v in (t_out, s_out))
    term.validate_outputs(t_out, s_out)
    value = term.compute_loss(t_out, s_out)
    if len(getattr(value, "shape", ())) > 0:
        raise ValueError(
            f"Distillation loss {type(term).__name__} returned a non-scalar loss "
            f"with shape {value.shape}. Its compute_loss must return a scalar."
        )
    return value
