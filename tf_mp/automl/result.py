"""`SearchResult`: the trials of a student search, its best and its Pareto front."""

import json

from tf_mp.automl import pareto
from tf_mp.utils.files import write_text

SIZE_KEY = "encoder_parameters"
LATENCY_KEY = "latency_ms_batch_1"


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
            the trials (1 with the cache: train, transfer sets and
            validation together; 0 without).
        teacher_scored_rows, teacher_scoring_s: the rows the shared cache's
            teacher scored in this process, and the seconds that took (0 when
            a `cache_directory` already held them, and without the cache).
    """

    def __init__(self, tuner, trials, objective, wall_time_s, cache=None):
        self.tuner = tuner
        self.objective = objective
        self.direction = tuner.oracle.objective.direction
        self.wall_time_s = wall_time_s
        self.teacher_runs = cache.teacher_runs if cache else 0
        self.teacher_scored_rows = cache.scored_rows if cache else 0
        self.teacher_scoring_s = cache.scoring_seconds if cache else 0.0
        trials = sorted(trials, key=lambda t: t.trial_id)
        self._trial_objects = {t.trial_id: t for t in trials}
        self.trials = [trial_row(tuner, trial, objective) for trial in trials]
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

    def plot(self, path, teacher_score=None):
        """Writes a PNG of the objective against encoder parameters and
        latency, the Pareto front marked, and `teacher_score` (the teacher's
        value of the objective, if given) as a line. Returns `path`."""
        return pareto.plot_front(
            self.trials,
            self.pareto_front,
            path,
            self.objective,
            SIZE_KEY,
            LATENCY_KEY,
            baseline=None
            if teacher_score is None
            else {self.objective: float(teacher_score)},
            maximize=self.direction == "max",
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
                "teacher_scored_rows": self.teacher_scored_rows,
                "teacher_scoring_s": round(self.teacher_scoring_s, 2),
            },
            indent=2,
        )
        if path:
            write_text(path, text)
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


def trial_row(tuner, trial, objective):
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
