"""`StudentHyperModel`: a Keras Tuner search space over distilled BERT students."""

import dataclasses
import json
import warnings
import zlib

import keras
import keras_tuner

from tf_mp.automl import search_data
from tf_mp.automl.search_data import NO_TRANSFER
from tf_mp.automl.space import StudentSpace
from tf_mp.automl.space import model_axis_size
from tf_mp.automl.tuners import TrialRejected
from tf_mp.distillation import students as students_lib
from tf_mp.distillation.distiller import Distiller
from tf_mp.distillation.terms import uniform_layer_map
from tf_mp.utils import schedules
from tf_mp.utils.classifiers import build_optimizer
from tf_mp.utils.classifiers import compile_arguments
from tf_mp.utils.scopes import optional_scope


class StudentHyperModel(keras_tuner.HyperModel):
    """Builds a compiled `tf_mp.Distiller` for a student sampled from a space.

    Args:
        teacher: a fine-tuned BERT classifier (keras-hub `BertTextClassifier`
            with `preprocessor=None`, plain or partitioned). Frozen.
        space: a `StudentSpace`: the shapes, initialisations and training
            settings to choose from. Defaults to `StudentSpace()`.
        distribution: optional `tf_mp.ModelParallel`; students are then built
            in its scope, and only shapes whose heads and feed-forward units
            divide its `model_axis` are proposed.
        model_axis: the tensor-parallel axis of `distribution`'s mesh.
        loss: the labels loss. Defaults to sparse categorical cross-entropy on
            logits.
        metrics: compiled metrics. Defaults to
            `SparseCategoricalAccuracy(name="accuracy")` (objective
            `"val_accuracy"`).
        seed: optional int. When given, each trial is seeded from it and its
            hyperparameters (`keras.utils.set_random_seed`) before its student
            is built: initialisation and dropout masks, hence the trial's
            score, are reproducible, and a re-proposed point scores the same.
        name, tunable: as in `keras_tuner.HyperModel`.
        **space_fields: deprecated: the fields of `StudentSpace`, as keywords.
    """

    def __init__(
        self,
        teacher,
        space=None,
        *,
        distribution=None,
        model_axis="model",
        loss=None,
        metrics=None,
        seed=None,
        name="student",
        tunable=True,
        **space_fields,
    ):
        super().__init__(name=name, tunable=tunable)
        self.student_space = _space_of(space, space_fields)
        self.teacher = teacher
        self.teacher_config = students_lib.encoder_config(teacher)
        config = self.teacher_config
        self.teacher_head_size = config["hidden_dim"] // config["num_heads"]
        self.distribution = distribution
        self.model_parallelism = model_axis_size(distribution, model_axis)
        # `{hyperparameter: [choices]}` for this teacher and mesh.
        self.space = self.student_space.choices(config, self.model_parallelism)
        self.loss = loss
        self.metrics = metrics
        self.seed = seed
        self._counted_batches = {}  # Datasets of unknown size: batches per epoch.

    @property
    def teacher_blocks_needed(self):
        """Teacher blocks any student of the space reads (for a shared
        `TeacherCache`): `(hidden_blocks, attention_blocks)`."""
        if not any(self.space["hidden_weight"]):
            return [], []
        depth = self.teacher_config["num_layers"]
        blocks = set()
        for layers in self.space["num_layers"]:
            blocks.update(uniform_layer_map(layers, depth).values())
        return sorted(blocks), []

    def student(self, hp):
        """The (untrained) student for the values in `hp`."""
        arch = self._architecture(hp)
        self.seed_trial(hp)
        with self._scope():
            if arch["init"] == "random":
                return students_lib.student_from_config(
                    self.teacher,
                    num_layers=arch["num_layers"],
                    hidden_dim=arch["num_heads"] * arch["head_size"],
                    num_heads=arch["num_heads"],
                    intermediate_dim=arch["intermediate_dim"],
                )
            config = self.teacher_config
            if (
                arch["num_layers"] > config["num_layers"]
                or arch["num_heads"] > config["num_heads"]
                or arch["intermediate_dim"] > config["intermediate_dim"]
            ):
                raise TrialRejected(
                    "init='teacher' needs a student no larger than the teacher "
                    f"({config['num_layers']} layers, {config['num_heads']} heads, "
                    f"{config['intermediate_dim']} units). Received: "
                    f"num_layers={arch['num_layers']}, "
                    f"num_heads={arch['num_heads']}, "
                    f"intermediate_dim={arch['intermediate_dim']}"
                )
            return students_lib.student_from_teacher(
                self.teacher,
                layers=spread_layers(arch["num_layers"], config["num_layers"]),
                num_heads=arch["num_heads"],
                intermediate_dim=arch["intermediate_dim"],
            )

    def seed_trial(self, hp):
        """With `seed`, seeds Keras's random state from it and the values in
        `hp` (`keras.utils.set_random_seed`): the same hyperparameters then
        give the same initialisation, dropout masks and score."""
        if self.seed is not None:
            text = json.dumps(hp.values, sort_keys=True).encode()
            keras.utils.set_random_seed(self.seed + zlib.crc32(text) % 2**16)

    def _architecture(self, hp):
        """Registers the student's hyperparameters in `hp`; returns their values."""
        arch = {
            name: hp.Choice(name, self.space[name])
            for name in ("num_layers", "num_heads", "head_size", "intermediate_dim")
        }
        arch["init"] = "random"
        with hp.conditional_scope("head_size", [self.teacher_head_size]):
            if arch["head_size"] == self.teacher_head_size:
                arch["init"] = hp.Choice("init", self.space["init"])
        return arch

    def build(self, hp):
        """A compiled `tf_mp.Distiller` of the student for `hp`. The tuner
        measures the student (`distiller.student`) before it trains."""
        if "transfer" in self.space:  # Registered first: part of the seed.
            hp.Choice("transfer", self.space["transfer"])
        student = self.student(hp)
        with self._scope():
            distiller = Distiller(
                self.teacher,
                student,
                temperature=hp.Choice("temperature", self.space["temperature"]),
                alpha=hp.Choice("alpha", self.space["alpha"]),
                hidden_weight=hp.Choice("hidden_weight", self.space["hidden_weight"]),
            )
            optimizer = keras.optimizers.Adam(
                hp.Choice("learning_rate", self.space["learning_rate"])
            )
            hp.Choice("lr_schedule", self.space["lr_schedule"])
            arguments = compile_arguments(optimizer)
            arguments["loss"] = self.loss or arguments["loss"]
            arguments["metrics"] = self.metrics or arguments["metrics"]
            distiller.compile(**arguments)
            build_optimizer(distiller)  # One trace of the train step, not two.
        return distiller

    def fit(self, hp, model, x=None, *args, **kwargs):
        """`model.fit`, on the training data of `hp`'s `"transfer"` value when
        `x` is a `TransferChoices` (as `search_student` passes it). With
        `lr_schedule="linear"`, the learning rate decays to 0 over the steps
        this call runs (epochs x batches of `x`, or `steps_per_epoch`)."""
        if isinstance(x, search_data.TransferChoices):
            choice = hp.get("transfer") if "transfer" in self.space else NO_TRANSFER
            x, extra = x.fit_arguments(choice)
            kwargs.update(extra)
        elif "transfer" in self.space:
            raise ValueError(
                "A `StudentHyperModel` with `transfer` choices trains on "
                "`search_student(..., transfer_data=...)`'s data. Received: "
                f"x of type {type(x).__name__}"
            )
        if hp.values.get("lr_schedule") == "linear":
            steps = schedules.fit_steps(x, args, kwargs, self._counted_batches)
            model.optimizer.learning_rate = schedules.learning_rate(
                hp.get("learning_rate"), "linear", steps
            )
        return model.fit(x, *args, **kwargs)

    def _scope(self):
        return optional_scope(self.distribution)


def spread_layers(num_layers, teacher_depth):
    """`num_layers` teacher block indices spread evenly from block 0
    (DistilBERT: 3 of 6 -> [0, 2, 4])."""
    return [i * teacher_depth // num_layers for i in range(num_layers)]


def _space_of(space, fields):
    """`space`, or a `StudentSpace` of the deprecated keywords `fields`."""
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(StudentSpace)})
    if unknown:
        raise TypeError(
            f"StudentHyperModel got unexpected keyword arguments {unknown}."
        )
    if fields:
        if space is not None:
            raise ValueError(
                "Pass either `space` or the deprecated keywords "
                f"{sorted(fields)}, not both."
            )
        warnings.warn(
            f"StudentHyperModel's {sorted(fields)} are deprecated: pass "
            f"`space=tf_mp.automl.StudentSpace({', '.join(sorted(fields))}=...)`.",
            DeprecationWarning,
            stacklevel=3,
        )
        return StudentSpace(**fields)
    if space is None:
        return StudentSpace()
    if not isinstance(space, StudentSpace):
        raise TypeError(
            f"`space` must be a `tf_mp.automl.StudentSpace`. Received: space={space!r}"
        )
    return space
