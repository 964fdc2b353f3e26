"""`search_student`: a Keras Tuner search for the best distilled student."""

import os
import time

from tf_mp.automl import result as result_lib
from tf_mp.automl import search_data
from tf_mp.automl import settings
from tf_mp.automl.hypermodel import StudentHyperModel
from tf_mp.automl.result import SearchResult
from tf_mp.automl.settings import NO_TRANSFER
from tf_mp.automl.space import StudentSpace
from tf_mp.automl.tuners import TUNERS
from tf_mp.parallel import processes
from tf_mp.utils.checks import check_number


def search_student(
    teacher,
    train,
    validation,
    *,
    hypermodel=None,
    budget=None,
    transfer_data=None,
    tuner="bayesian",
    max_trials=10,
    objective="val_accuracy",
    epochs=1,
    batch_size=32,
    seed=None,
    directory=None,
    project_name="tf_mp_search",
    overwrite=False,
    verbose=0,
    progress=None,
    **tuner_kwargs,
):
    """Searches students of `teacher` with Keras Tuner, under a budget.

    Each trial builds a student from the `hypermodel`'s space, counts and
    times it (a student over `budget` fails before any training), distils it
    for `epochs` and scores `objective` on `validation`. The search resumes,
    and runs in Keras Tuner's distributed mode (docs/distillation.md).

    Args:
        teacher: a fine-tuned BERT classifier (`preprocessor=None`).
        train: a `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
            batches, or an `(x, y)` tuple of arrays (batched by `batch_size`).
        validation: the same, for scoring trials.
        hypermodel: a `StudentHyperModel`. Defaults to one with `seed` and
            `transfer` choices of every set of `transfer_data`.
        budget: a `Budget`. Defaults to none.
        transfer_data: a `TransferData`. Defaults to the teacher's outputs
            cached in memory, and no unlabelled sets.
        tuner: `"bayesian"`, `"hyperband"` or `"random"`.
        max_trials: trials to run (Hyperband stops there too).
        objective: the Keras Tuner objective (a metric of the distiller).
        epochs: training epochs per trial (Hyperband's `max_epochs`).
        batch_size: batch size for array inputs.
        seed: the tuner's random seed, and the default hypermodel's.
        directory, project_name, overwrite, verbose: as in Keras Tuner.
        progress: optional callable, called with each finished trial's row
            (a dict as in `SearchResult.trials`).
        **tuner_kwargs: passed to the Keras Tuner tuner. Defaults that differ
            from Keras Tuner's: Bayesian `num_initial_points=max(2,
            max_trials // 3)` (random trials before the Gaussian process),
            Hyperband `hyperband_iterations=max_trials`.

    Returns:
        A `SearchResult`. Raises `RuntimeError` when no trial completed.
    """
    budget, transfer_data = settings.grouped(budget, transfer_data, tuner_kwargs)
    _check_arguments(tuner, max_trials, epochs, seed)
    directory = _directory_of_this_process(directory or ".", seed)
    hypermodel = _hypermodel_for(hypermodel, teacher, transfer_data.names, seed)
    train, validation, example, cache = search_data.prepare(
        hypermodel, train, validation, batch_size, transfer_data, seed=seed
    )
    search = _make_tuner(
        tuner,
        hypermodel,
        tuner_kwargs,
        example=example,
        budget=budget,
        progress=progress,
        seed=seed,
        max_trials=max_trials,
        epochs=epochs,
        objective=objective,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
    )
    start = time.perf_counter()
    search.search(train, validation_data=validation, epochs=epochs, verbose=verbose)
    return _result(search, objective, time.perf_counter() - start, cache)


def _result(search, objective, wall_time_s, cache):
    worker = "KERASTUNER_ORACLE_IP" in os.environ and not search_data.is_chief()
    trials = search.ran_trials if worker else list(search.oracle.trials.values())
    return SearchResult(search, trials, objective, wall_time_s, cache)


