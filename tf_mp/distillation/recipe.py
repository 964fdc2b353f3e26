"""How a `Distiller`'s arguments become its terms and their coefficients.

Both forms end as a `Recipe`: the `DistillationLoss` objects, their weights,
the student loss weight, the coefficient of each value in the total loss, and
the History names logged.
"""

import dataclasses

import keras

from tf_mp.distillation import features as features_lib
from tf_mp.distillation import terms as terms_lib
from tf_mp.utils.checks import check_number

SHORT_FORM_DEFAULTS = dict(
    temperature=2.0,
    alpha=0.5,
    logits_loss="kl_divergence",
    hidden_weight=0.0,
    attention_weight=0.0,
    layer_map=None,
    attention_layer_map=None,
)


@dataclasses.dataclass
class Recipe:
    """What a `Distiller` computes, whichever form its arguments took: the
    terms, their weights, and the coefficient of each value in the total.
    The two forms differ only in what they log and how they are saved."""

    terms: list
    weights: list  # `distillation_loss_weights`, one per term.
    student_loss_weight: float
    coefficients: list  # Of [student_loss, *terms] in the total loss.
    logged: list  # History names.
    # Keras's form computes no student loss at weight 0 and no term at weight 1.
    skip_student: bool = False
    skip_terms: bool = False

    def logged_values(self, values, total):
        """The values of `logged`, from `[student_loss, *term_values]`."""
        raise NotImplementedError

    def attributes(self):
        """The arguments the `Distiller` exposes as attributes."""
        return {}

    def config(self):
        """The `Distiller` arguments that rebuild this recipe."""
        raise NotImplementedError


@dataclasses.dataclass
class ShortFormRecipe(Recipe):
    arguments: dict = None  # The short-form arguments, resolved.
    logits_term: object = None

    def logged_values(self, values, total):
        return values  # The student loss and each term on its own.

    def attributes(self):
        names = ("temperature", "alpha", "logits_loss", "hidden_weight")
        attributes = {k: self.arguments[k] for k in (*names, "attention_weight")}
        attributes["_logits_loss"] = self.logits_term
        return attributes

    def config(self):
        config = {k: self.arguments[k] for k in SHORT_FORM_DEFAULTS}
        for key, cls in (
            ("layer_map", terms_lib.HiddenStateDistillation),
            ("attention_layer_map", terms_lib.AttentionDistillation),
        ):
            config[key] = {str(s): t for s, t in merged_map(self.terms, cls).items()}
        return config


@dataclasses.dataclass
class KerasFormRecipe(Recipe):
    def logged_values(self, values, total):
        weighted = 0.0
        for weight, value in zip(self.weights, values[1:]):
            weighted = weighted + weight * keras.ops.cast(value, "float32")
        return [values[0], weighted, total]

    def config(self):
        return {
            "distillation_losses": [
                keras.saving.serialize_keras_object(t) for t in self.terms
            ],
            "distillation_loss_weights": self.weights,
            "student_loss_weight": self.student_loss_weight,
        }


def short_form(arguments, depths):
    """tf_mp's keywords: alpha * student + (1 - alpha) * logits + hidden_weight *
    hidden + attention_weight * attention, each term logged on its own."""
    a = {k: SHORT_FORM_DEFAULTS[k] if v is None else v for k, v in arguments.items()}
    check_number("temperature", a["temperature"], low=0, low_open=True)
    check_number("alpha", a["alpha"], low=0, high=1)
    logits = terms_lib.logits_distillation(a["logits_loss"], a["temperature"])
    a["logits_loss"] = terms_lib.LOGITS_LOSSES[a["logits_loss"]]
    check_number("hidden_weight", a["hidden_weight"], low=0)
    check_number("attention_weight", a["attention_weight"], low=0)
    for key in ("temperature", "alpha", "hidden_weight", "attention_weight"):
        a[key] = float(a[key])
    chosen = []
    if a["alpha"] < 1.0:
        chosen.append((logits, 1.0 - a["alpha"], "distillation_loss"))
    if a["hidden_weight"]:
        term = terms_lib.HiddenStateDistillation(a["layer_map"]).resolved(*depths)
        chosen.append((term, a["hidden_weight"], "hidden_state_loss"))
    if a["attention_weight"]:
        term = terms_lib.AttentionDistillation(a["attention_layer_map"])
        term = term.resolved(*depths, argument="attention_layer_map")
        chosen.append((term, a["attention_weight"], "attention_loss"))
    weights = [weight for _, weight, _ in chosen]
    return ShortFormRecipe(
        terms=[term for term, _, _ in chosen],
        weights=weights,
        student_loss_weight=a["alpha"],
        coefficients=[a["alpha"], *weights],
        logged=["student_loss", *(name for _, _, name in chosen)],
        arguments=a,
        logits_term=logits,
    )


