"""`tf_mp.Distiller`: teacher-student training of BERT-style Keras models."""

import keras

from tf_mp.distillation import features as features_lib
from tf_mp.distillation import recipe as recipe_lib
from tf_mp.distillation import terms as terms_lib
from tf_mp.distillation.cached_inputs import split_cached
from tf_mp.distillation.compatibility import check_compatible
from tf_mp.parallel import keras_compat


@keras.saving.register_keras_serializable(package="tf_mp")
class Distiller(keras.Model):
    """Trains `student` to imitate a frozen `teacher`, with plain `compile`/`fit`.

    Two ways to say what it learns from, the same engine underneath:

    * Keras's: `distillation_losses` (a `keras.distillation.DistillationLoss`
      or a list: Keras's `LogitsDistillation` and `FeatureDistillation`,
      tf_mp's `HiddenStateDistillation` and `AttentionDistillation`),
      `distillation_loss_weights` and `student_loss_weight`, with the loss of
      `keras.distillation.Distiller`:
      `w * student_loss + (1 - w) * sum_i(weight_i * term_i)`. History logs
      `student_loss`, `distillation_loss` (the weighted sum) and `total_loss`,
      as Keras's does. A drop-in for `keras.distillation.Distiller`.
    * tf_mp's short form, the keyword arguments below, which build the usual
      list and weigh each term on its own. The loss is

        alpha * student_loss(labels, student logits)
        + (1 - alpha) * T^2 KL(softmax(teacher / T) || softmax(student / T))
          [or, with logits_loss="mean_squared_error": MSE(teacher, student logits)]
        + hidden_weight * MSE(projected student hidden states, teacher's)
        + attention_weight * KL(teacher attention || student attention)

    where `student_loss` is the loss given to `compile`. Hidden states and
    attention are read from encoder blocks (keras-hub `TransformerEncoder`s,
    tf_mp's parallel ones included) however deeply nested, skipping padded
    tokens when the inputs carry a `"padding_mask"`; where widths differ, a
    learned projection (the distiller's, not the student's) maps student
    states to the teacher's width. `History` gets `loss`, `student_loss` and
    one entry per active term (`distillation_loss`, `hidden_state_loss`,
    `attention_loss`), with `val_` twins.

    `call` returns the student's outputs. Batches whose inputs are
    `{"inputs": x, "teacher_outputs": ...}` (from `TeacherCache`) use the
    cached teacher outputs. Unlabelled transfer examples take `sample_weight`
    0, and the labelled ones `n_examples / n_labelled`, so the labels loss
    stays a mean over labelled examples; give `compile`'s metrics as
    `weighted_metrics` to leave the unlabelled ones out.

    Args:
        teacher: a Keras model (e.g. a fine-tuned keras-hub
            `BertTextClassifier` with `preprocessor=None`). Frozen. Terms that
            read inside it (blocks, named layers) need a functional model.
        student: a Keras model with the teacher's inputs and number of
            outputs, and the same vocabulary.
        distillation_losses: as in `keras.distillation.Distiller`. Excludes
            the short-form arguments below.
        distillation_loss_weights: list of floats, one per distillation loss.
            Defaults to 1.0 each.
        student_loss_weight: float in [0, 1]. Defaults to 0.5.
        temperature: float > 0. Softmax temperature of the logits term.
        alpha: float in [0, 1]. Weight of the student (labels) loss; the logits
            term gets `1 - alpha`.
        logits_loss: `"kl_divergence"` (alias `"kld"`, the default): T^2 KL of
            the tempered softmaxes (Hinton et al., 2015). `"mean_squared_error"`
            (alias `"mse"`): MSE of the raw logits (Tang et al., 2019).
        hidden_weight: float >= 0. Weight of the hidden-state term.
        attention_weight: float >= 0. Weight of the attention term.
        layer_map: `{student_block: teacher_block}` for the hidden-state term.
            Defaults to a uniform map whose last student block reads the
            teacher's last block.
        attention_layer_map: `{student_block: teacher_block}` for the attention
            term. Defaults to the last blocks of each.

    Example:

    ```python
    distiller = tf_mp.Distiller(teacher, student, alpha=0.5, hidden_weight=1.0)
    distiller.compile("adam", SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(train, validation_data=dev, epochs=2)
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=None,
        *,
        temperature=None,
        alpha=None,
        logits_loss=None,
        hidden_weight=None,
        attention_weight=None,
        layer_map=None,
        attention_layer_map=None,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        short_form = dict(
            temperature=temperature,
            alpha=alpha,
            logits_loss=logits_loss,
            hidden_weight=hidden_weight,
            attention_weight=attention_weight,
            layer_map=layer_map,
            attention_layer_map=attention_layer_map,
        )
        check_compatible(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        depths = (
            len(features_lib.encoder_blocks(student)),
            len(features_lib.encoder_blocks(teacher)),
        )
        # Both forms end as one recipe: the terms, weights and coefficients.
        self._recipe = recipe = recipe_lib.from_arguments(
            short_form,
            distillation_losses,
            distillation_loss_weights,
            student_loss_weight,
            depths,
        )
        self.distillation_losses = recipe.terms
        self.distillation_loss_weights = recipe.weights
        self.student_loss_weight = recipe.student_loss_weight
        for key, value in recipe.attributes().items():
            setattr(self, key, value)
        for term in recipe.terms:
            term.validate_model_compatibility(teacher, student)
        self._untracked = features_lib.Untracked()
        self._untracked.student = recipe_lib.feature_model(
            recipe.terms, student, "student"
        )
        self._untracked.teacher = recipe_lib.feature_model(
            recipe.terms, teacher, "teacher"
        )
        self.projections = {}
        if self.layer_map:
            self.projections = recipe_lib.projections(
                recipe.terms, self._untracked.student, self._untracked.teacher
            )
        self._trackers = {n: keras.metrics.Mean(name=n) for n in recipe.logged}
        self.built = True

    @property
    def layer_map(self):
        """`{student_block: teacher_block}` of the hidden-state terms."""
        return recipe_lib.merged_map(
            self.distillation_losses, terms_lib.HiddenStateDistillation
        )

    @property
    def attention_layer_map(self):
        """`{student_block: teacher_block}` of the attention terms."""
        return recipe_lib.merged_map(
            self.distillation_losses, terms_lib.AttentionDistillation
        )

    @property
    def teacher_blocks_needed(self):
        """`(hidden_blocks, attention_blocks)` of the teacher this distiller reads;
        what a `TeacherCache` must hold."""
        terms = self.distillation_losses
        return (
            recipe_lib.blocks(terms, terms_lib.HiddenStateDistillation, "teacher"),
            recipe_lib.blocks(terms, terms_lib.AttentionDistillation, "teacher"),
        )

    def call(self, inputs, training=False):
        inputs = split_cached(inputs)[0]
        if self._untracked.student is None:
            return self.student(inputs, training=training)
        features = self._untracked.student(inputs, training=training)
        self._untracked.student_pass = features
        return features[features_lib.LOGITS]

    def _student_features(self, inputs, y_pred, training):
        features = self._untracked.student_pass
        if self._untracked.student is None:
            return {features_lib.LOGITS: y_pred}
        if features is None or features[features_lib.LOGITS] is not y_pred:
            features = self._untracked.student(inputs, training=training)
        return features

    def _teacher_features(self, inputs, cached):
        if cached is not None:
            teacher = cached
        elif self._untracked.teacher is None:
            teacher = {features_lib.LOGITS: self.teacher(inputs, training=False)}
        else:
            teacher = self._untracked.teacher(inputs, training=False)
        return keras.tree.map_structure(keras.ops.stop_gradient, teacher)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        inputs, cached = split_cached(x)
        if y_pred is None:
            y_pred = self(inputs, training=training)
        recipe = self._recipe
        student_loss = keras.ops.convert_to_tensor(0.0)
        if y is not None and not recipe.skip_student:
            student_loss = super().compute_loss(
                x=inputs, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=training,
            )  # fmt: skip
        values = [student_loss] + [0.0] * len(self.distillation_losses)
        if not recipe.skip_terms:
            student = self._student_features(inputs, y_pred, training)
            teacher = self._teacher_features(inputs, cached)
            mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
            values[1:] = [
                terms_lib.evaluate(t, teacher, student, y_pred, mask, self.projections)
                for t in self.distillation_losses
            ]
        total = 0.0
        for coefficient, value in zip(recipe.coefficients, values):
            total = total + coefficient * keras.ops.cast(value, "float32")
        batch = keras.ops.shape(y_pred)[0]
        for name, value in zip(recipe.logged, recipe.logged_values(values, total)):
            self._trackers[name].update_state(
                keras_compat.unscale_loss_for_distribution(value),
                sample_weight=batch,
            )
        return total

    def get_config(self):
        config = super().get_config()
        config["teacher"] = keras.saving.serialize_keras_object(self.teacher)
        config["student"] = keras.saving.serialize_keras_object(self.student)
        config.update(self._recipe.config())
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        if "distillation_losses" in config:
            config["distillation_losses"] = [
                keras.saving.deserialize_keras_object(t, custom_objects=custom_objects)
                for t in config["distillation_losses"]
            ]
        for key in ("layer_map", "attention_layer_map"):
            if config.get(key) is not None:
                config[key] = {int(s): t for s, t in config[key].items()}
        return cls(**config)


def save_student(distiller, filepath):
    """Saves the distiller's student alone (no teacher, no projections) as a
    `.keras` file."""
    distiller.student.save(filepath)