def _rows_to(progress, objective):
    """A tuner's `progress` callback that calls `progress` with trial rows."""
    return lambda tuner, trial: progress(result_lib.trial_row(tuner, trial, objective))


def _hypermodel_for(hypermodel, teacher, names, seed):
    """`hypermodel`, checked against `teacher` and the transfer sets `names`,
    or the default one."""
    if hypermodel is None:
        transfer = [NO_TRANSFER, *names] if names else None
        return StudentHyperModel(teacher, StudentSpace(transfer=transfer), seed=seed)
    if hypermodel.teacher is not teacher:
        raise ValueError("`hypermodel` was made for another teacher than `teacher`.")
    offered = hypermodel.space.get("transfer")
    if names and offered is None:
        raise ValueError(
            "`transfer_data` needs a `hypermodel` with `transfer` choices, e.g. "
            "StudentHyperModel(teacher, StudentSpace(transfer="
            f"{[NO_TRANSFER, *names]}))."
        )
    unknown = [v for v in offered or () if v not in (NO_TRANSFER, *names)]
    if unknown:
        raise ValueError(
            f"The hypermodel's `transfer` choices {unknown} are not sets of "
            f"`transfer_data` (its names: {names})."
        )
    return hypermodel


def _directory_of_this_process(directory, seed):
    """On a mesh over several processes (`tf_mp.initialize`), every process runs
    every trial (its steps are collectives): they must draw the same trials, so
    a `seed` is required, and only process 0 writes `directory`."""
    if processes.num_processes() == 1:
        return directory
    if seed is None:
        raise ValueError(
            f"On a mesh over {processes.num_processes()} processes, every process "
            "must run the same trials: pass `seed`. Received: seed=None"
        )
    if "KERASTUNER_ORACLE_IP" in os.environ:
        raise ValueError(
            "Keras Tuner's distributed mode (KERASTUNER_ORACLE_IP) spreads trials "
            "over workers; with tf_mp.initialize every process runs each trial on "
            "one shared mesh. Use one or the other."
        )
    return processes.own_directory(directory)


def _check_arguments(tuner, max_trials, epochs, seed):
    if tuner not in TUNERS:
        raise ValueError(
            f"`tuner` must be one of {sorted(TUNERS)}. Received: tuner={tuner!r}"
        )
    check_number("max_trials", max_trials, integer=True, low=1)
    check_number("epochs", epochs, integer=True, low=1)
    check_number("seed", seed, integer=True, low=0, optional=True)


def _make_tuner(
    tuner, hypermodel, tuner_kwargs, *, budget, seed, max_trials, epochs, **kwargs
):
    """The Keras Tuner tuner, with tf_mp's defaults where they differ."""
    tuner_kwargs = dict(tuner_kwargs)
    if kwargs["progress"] is not None:
        kwargs["progress"] = _rows_to(kwargs["progress"], kwargs["objective"])
    kwargs["max_params"] = budget.max_params
    kwargs["max_latency_ms"] = budget.max_latency_ms
    # Keras Tuner's oracles take `seed=0` as no seed and draw one from
    # Python's global `random` state: `tf-mp tune`'s default seed 0 drew
    # other trials each run, and would draw other trials in each process
    # of a mesh. Shifted by one, every seed is a seed.
    kwargs["seed"] = None if seed is None else seed + 1
    # Budget rejections are expected; only "every trial failed" is an error.
    kwargs["max_consecutive_failed_trials"] = max_trials + 1
    kwargs["max_trials"] = max_trials
    if tuner == "bayesian":
        # Keras Tuner's default (3 per hyperparameter, 27 here) would make a
        # search of a dozen trials all random.
        tuner_kwargs.setdefault("num_initial_points", max(2, max_trials // 3))
    if tuner == "hyperband":
        kwargs["max_epochs"] = epochs
        # Each Hyperband iteration runs at least one trial; `max_trials` stops it.
        tuner_kwargs.setdefault("hyperband_iterations", max_trials)
    return TUNERS[tuner](hypermodel, **kwargs, **tuner_kwargs)
