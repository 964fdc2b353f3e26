"""`search_student` on tiny random-init BERTs: every tuner kind, the budget,
the shared teacher cache, the result object."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tf_mp
from tests.distillation import tiny_bert
from tf_mp.automl import Budget
from tf_mp.automl import StudentHyperModel
from tf_mp.automl import StudentSpace
from tf_mp.automl import TransferData
from tf_mp.automl import search_student


@pytest.fixture(scope="module")
def teacher():
    return tiny_bert.classifier(seed=0)


@pytest.fixture(scope="module")
def data():
    return tiny_bert.data(64, seed=0), tiny_bert.data(32, seed=1)


def _search(teacher, data, directory, **kwargs):
    train, validation = data
    kwargs.setdefault("tuner", "random")
    kwargs.setdefault("max_trials", 3)
    kwargs.setdefault("seed", 1)
    return search_student(
        teacher,
        train,
        validation,
        batch_size=16,
        directory=str(directory),
        project_name="search",
        **kwargs,
    )


@pytest.mark.parametrize(
    "tuner, extra",
    [
        ("random", {}),
        # Slow: the hypermodel's path is the random search's; only the oracle
        # differs (Keras Tuner's own tests cover it).
        pytest.param("bayesian", {}, marks=pytest.mark.slow),
        # Two brackets: one trial continues another from its checkpoint.
        ("hyperband", {"epochs": 2, "factor": 2}),
    ],
)
def test_three_trial_search_under_each_tuner(teacher, data, tmp_path, tuner, extra):
    seen = []
    result = _search(
        teacher, data, tmp_path, tuner=tuner, progress=seen.append, **extra
    )

    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3
    assert [t["trial_id"] for t in seen] == [t["trial_id"] for t in result.trials]
    for trial in result.trials:
        assert trial["encoder_parameters"] > 0
        assert trial["latency_ms_batch_1"] > 0 and trial["latency_ms_batch_32"] > 0
        assert 0.0 <= trial["val_accuracy"] <= 1.0
        assert {"num_layers", "num_heads", "learning_rate"} <= set(
            trial["hyperparameters"]
        )
    assert result.teacher_runs == 1  # train and validation, once for all trials
    best = max(t["val_accuracy"] for t in result.trials)
    assert result.best_trial["val_accuracy"] == best
    assert result.best_trial in result.pareto_front

    # The best student reloads with the weights that scored.
    x, y = data[1]
    scores = result.best_distiller.evaluate(x, y, batch_size=16, return_dict=True)
    np.testing.assert_allclose(scores["accuracy"], best, atol=1e-6)
    student = result.best_student
    assert (
        tf_mp.distillation.encoder_parameters(student)
        == (result.best_trial["encoder_parameters"])
    )
    assert len(student.weights) < len(result.best_distiller.weights)
    if tuner == "random":
        _check_plot_json_and_summary(result, tmp_path)


def test_over_budget_students_fail_before_training(teacher, data, tmp_path, capfd):
    space = StudentSpace(
        num_layers=[1, 4],
        num_heads=4,
        intermediate_dim=32,
        init="teacher",
        learning_rate=[1e-3, 3e-3],
    )
    one_block = tf_mp.distillation.encoder_parameters(teacher) // 4
    result = _search(
        teacher,
        data,
        tmp_path,
        hypermodel=StudentHyperModel(teacher, space),
        max_trials=4,
        budget=Budget(max_params=one_block),
    )
    statuses = {t["hyperparameters"]["num_layers"]: set() for t in result.trials}
    for trial in result.trials:
        statuses[trial["hyperparameters"]["num_layers"]].add(trial["status"])
        trained = os.path.exists(
            os.path.join(
                result.tuner.get_trial_dir(trial["trial_id"]), "checkpoint.weights.h5"
            )
        )
        if trial["encoder_parameters"] > one_block:
            assert trial["status"] == "FAILED" and not trained
            assert "Rejected before training" in trial["reason"]
            assert f"max_params={one_block:,}" in trial["reason"]
        else:
            assert trial["status"] == "COMPLETED" and trained
    assert statuses == {1: {"COMPLETED"}, 4: {"FAILED"}}
    # An expected rejection is its one line (the trial's reason); Keras Tuner
    # would print a traceback for each.
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "Rejected before training" not in out + err
    assert all(t["hyperparameters"]["num_layers"] == 1 for t in result.pareto_front)


def test_a_search_where_every_trial_failed_raises_the_first_reason(
    teacher, data, tmp_path
):
    with pytest.raises(RuntimeError, match="Every trial of the search failed") as info:
        _search(
            teacher, data, tmp_path, max_trials=2, budget=Budget(max_latency_ms=1e-6)
        )
    assert "max_latency_ms=1e-06" in str(info.value)


# Slow (50 s on 2 cores): `search_transfer_test.py`'s cached search checks the
# same rule with every transfer choice, no transfer rows among them.
@pytest.mark.slow
def test_shared_cache_gives_the_same_trials_as_running_the_teacher(
    teacher, data, tmp_path
):
    cached = _search(teacher, data, tmp_path / "cached", max_trials=2)
    uncached = _search(
        teacher,
        data,
        tmp_path / "uncached",
        max_trials=2,
        transfer_data=TransferData(cache=False),
    )
    assert_same_trials(cached, uncached)


def assert_same_trials(cached, uncached):
    """A search with the shared teacher cache ran the trials of one without."""
    assert cached.teacher_runs >= 1 and uncached.teacher_runs == 0
    for a, b in zip(cached.trials, uncached.trials, strict=True):
        assert a["hyperparameters"] == b["hyperparameters"]
        np.testing.assert_allclose(a["val_accuracy"], b["val_accuracy"], atol=1e-6)
    assert_same_students(cached, uncached)


def assert_same_students(first, second):
    """Each trial of two searches trained its student to the same weights.
    Trial by trial, not best against best: a tie on the objective and the size
    goes to the student measured faster, which is noise between two runs."""
    for a, b in zip(first.trials, second.trials, strict=True):
        students = [
            r.tuner.load_model(r.tuner.oracle.get_trial(t["trial_id"])).student
            for r, t in ((first, a), (second, b))
        ]
        for x, y in zip(*(s.get_weights() for s in students), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)


def _check_plot_json_and_summary(result, tmp_path):
    png = result.plot(str(tmp_path / "front.png"), teacher_score=0.75)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    dumped = json.loads(result.to_json(str(tmp_path / "search.json")))
    with open(tmp_path / "search.json") as f:
        assert json.load(f) == dumped
    ids = [t["trial_id"] for t in result.trials]
    assert [t["trial_id"] for t in dumped["trials"]] == ids == ["0", "1", "2"]
    assert dumped["best_trial"]["trial_id"] in dumped["pareto_front"]
    lines = result.summary().splitlines()
    assert len(lines) == len(ids) + 2 and "val_accuracy" in lines[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tuner": "grid"}, "`tuner` must be one of"),
        ({"max_trials": 0}, "max_trials=0"),
        ({"epochs": 1.5}, "epochs=1.5"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_bad_arguments(teacher, data, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _search(teacher, data, tmp_path, **kwargs)
    assert not os.path.exists(tmp_path / "search")


def test_data_must_be_a_dataset_or_arrays(teacher, data, tmp_path):
    with pytest.raises(TypeError, match="`train` must be a `tf.data.Dataset`"):
        search_student(teacher, [1, 2, 3], data[1], directory=str(tmp_path))


def test_train_with_sample_weights_and_validation_without(teacher, data, tmp_path):
    (x, y), validation = data
    weights = np.ones(len(y), "float32")
    train = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(16)
    result = search_student(
        teacher,
        train,
        validation,
        tuner="random",
        max_trials=1,
        batch_size=16,
        directory=str(tmp_path),
        seed=1,
    )
    assert result.trials[0]["status"] == "COMPLETED"
    assert result.teacher_runs == 2  # Different elements: scored one by one.


def test_seed_0_is_a_seed(teacher, data, tmp_path):
    # Keras Tuner takes seed=0 as "no seed" and draws one from Python's global
    # `random` state; `tf-mp tune` defaults to 0, and on a mesh over several
    # processes every process must draw the same trials.
    import random

    drawn = []
    for state in (1, 2):
        random.seed(state)
        result = search_student(
            teacher,
            *data,
            tuner="random",
            max_trials=1,
            batch_size=16,
            directory=str(tmp_path / str(state)),
            seed=0,
        )
        drawn.append(result.trials[0]["hyperparameters"])
    assert drawn[0] == drawn[1]
