"""`StudentHyperModel`: a Keras Tuner search space over distilled BERT students."""

import json
import zlib

import keras
import keras_tuner

from tf_mp.automl import search_data
from tf_mp.automl.search_data import NO_TRANSFER
from tf_mp.automl.space_values import choices_of
from tf_mp.automl.space_values import dividing_choices
from tf_mp.automl.space_values import fractions_of
from tf_mp.automl.space_values import model_axis_size
from tf_mp.automl.tuners import TrialRejected
from tf_mp.distillation import students as students_lib
from tf_mp.distillation.distiller import Distiller
from tf_mp.distillation.terms import uniform_layer_map
from tf_mp.utils import schedules
from tf_mp.utils.checks import check_numbers
from tf_mp.utils.classifiers import compile_arguments
from tf_mp.utils.schedules import LR_SCHEDULES
from tf_mp.utils.scopes import optional_scope


class StudentHyperModel(keras_tuner.HyperModel):
    """Builds a compiled `tf_mp.Distiller` for a student sampled from a space.

    Every space argument takes a list of values to choose from, or a single
    value to fix it. The hidden size is `num_heads x head_size`. With
    `init="teacher"` (only offered when `head_size` is the teacher's), the
    student starts from the teacher's weights: depth L copies L evenly spread
    teacher blocks (`[0, 2, 4]` of 6 for L=3), narrower widths keep the
    teacher's most important heads and units (see
    `tf_mp.distillation.student_from_teacher`); `init="random"` starts from a
    fresh initialisation (`student_from_config`).

    Args:
        teacher: a fine-tuned BERT classifier (keras-hub `BertTextClassifier`
            with `preprocessor=None`, plain or partitioned). Frozen.
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
        hidden_weight: weight of the hidden-state term (a value or choices;
            0 means logits only, the cheapest teacher cache).
        transfer: optional choices of training data, a Keras Tuner
            hyperparameter named `"transfer"`: `"none"` (the labelled rows
            alone) and names of `search_student`'s `transfer_data` sets
            (unlabelled rows the teacher labels, mixed with the labelled
            rows). `fit` then takes the `TransferChoices` that
            `search_student` builds. Defaults to no such hyperparameter.
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
    """

    def __init__(
        self,
        teacher,
        *,
        num_layers=None,
        num_heads=None,
        head_size=None,
        intermediate_dim=None,
        init=("teacher", "random"),
        temperature=(1.0, 2.0, 4.0),
        alpha=(0.1, 0.3, 0.5, 0.7),
        learning_rate=(5e-5, 1e-4, 3e-4),
        lr_schedule="linear",
        hidden_weight=0.0,
        transfer=None,
        distribution=None,
        model_axis="model",
        loss=None,
        metrics=None,
        seed=None,
        name="student",
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        self.teacher = teacher
        self.teacher_config = students_lib.encoder_config(teacher)
        config = self.teacher_config
        depth, heads = config["num_layers"], config["num_heads"]
        units = config["intermediate_dim"]
        teacher_head_size = config["hidden_dim"] // heads
        self.teacher_head_size = teacher_head_size
        self.distribution = distribution
        self.model_parallelism = model_axis_size(distribution, model_axis)
        k = self.model_parallelism
        self.space = {
            "num_layers": choices_of("num_layers", num_layers, range(1, depth + 1)),
            "num_heads": dividing_choices(
                "num_heads", choices_of("num_heads", num_heads, fractions_of(heads)), k
            ),
            "head_size": choices_of("head_size", head_size, [teacher_head_size]),
            "intermediate_dim": dividing_choices(
                "intermediate_dim",
                choices_of("intermediate_dim", intermediate_dim, fractions_of(units)),
                k,
            ),
            "init": choices_of("init", init, ()),
            "temperature": choices_of("temperature", temperature, ()),
            "alpha": choices_of("alpha", alpha, ()),
            "learning_rate": choices_of("learning_rate", learning_rate, ()),
            "lr_schedule": choices_of("lr_schedule", lr_schedule, ()),
            "hidden_weight": choices_of("hidden_weight", hidden_weight, ()),
        }
        if transfer is not None:
            self.space["transfer"] = choices_of("transfer", transfer, ())
            if not all(isinstance(v, str) for v in self.space["transfer"]):
                raise ValueError(
                    "`transfer` values must be names: 'none' or names of "
                    f"`transfer_data` sets. Received: transfer={transfer!r}"
                )
        for argument in ("num_layers", "num_heads", "head_size", "intermediate_dim"):
            check_numbers(argument, self.space[argument], integer=True, low=1)
        for value in self.space["lr_schedule"]:
            if value not in LR_SCHEDULES:
                raise ValueError(
                    f"`lr_schedule` values must be one of {LR_SCHEDULES}. "
                    f"Received: lr_schedule={lr_schedule!r}"
                )
        for value in self.space["init"]:
            if value not in ("teacher", "random"):
                raise ValueError(
                    "`init` values must be 'teacher' or 'random'. "
                    f"Received: init={init!r}"
                )
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
