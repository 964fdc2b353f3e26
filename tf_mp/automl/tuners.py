"""Keras Tuner tuners that measure each student and enforce the budget first."""

import inspect
import json
import os
import time

import keras_tuner

from tf_mp.distillation.students import encoder_parameters
from tf_mp.parallel import processes
from tf_mp.utils.files import write_json
from tf_mp.utils.latency import measure_latency

PROFILE_FILE = "tf_mp_profile.json"
LATENCY_BATCH_SIZES = (1, 32)


class TrialRejected(keras_tuner.errors.FailedTrialError):
    """A trial that fails by design (over budget, a student the search space
    cannot build): its message, one line, is the whole report. Keras Tuner
    prints the traceback of every other failure."""


class _Budgeted:
    """Mixin for a Keras Tuner tuner with a `StudentHyperModel`.

    Takes the Keras Tuner tuner's arguments plus `example` (a batch of model
    inputs, for the latency measurement), `max_params`, `max_latency_ms` and
    `progress` (called with the tuner and each finished trial, which
    `ran_trials` lists). It uses Keras Tuner's own
    seam for a size budget, `Tuner._try_build` (where `max_model_size` is
    checked): once the trial's distiller is built, its student is counted and
    timed on this machine and the figures written to the trial directory (and,
    after training, `train_s`: the wall time of building, measuring, fitting
    and scoring it); a student over `max_params` (encoder parameters) or
    `max_latency_ms` (batch 1) fails the trial there, before any training, with
    the figures in its message.
    """

    def __init__(
        self,
        hypermodel,
        *,
        example,
        max_params=None,
        max_latency_ms=None,
        progress=None,
        **kwargs,
    ):
        self.example = example
        self.max_params = max_params
        self.max_latency_ms = max_latency_ms
        self.progress = progress
        self._building = None  # The trial whose model `_try_build` builds.
        self._rejections = {}  # trial_id: the reason of a `TrialRejected`.
        # The trials this process ran (a worker cannot list the chief's).
        self.ran_trials = []
        super().__init__(hypermodel=hypermodel, **kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        self._building = trial
        try:
            return super()._build_and_fit_model(trial, *args, **kwargs)
        finally:
            self._building = None

    def _try_build(self, hp):
        model = super()._try_build(hp)
        if self._building is None:  # `load_model` rebuilding a finished trial.
            return model
        student = getattr(model, "student", model)
        latency = measure_latency(student, self.example, LATENCY_BATCH_SIZES)
        # On a mesh over several processes, process 0's timings decide for all:
        # every process must reject the same students.
        latency = dict(zip(latency, processes.from_process_0(list(latency.values()))))
        profile = {
            "encoder_parameters": encoder_parameters(student),
            "parameters": int(student.count_params()),
            **{f"latency_ms_batch_{b}": round(ms, 3) for b, ms in latency.items()},
        }
        write_json(self._profile_path(self._building.trial_id), profile)
        reason = self._over_budget(profile)
        if reason:
            raise TrialRejected(reason)
        return model

    def _run_and_update_trial(self, trial, *args, **kwargs):
        try:
            return super()._run_and_update_trial(trial, *args, **kwargs)
        except TrialRejected as rejection:
            self._rejections[trial.trial_id] = str(rejection)

    def _try_run_and_update_trial(self, trial, *args, **kwargs):
        # Keras Tuner prints the traceback of any exception here (its
        # `config.DEBUG` is on by default); a `TrialRejected` gets as far as
        # `_run_and_update_trial` only, and the trial fails with its one line.
        super()._try_run_and_update_trial(trial, *args, **kwargs)
        rejection = self._rejections.pop(trial.trial_id, None)
        if rejection is not None:
            trial.status = keras_tuner.engine.trial.TrialStatus.FAILED
            trial.message = rejection

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        results = super().run_trial(trial, *args, **kwargs)
        profile = self.profile(trial.trial_id)
        profile["train_s"] = round(time.perf_counter() - start, 2)
        write_json(self._profile_path(trial.trial_id), profile)
        return results

    def _profile_path(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), PROFILE_FILE)

    def _over_budget(self, profile):
        params = profile["encoder_parameters"]
        if self.max_params is not None and params > self.max_params:
            return (
                "Rejected before training: the student has "
                f"{params:,} encoder parameters, over "
                f"max_params={self.max_params:,}."
            )
        latency = profile["latency_ms_batch_1"]
        if self.max_latency_ms is not None and latency > self.max_latency_ms:
            return (
                f"Rejected before training: the student takes {latency:.2f} ms "
                f"per example at batch 1, over max_latency_ms={self.max_latency_ms}."
            )
        return None

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        # The oracle's copy: scored (by the chief, in distributed mode).
        trial = self.oracle.get_trial(trial.trial_id)
        self.ran_trials.append(trial)
        if self.progress is not None:
            self.progress(self, trial)

    def profile(self, trial_id):
        """The measured figures of a trial (`{}` if it was never measured)."""
        path = self._profile_path(trial_id)
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)


class RandomSearch(_Budgeted, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` (same arguments) with the budget checks."""


class DistinctBayesianOptimizationOracle(
    keras_tuner.oracles.BayesianOptimizationOracle
):
    """Keras Tuner's Gaussian-process oracle, except that a proposal it has
    already tried is replaced by an untried random point.

    Keras Tuner dedupes its random proposals but not the Gaussian process's,
    which re-proposes its current optimum; with seeded trials a repeat scores
    the same and only costs a trial.
    """

    def populate_space(self, trial_id):
        proposal = super().populate_space(trial_id)
        values = proposal.get("values")
        if values is not None and self._duplicate(values):
            return self._random_populate_space()
        return proposal


class BayesianOptimization(_Budgeted, keras_tuner.Tuner):
    """`keras_tuner.BayesianOptimization` (same arguments) with the budget
    checks and a `DistinctBayesianOptimizationOracle`.

    The oracle's arguments (`objective`, `max_trials`, `num_initial_points`,
    `alpha`, `beta`, `seed`, ...) go to the oracle, with the oracle's own
    defaults; the rest go to the tuner.
    """

    _ORACLE_ARGUMENTS = frozenset(
        inspect.signature(DistinctBayesianOptimizationOracle).parameters
    )

    def __init__(self, hypermodel=None, **kwargs):
        oracle = DistinctBayesianOptimizationOracle(
            **{
                name: kwargs.pop(name)
                for name in list(kwargs)
                if name in self._ORACLE_ARGUMENTS
            }
        )
        super().__init__(hypermodel, oracle=oracle, **kwargs)


class Hyperband(_Budgeted, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` (same arguments) with the budget checks, and
    `max_trials`: Keras Tuner's Hyperband oracle runs its brackets to the end
    (`hyperband_iterations`); this one also stops after `max_trials` trials,
    through the base `Oracle`'s own `max_trials` check."""

    def __init__(self, hypermodel=None, max_trials=None, **kwargs):
        super().__init__(hypermodel, **kwargs)
        self.oracle.max_trials = max_trials


TUNERS = {
    "random": RandomSearch,
    "bayesian": BayesianOptimization,
    "hyperband": Hyperband,
}
