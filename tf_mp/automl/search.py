"""`search_student`: a Keras Tuner search for the best distilled student."""

import os
import time

from tf_mp.automl import result as result_lib
from tf_mp.automl import search_data
from tf_mp.automl.hypermodel import StudentHyperModel
from tf_mp.automl.result import SearchResult
from tf_mp.automl.tuners import TUNERS
from tf_mp.parallel import processes
from tf_mp.utils.checks import check_number


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
    transfer_data=None,
    cache_directory=None,
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
        transfer_data: optional `{name: unlabelled inputs}`: sets of rows
            without labels (more of the task's text, or `augment`ed copies of
            the training texts, tokenized like `train`'s inputs: arrays, a
            dict of arrays or a dataset of input batches). The search then
            tunes a `"transfer"` hyperparameter: `"none"` or one set's name,
            whose rows the teacher labels, mixed with `train`'s rows (see
            `TransferChoices`: the labels loss stays a mean over labelled
            rows, and an epoch keeps `train`'s number of steps). The cache
            scores every set once for all trials.
        cache_directory: optional directory for the shared `TeacherCache`:
            it scores a chunk of rows at a time and keeps the outputs on disk
            (memory stays bounded with many augmented rows), and later
            searches or Keras Tuner workers on the same data reuse them.
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
    _check_arguments(tuner, max_trials, epochs, max_params, max_latency_ms, seed)
    directory = _directory_of_this_process(directory or ".", seed)
    names = list(search_data.check_transfer_data(transfer_data))
    hypermodel = hypermodel or StudentHyperModel(
        teacher,
        seed=seed,
        transfer=[search_data.NO_TRANSFER, *names] if names else None,
    )
    if hypermodel.teacher is not teacher:
        raise ValueError("`hypermodel` was made for another teacher than `teacher`.")
    _check_transfer_choices(hypermodel, names)
    train, validation, example, cache = search_data.prepare(
        hypermodel,
        train,
        validation,
        batch_size,
        teacher_cache,
        transfer_data=transfer_data,
        cache_directory=cache_directory,
        seed=seed,
    )
    ran = []  # Trials this process ran (a worker cannot list the chief's).

    def on_trial_end(trial):
        ran.append(trial)
        if progress is not None:
            progress(result_lib.trial_row(search, trial, objective))

    search = _make_tuner(
        tuner,
        hypermodel,
        tuner_kwargs,
        example=example,
        max_params=max_params,
        max_latency_ms=max_latency_ms,
        progress=on_trial_end,
        objective=objective,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        # Keras Tuner's oracles take `seed=0` as no seed and draw one from
        # Python's global `random` state: `tf-mp tune`'s default seed 0 drew
        # other trials each run, and would draw other trials in each process
        # of a mesh. Shifted by one, every seed is a seed.
        seed=None if seed is None else seed + 1,
        max_trials=max_trials,
        epochs=epochs,
    )
    start = time.perf_counter()
    search.search(train, validation_data=validation, epochs=epochs, verbose=verbose)
    wall_time_s = time.perf_counter() - start
    worker = "KERASTUNER_ORACLE_IP" in os.environ and not search_data.is_chief()
    trials = ran if worker else list(search.oracle.trials.values())
    return SearchResult(search, trials, objective, wall_time_s, cache)


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


def _check_transfer_choices(hypermodel, names):
    offered = hypermodel.space.get("transfer")
    if names and offered is None:
        raise ValueError(
            "`transfer_data` needs a `hypermodel` with `transfer` choices, e.g. "
            f"StudentHyperModel(teacher, transfer={['none', *names]})."
        )
    unknown = [v for v in offered or () if v not in (search_data.NO_TRANSFER, *names)]
    if unknown:
        raise ValueError(
            f"The hypermodel's `transfer` choices {unknown} are not sets of "
            f"`transfer_data` (its names: {names})."
        )


def _check_arguments(tuner, max_trials, epochs, max_params, max_latency_ms, seed):
    if tuner not in TUNERS:
        raise ValueError(
            f"`tuner` must be one of {sorted(TUNERS)}. Received: tuner={tuner!r}"
        )
    check_number("max_trials", max_trials, integer=True, low=1)
    check_number("epochs", epochs, integer=True, low=1)
    check_number("seed", seed, integer=True, low=0, optional=True)
    check_number("max_params", max_params, low=0, low_open=True, optional=True)
    check_number("max_latency_ms", max_latency_ms, low=0, low_open=True, optional=True)


def _make_tuner(tuner, hypermodel, tuner_kwargs, *, max_trials, epochs, **kwargs):
    """The Keras Tuner tuner, with tf_mp's defaults where they differ."""
    tuner_kwargs = dict(tuner_kwargs)
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
