"""`search_student`: a Keras Tuner search for the best distilled student."""

import json
import os
import time

import tensorflow as tf

from tf_mp.automl import pareto
from tf_mp.automl.hypermodel import StudentHyperModel
from tf_mp.automl.tuners import TUNERS
from tf_mp.distillation.teacher_cache import TeacherCache

SIZE_KEY = "encoder_parameters"
LATENCY_KEY = "latency_ms_batch_1"


def search_student(
    teacher,
    train,
    validation,
    *,
    tuner="bayesian",
    max_trials=10,
    max_params=None,
    max_latency_ms=None,
    objective="val_accuracy",
    directory=None,
    project_name="tf_mp_search",
    overwrite=False,
    epochs=1,
    batch_size=32,
    hypermodel=None,
    teacher_cache=True,
    seed=None,
    verbose=0,
    progress=None,
    **tuner_kwargs,
):
    """Searches students of `teacher` with Keras Tuner, under a budget.

    Each trial builds a student from the `hypermodel`'s space (by default a
    `StudentHyperModel(teacher)`), counts its encoder parameters and times it
    on this machine at batch 1 and 32; a student over `max_params` or
    `max_latency_ms` fails its trial before any training. Otherwise a
    `tf_mp.Distiller` trains it for `epochs` and the trial scores
    `objective` on `validation`. The teacher runs once per search (per
    process): its outputs for `train` and `validation` are cached and shared
    by every trial (`teacher_cache=False` runs it in every step instead).
    The cached `train` is served in the order of that one pass, in every
    epoch of every trial: all trials read the same stream (a `train` that
    reshuffles each epoch is reshuffled only without the cache).

    The search lives in `directory/project_name` like any Keras Tuner search:
    with `overwrite=False` an interrupted search resumes and keeps its
    completed trials, and Keras Tuner's distributed mode (`KERASTUNER_TUNER_ID`,
    `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) works unchanged: run the
    same call in the chief and in each worker (the chief's result covers all
    trials).

    Args:
        teacher: a fine-tuned BERT classifier (`preprocessor=None`).
        train: a `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
            batches, or an `(x, y)` tuple of arrays (batched by `batch_size`).
        validation: the same, for scoring trials.
        tuner: `"bayesian"`, `"hyperband"` or `"random"`.
        max_trials: trials to run (Hyperband stops there too).
        max_params: largest allowed number of student *encoder* parameters
            (embeddings and head excluded, as in
            `tf_mp.distillation.encoder_parameters`).
        max_latency_ms: largest allowed student latency at batch 1, in ms.
        objective: the Keras Tuner objective (a compiled metric of the
            hypermodel's distiller, with `val_` for validation).
        directory, project_name, overwrite: as in Keras Tuner. `directory`
            defaults to the current directory.
        epochs: training epochs per trial (Hyperband's `max_epochs`).
        batch_size: batch size for array inputs.
        hypermodel: a `StudentHyperModel` to set the space. Defaults to
            `StudentHyperModel(teacher, seed=seed)`.
        teacher_cache: share one `TeacherCache` between trials.
        seed: the tuner's random seed, and the default hypermodel's (which
            seeds each trial from it and the trial's hyperparameters).
        verbose: Keras Tuner / `fit` verbosity.
        progress: optional callable, called with each finished trial's row
            (a dict as in `SearchResult.trials`).
        **tuner_kwargs: passed to the Keras Tuner tuner. Defaults that differ
            from Keras Tuner's: Bayesian `num_initial_points=max(2,
            max_trials // 3)` (random trials before the Gaussian process),
            Hyperband `hyperband_iterations=max_trials`.

    Returns:
        A `SearchResult`.

    Raises:
        RuntimeError: when no trial completed (with the first failure's reason).
    """
    if tuner not in TUNERS:
        raise ValueError(
            f"`tuner` must be one of {sorted(TUNERS)}. Received: tuner={tuner!r}"
        )
    _check_positive("max_trials", max_trials, integer=True)
    _check_positive("epochs", epochs, integer=True)
    _check_positive("max_params", max_params, optional=True)
    _check_positive("max_latency_ms", max_latency_ms, optional=True)
    hypermodel = hypermodel or StudentHyperModel(teacher, seed=seed)
    if hypermodel.teacher is not teacher:
        raise ValueError("`hypermodel` was made for another teacher than `teacher`.")
    train = _as_dataset("train", train, batch_size)
    validation = _as_dataset("validation", validation, batch_size)
    example = next(iter(train))[0]

    cache = None
    if teacher_cache and not _is_chief():
        hidden, attention = hypermodel.teacher_blocks_needed
        cache = TeacherCache(teacher, hidden, attention)
        train, validation = _with_teacher_outputs(cache, train, validation)

    ran = []  # Trials this process ran (a worker cannot list the chief's).

    def on_trial_end(trial):
        ran.append(trial)
        if progress is not None:
            progress(_row(search, trial, objective))

    kwargs = dict(
        example=example,
        max_params=max_params,
        max_latency_ms=max_latency_ms,
        progress=on_trial_end,
        objective=objective,
        directory=directory or ".",
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        # Budget rejections are expected; only "every trial failed" is an error.
        max_consecutive_failed_trials=max_trials + 1,
    )
    if tuner == "bayesian":
        # Keras Tuner's default (3 per hyperparameter, 27 here) would make a
        # search of a dozen trials all random.
        tuner_kwargs.setdefault("num_initial_points", max(2, max_trials // 3))
    if tuner == "hyperband":
        kwargs["max_epochs"] = epochs
        # Each Hyperband iteration runs at least one trial; `max_trials` stops it.
        tuner_kwargs.setdefault("hyperband_iterations", max_trials)
    else:
        kwargs["max_trials"] = max_trials
    search = TUNERS[tuner](hypermodel, **kwargs, **tuner_kwargs)
    search.oracle.max_trials = max_trials
    start = time.perf_counter()
    search.search(train, validation_data=validation, epochs=epochs, verbose=verbose)
    wall_time_s = time.perf_counter() - start
    worker = "KERASTUNER_ORACLE_IP" in os.environ and not _is_chief()
    trials = ran if worker else list(search.oracle.trials.values())
    return SearchResult(search, trials, objective, wall_time_s, cache)


class SearchResult:
    """What `search_student` found.

    Attributes:
        tuner: the Keras Tuner tuner (its oracle holds every trial).
        objective: the objective's name; `direction` is `"max"` or `"min"`.
        trials: one dict per trial: `trial_id`, `status`, `hyperparameters`,
            `encoder_parameters`, `parameters`, `latency_ms_batch_1`,
            `latency_ms_batch_32`, `train_s` (seconds to build, fit and score a
            trained student), the objective's value, and `reason` for a failed
            trial.
        best_trial: the completed trial with the best objective (ties: fewer
            encoder parameters, then lower latency).
        pareto_front: the completed trials no other trial beats on the
            objective, encoder parameters and batch-1 latency at once.
        best_distiller / best_student: the best trial's trained models,
            reloaded from its checkpoint.
        wall_time_s: seconds spent in the search in this process.
        teacher_runs: how many passes the teacher made over the data before
            the trials (1 with the cache: train and validation together; 0
            without).
    """

    def __init__(self, tuner, trials, objective, wall_time_s, cache=None):
        self.tuner = tuner
        self.objective = objective
        self.direction = tuner.oracle.objective.direction
        self.wall_time_s = wall_time_s
        self.teacher_runs = cache.teacher_runs if cache else 0
        trials = sorted(trials, key=lambda t: t.trial_id)
        self._trial_objects = {t.trial_id: t for t in trials}
        self.trials = [_row(tuner, trial, objective) for trial in trials]
        completed = [t for t in self.trials if t["status"] == "COMPLETED"]
        if not completed:
            failed = [t for t in self.trials if t.get("reason")]
            reason = failed[0]["reason"] if failed else "no trial ran"
            raise RuntimeError(
                f"Every trial of the search failed ({len(self.trials)} trials). "
                f"The first failure: {reason}"
            )
        sign = 1.0 if self.direction == "max" else -1.0
        # Ties on the objective go to the smaller, then the faster student, so
        # the best trial is always on the Pareto front.
        self.best_trial = max(
            completed,
            key=lambda t: (sign * t[objective], -t[SIZE_KEY], -t[LATENCY_KEY]),
        )
        self.pareto_front = _front(completed, objective, self.direction)
        self._best_distiller = None

    @property
    def best_distiller(self):
        if self._best_distiller is None:
            trial = self._trial_objects[self.best_trial["trial_id"]]
            self._best_distiller = self.tuner.load_model(trial)
        return self._best_distiller

    @property
    def best_student(self):
        return self.best_distiller.student

    def plot(self, path):
        """Writes a PNG of the objective against encoder parameters and
        latency, the Pareto front marked. Returns `path`."""
        return pareto.plot_front(
            self.trials, self.pareto_front, path, self.objective, SIZE_KEY, LATENCY_KEY
        )

    def to_json(self, path=None):
        """The result as JSON (written to `path` when given)."""
        text = json.dumps(
            {
                "objective": self.objective,
                "direction": self.direction,
                "best_trial": self.best_trial,
                "pareto_front": [t["trial_id"] for t in self.pareto_front],
                "trials": self.trials,
                "wall_time_s": round(self.wall_time_s, 2),
                "teacher_runs": self.teacher_runs,
            },
            indent=2,
        )
        if path:
            with open(path, "w") as f:
                f.write(text)
        return text

    def summary(self):
        """A text table of the trials (`*` marks the Pareto front)."""
        front = {t["trial_id"] for t in self.pareto_front}
        header = (
            f"{'trial':>6} {'status':<10} {'enc. params':>12} {'ms@1':>8} "
            f"{'ms@32':>8} {'train s':>8} {self.objective:>14}"
        )
        lines = [header, "-" * len(header)]
        for t in self.trials:
            score = t.get(self.objective)
            lines.append(
                f"{t['trial_id'] + ('*' if t['trial_id'] in front else ''):>6} "
                f"{t['status']:<10} {_fmt(t.get(SIZE_KEY), ',d'):>12} "
                f"{_fmt(t.get(LATENCY_KEY), '.2f'):>8} "
                f"{_fmt(t.get('latency_ms_batch_32'), '.2f'):>8} "
                f"{_fmt(t.get('train_s'), '.1f'):>8} "
                f"{_fmt(score, '.4f'):>14}"
            )
        return "\n".join(lines)


def _front(rows, objective, direction):
    if direction == "max":
        return pareto.pareto_front(
            rows, maximize=[objective], minimize=[SIZE_KEY, LATENCY_KEY]
        )
    return pareto.pareto_front(rows, minimize=[objective, SIZE_KEY, LATENCY_KEY])


def _is_chief():
    """Keras Tuner's rule: a tuner id containing "chief" serves the oracle."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


def _row(tuner, trial, objective):
    row = {
        "trial_id": trial.trial_id,
        "status": str(trial.status),
        "hyperparameters": dict(trial.hyperparameters.values),
        **tuner.profile(trial.trial_id),
    }
    if trial.score is not None and str(trial.status) == "COMPLETED":
        row[objective] = float(trial.score)
    if trial.message:
        row["reason"] = _last_line(trial.message)
    return row


def _last_line(message):
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _as_dataset(argument, data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, tuple) and len(data) in (2, 3):
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
    raise TypeError(
        f"`{argument}` must be a `tf.data.Dataset` of `(x, y)` batches or an "
        f"`(x, y)` tuple of arrays. Received: {argument}={type(data).__name__}"
    )


def _with_teacher_outputs(cache, train, validation):
    """Both datasets with the teacher's outputs, scored in one pass (one trace
    of the teacher, one partial batch) when their elements match."""
    sizes = (_batch_size(train), _batch_size(validation))
    try:
        both = train.concatenate(validation)
    except (TypeError, ValueError):  # E.g. sample weights in one only.
        return tuple(
            cache.attach(d).batch(b) for d, b in zip((train, validation), sizes)
        )
    count = sum(int(tf.shape(batch[1])[0]) for batch in train)
    scored = cache.attach(both)
    return scored.take(count).batch(sizes[0]), scored.skip(count).batch(sizes[1])


def _batch_size(data):
    return int(tf.shape(next(iter(data))[1])[0])


def _check_positive(argument, value, integer=False, optional=False):
    if value is None and optional:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or value <= 0 or (integer and not isinstance(value, int)):
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"`{argument}` must be {kind}. Received: {argument}={value!r}")