def keras_form(losses, weights, student_loss_weight, depths):
    """`keras.distillation.Distiller`'s: w * student + (1 - w) * sum(weight_i *
    term_i), logging `student_loss`, `distillation_loss`, `total_loss`."""
    if not isinstance(losses, (list, tuple)):
        losses, weights = [losses], [1.0] if weights is None else weights
    if weights is None:
        weights = [1.0] * len(losses)
    if len(weights) != len(losses):
        raise ValueError(
            f"Number of distillation_loss_weights ({len(weights)}) must match "
            f"number of distillation_losses ({len(losses)})"
        )
    for term in losses:
        if not isinstance(term, keras.distillation.DistillationLoss):
            raise TypeError(
                "`distillation_losses` must hold `keras.distillation."
                f"DistillationLoss` objects. Received: {term!r}"
            )
    w = 0.5 if student_loss_weight is None else student_loss_weight
    check_number("student_loss_weight", w, low=0, high=1)
    terms = [
        t.resolved(*depths) if isinstance(t, terms_lib.BlockDistillation) else t
        for t in losses
    ]
    return KerasFormRecipe(
        terms=terms,
        weights=list(weights),
        student_loss_weight=w,
        coefficients=[w, *((1.0 - w) * weight for weight in weights)],
        logged=["student_loss", "distillation_loss", "total_loss"],
        skip_student=w == 0,
        skip_terms=w == 1,
    )


def blocks(terms, cls, side):
    """Sorted block indices the `cls` terms read on `side` ("student" or
    "teacher")."""
    found = set()
    for term in terms:
        if isinstance(term, cls):
            mapping = term.layer_map
            found |= set(mapping.keys() if side == "student" else mapping.values())
    return sorted(found)


def merged_map(terms, cls):
    """`{student_block: teacher_block}` over the `cls` terms."""
    merged = {}
    for term in terms:
        if isinstance(term, cls):
            merged.update(term.layer_map)
    return merged


def feature_model(terms, model, role):
    """The feature model `role`'s side of `terms` reads, or `None` when the
    terms read only its outputs."""
    hidden = blocks(terms, terms_lib.HiddenStateDistillation, role)
    attention = blocks(terms, terms_lib.AttentionDistillation, role)
    names = sorted({getattr(t, f"{role}_layer_name", None) for t in terms} - {None})
    if not (hidden or attention or names):
        return None
    return features_lib.feature_model(model, hidden, attention, role, names)


def projections(terms, student_features, teacher_features):
    """One `Dense` per student block whose width differs from its teacher
    block's, for the hidden-state terms: `{str(student_block): Dense}`."""
    made = {}
    for s, t in merged_map(terms, terms_lib.HiddenStateDistillation).items():
        width_s = student_features.output[features_lib.hidden_key(s)].shape[-1]
        width_t = teacher_features.output[features_lib.hidden_key(t)].shape[-1]
        if width_s != width_t:
            projection = keras.layers.Dense(
                width_t, use_bias=False, name=f"hidden_projection_{s}"
            )
            projection.build((None, None, width_s))
            made[str(s)] = projection
    return made


def from_arguments(
    short_arguments,
    distillation_losses,
    distillation_loss_weights,
    student_loss_weight,
    depths,
):
    """The recipe of a `Distiller`'s arguments: Keras's form when
    `distillation_losses` is given, else the short form (`short_arguments`: its
    keyword arguments, None where not given); the two do not mix."""
    if distillation_losses is None:
        if distillation_loss_weights is not None or student_loss_weight is not None:
            raise ValueError(
                "`distillation_loss_weights` and `student_loss_weight` go "
                "with `distillation_losses`; the short form weighs the "
                "student loss with `alpha`."
            )
        return short_form(short_arguments, depths)
    given = sorted(k for k, v in short_arguments.items() if v is not None)
    if given:
        raise ValueError(
            "Pass either `distillation_losses` (Keras's form) or the "
            f"short-form arguments, not both. Received: {given} with "
            "distillation_losses"
        )
    return keras_form(
        distillation_losses, distillation_loss_weights, student_loss_weight, depths
    )
