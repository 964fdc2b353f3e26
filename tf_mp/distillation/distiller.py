"""`tf_mp.Distiller`: teacher-student training of BERT-style Keras models."""

import keras

from tf_mp.distillation import features as features_lib
from tf_mp.distillation import losses
from tf_mp.parallel import _dtensor_bridge

INPUTS = "inputs"
TEACHER_OUTPUTS = "teacher_outputs"


class _Untracked:
    """Attributes Keras must not track: the feature models (they share the
    teacher's and student's layers, which are tracked once, as themselves) and
    the student's features between `call` and `compute_loss` of one step (one
    forward pass gives the logits and the features)."""

    student = None
    teacher = None
    features = None


@keras.saving.register_keras_serializable(package="tf_mp")
class Distiller(keras.Model):
    """Trains `student` to imitate a frozen `teacher`, with plain `compile`/`fit`.

    The loss is

        alpha * student_loss(labels, student logits)
        + (1 - alpha) * T^2 KL(softmax(teacher / T) || softmax(student / T))
          [or, with logits_loss="mean_squared_error": MSE(teacher, student logits)]
        + hidden_weight * MSE(projected student hidden states, teacher's)
        + attention_weight * KL(teacher attention || student attention)

    where `student_loss` is the loss given to `compile` and the logits term is
    `keras.distillation.LogitsDistillation`. Hidden states are the outputs of
    encoder blocks (keras-hub `TransformerEncoder`s, tf_mp's parallel ones
    included), however deeply nested in the models; `layer_map` pairs student
    block i with teacher block j. When the widths differ, a learned projection
    (part of the distiller, not of the student) maps student states to the
    teacher's width. Attention transfer (MiniLM) compares the attention
    distributions of the blocks in `attention_layer_map`. Hidden and attention
    terms skip padded tokens when the inputs carry a `"padding_mask"`.

    `call` returns the student's outputs. `History` gets the total `loss`, the
    `student_loss`, and one entry per active distillation term
    (`distillation_loss`, `hidden_state_loss`, `attention_loss`), with `val_`
    twins in validation. Batches whose inputs are
    `{"inputs": x, "teacher_outputs": ...}` (from `tf_mp.distillation.
    TeacherCache`) use the cached teacher outputs instead of running the
    teacher. Unlabelled transfer examples: give them `sample_weight` 0, and
    the labelled ones `n_examples / n_labelled`, so the labels loss stays a
    mean over labelled examples instead of shrinking with the share of
    unlabelled ones in each batch. As in any Keras model, `compile`'s
    `metrics` count every example; give them as `weighted_metrics` to leave
    the unlabelled ones out.

    Args:
        teacher: a functional Keras model (e.g. a fine-tuned keras-hub
            `BertTextClassifier` with `preprocessor=None`). Frozen.
        student: a functional Keras model with the teacher's inputs and number
            of outputs, and the same vocabulary.
        temperature: float > 0. Softmax temperature of the logits term.
        alpha: float in [0, 1]. Weight of the student (labels) loss; the logits
            term gets `1 - alpha`.
        logits_loss: `"kl_divergence"` (alias `"kld"`, the default): T^2 KL of
            the tempered softmaxes (Hinton et al., 2015). `"mean_squared_error"`
            (alias `"mse"`): mean squared error between the raw logits, the
            high-temperature limit of the former, which Tang et al. (2019) use
            to distil BERT into small task models; `temperature` is not used.
        hidden_weight: float >= 0. Weight of the hidden-state term.
        attention_weight: float >= 0. Weight of the attention term.
        layer_map: `{student_block: teacher_block}` for the hidden-state term.
            Defaults to a uniform map whose last student block reads the
            teacher's last block.
        attention_layer_map: `{student_block: teacher_block}` for the attention
            term. Defaults to the last blocks of each.

    Example:

    ```python
    distiller = tf_mp.Distiller(teacher, student, temperature=2.0, alpha=0.5,
                                hidden_weight=1.0)
    distiller.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["sparse_categorical_accuracy"])
    distiller.fit(train, validation_data=dev, epochs=2)
    distiller.student.save("student.keras")
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        *,
        temperature=2.0,
        alpha=0.5,
        logits_loss="kl_divergence",
        hidden_weight=0.0,
        attention_weight=0.0,
        layer_map=None,
        attention_layer_map=None,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        _check_number("temperature", temperature, low=0.0, low_open=True)
        _check_number("alpha", alpha, low=0.0, high=1.0)
        logits_loss = _logits_loss_name(logits_loss)
        _check_number("hidden_weight", hidden_weight, low=0.0)
        _check_number("attention_weight", attention_weight, low=0.0)
        _check_compatible(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.logits_loss = logits_loss
        self.hidden_weight = float(hidden_weight)
        self.attention_weight = float(attention_weight)

        teacher_depth = len(features_lib.encoder_blocks(teacher))
        student_depth = len(features_lib.encoder_blocks(student))
        self.layer_map = _layer_map(
            "layer_map",
            layer_map if hidden_weight else {},
            student_depth,
            teacher_depth,
            default=_uniform_map(student_depth, teacher_depth),
        )
        self.attention_layer_map = _layer_map(
            "attention_layer_map",
            attention_layer_map if attention_weight else {},
            student_depth,
            teacher_depth,
            default={student_depth - 1: teacher_depth - 1},
        )
        self._untracked = _Untracked()
        self._untracked.student = features_lib.feature_model(
            student, self.layer_map.keys(), self.attention_layer_map.keys(), "student"
        )
        self._untracked.teacher = features_lib.feature_model(
            teacher,
            self.layer_map.values(),
            self.attention_layer_map.values(),
            "teacher",
        )
        self._logits_loss = _logits_distillation(logits_loss, self.temperature)
        self.projections = self._make_projections()
        self._trackers = {"student_loss": keras.metrics.Mean(name="student_loss")}
        for name, active in (
            ("distillation_loss", self.alpha < 1.0),
            ("hidden_state_loss", bool(self.layer_map)),
            ("attention_loss", bool(self.attention_layer_map)),
        ):
            if active:
                self._trackers[name] = keras.metrics.Mean(name=name)
        self.built = True

    def _make_projections(self):
        """One `Dense` per mapped student block whose width differs."""
        student = self._untracked.student.output
        teacher = self._untracked.teacher.output
        projections = {}
        for s, t in self.layer_map.items():
            width_s = student[features_lib.hidden_key(s)].shape[-1]
            width_t = teacher[features_lib.hidden_key(t)].shape[-1]
            if width_s != width_t:
                projection = keras.layers.Dense(
                    width_t, use_bias=False, name=f"hidden_projection_{s}"
                )
                projection.build((None, None, width_s))
                projections[str(s)] = projection
        return projections

    @property
    def teacher_blocks_needed(self):
        """`(hidden_blocks, attention_blocks)` of the teacher this distiller reads;
        what a `TeacherCache` must hold."""
        return sorted(set(self.layer_map.values())), sorted(
            set(self.attention_layer_map.values())
        )

    def call(self, inputs, training=False):
        inputs = _split(inputs)[0]
        features = self._untracked.student(inputs, training=training)
        self._untracked.features = features
        return features[features_lib.LOGITS]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        inputs, cached = _split(x)
        student = self._untracked.features
        if student is None or student[features_lib.LOGITS] is not y_pred:
            student = self._untracked.student(inputs, training=training)
        teacher = cached
        if teacher is None:
            teacher = self._untracked.teacher(inputs, training=False)
        teacher = keras.tree.map_structure(keras.ops.stop_gradient, teacher)
        mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None

        student_loss = super().compute_loss(
            x=inputs, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        terms = {"student_loss": (self.alpha, student_loss)}
        if "distillation_loss" in self._trackers:
            value = self._logits_loss.compute_loss(
                keras.ops.cast(_get(teacher, features_lib.LOGITS), "float32"),
                keras.ops.cast(y_pred, "float32"),
            )
            terms["distillation_loss"] = (1.0 - self.alpha, value)
        if self.layer_map:
            values = []
            for s, t in self.layer_map.items():
                hidden = student[features_lib.hidden_key(s)]
                if str(s) in self.projections:
                    hidden = self.projections[str(s)](hidden)
                target = _get(teacher, features_lib.hidden_key(t))
                values.append(losses.hidden_state_loss(target, hidden, mask))
            terms["hidden_state_loss"] = (self.hidden_weight, _mean(values))
        if self.attention_layer_map:
            values = [
                losses.attention_loss(
                    _get(teacher, features_lib.attention_key(t)),
                    student[features_lib.attention_key(s)],
                    mask,
                )
                for s, t in self.attention_layer_map.items()
            ]
            terms["attention_loss"] = (self.attention_weight, _mean(values))

        total = 0.0
        batch = keras.ops.shape(y_pred)[0]
        for name, (weight, value) in terms.items():
            self._trackers[name].update_state(
                _dtensor_bridge.unscale_loss_for_distribution(value),
                sample_weight=batch,
            )
            total = total + weight * keras.ops.cast(value, "float32")
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "temperature": self.temperature,
                "alpha": self.alpha,
                "logits_loss": self.logits_loss,
                "hidden_weight": self.hidden_weight,
                "attention_weight": self.attention_weight,
                "layer_map": {str(s): t for s, t in self.layer_map.items()},
                "attention_layer_map": {
                    str(s): t for s, t in self.attention_layer_map.items()
                },
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        for key in ("layer_map", "attention_layer_map"):
            config[key] = {int(s): t for s, t in config[key].items()}
        return cls(**config)


def save_student(distiller, filepath):
    """Saves the distiller's student alone (no teacher, no projections) as a
    `.keras` file."""
    distiller.student.save(filepath)


def _split(x):
    """`(model inputs, cached teacher outputs or None)`."""
    if isinstance(x, dict) and set(x) == {INPUTS, TEACHER_OUTPUTS}:
        return x[INPUTS], x[TEACHER_OUTPUTS]
    return x, None


def _get(teacher_outputs, key):
    if key not in teacher_outputs:
        raise ValueError(
            f"The cached teacher outputs have no {key!r} (they hold "
            f"{sorted(teacher_outputs)}). Build the `TeacherCache` with the "
            "blocks this distiller reads (`distiller.teacher_blocks_needed`)."
        )
    return teacher_outputs[key]


def _mean(values):
    return keras.ops.mean(keras.ops.stack(values))


def _uniform_map(student_depth, teacher_depth):
    """Student block i reads teacher block ceil((i + 1) * T / S) - 1."""
    if not student_depth or not teacher_depth:
        return {}
    return {
        i: -(-(i + 1) * teacher_depth // student_depth) - 1
        for i in range(student_depth)
    }


def _layer_map(argument, layer_map, student_depth, teacher_depth, default):
    if layer_map is None:
        layer_map = default
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


_LOGITS_LOSSES = {
    "kl_divergence": "kl_divergence",
    "kld": "kl_divergence",
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
}


def _logits_loss_name(logits_loss):
    if not isinstance(logits_loss, str) or logits_loss not in _LOGITS_LOSSES:
        raise ValueError(
            "`logits_loss` must be one of "
            f"{sorted(_LOGITS_LOSSES)}. Received: logits_loss={logits_loss!r}"
        )
    return _LOGITS_LOSSES[logits_loss]


def _logits_distillation(name, temperature):
    """`keras.distillation.LogitsDistillation` computing the `logits_loss` term."""
    if name == "mean_squared_error":
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


def _check_number(argument, value, low=None, high=None, low_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = {
            "temperature": "a number > 0",
            "alpha": "a number in [0, 1]",
        }.get(argument, "a number >= 0")
        raise ValueError(
            f"`{argument}` must be {bounds}. Received: {argument}={value!r}"
        )


def _check_compatible(teacher, student):
    """Same inputs, number of classes and vocabulary; else a ValueError naming both."""
    for model, role in ((teacher, "teacher"), (student, "student")):
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"The {role} must be a Keras model. Received: {role}={model!r}"
            )
        if not model.built:
            raise ValueError(
                f"The {role} must be built (call it on data or use a functional "
                f"model). Received: {role}={model.name!r}, unbuilt"
            )
    names = [sorted(_input_names(m)) for m in (teacher, student)]
    if names[0] != names[1]:
        raise ValueError(
            f"The teacher and the student must take the same inputs. Received: "
            f"teacher inputs {names[0]}, student inputs {names[1]}"
        )
    classes = [m.output.shape[-1] for m in (teacher, student)]
    if classes[0] != classes[1]:
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


def _input_names(model):
    inputs = model.input
    if isinstance(inputs, dict):
        return list(inputs)
    return [t.name for t in keras.tree.flatten(inputs)]


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
