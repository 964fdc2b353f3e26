"""`search_student` with transfer data: the `transfer` hyperparameter, the
mixed stream's weights, one teacher pass for every set, cached == uncached."""

import numpy as np
import pytest
import tensorflow as tf

from tests.automl.search_test import assert_same_trials
from tests.distillation import tiny_bert
from tf_mp.automl import StudentHyperModel
from tf_mp.automl import StudentSpace
from tf_mp.automl import TransferChoices
from tf_mp.automl import TransferData
from tf_mp.automl import search_data
from tf_mp.automl import search_student

LABELLED, TRANSFER, AUGMENTED, VALIDATION = 48, 16, 40, 24


@pytest.fixture(scope="module")
def teacher():
    return tiny_bert.classifier(seed=0)


@pytest.fixture(scope="module")
def data():
    train = tiny_bert.data(LABELLED, seed=0)
    sets = {
        "transfer": tiny_bert.data(TRANSFER, seed=2)[0],
        "augmented": tiny_bert.data(AUGMENTED, seed=3)[0],
    }
    return train, tiny_bert.data(VALIDATION, seed=1), sets


def _search(teacher, data, directory, **kwargs):
    train, validation, sets = data
    kwargs.setdefault("transfer_data", TransferData(sets))
    return search_student(
        teacher,
        train,
        validation,
        tuner="random",
        batch_size=16,
        directory=str(directory),
        project_name="search",
        seed=1,
        **kwargs,
    )


def _every_choice(teacher):
    """A space where only the transfer choice varies (3 points)."""
    space = StudentSpace(
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        init="teacher",
        temperature=2.0,
        alpha=0.5,
        learning_rate=1e-3,
        transfer=["none", "transfer", "augmented"],
    )
    return StudentHyperModel(teacher, space, seed=1)


def test_each_choice_trains_and_the_teacher_scores_every_set_once(
    teacher, data, tmp_path
):
    result = _search(
        teacher, data, tmp_path, max_trials=3, hypermodel=_every_choice(teacher)
    )
    choices = [t["hyperparameters"]["transfer"] for t in result.trials]
    assert sorted(choices) == ["augmented", "none", "transfer"]
    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3
    assert result.teacher_runs == 1
    assert result.teacher_scored_rows == LABELLED + TRANSFER + AUGMENTED + VALIDATION


def test_the_default_space_offers_none_and_each_set(teacher, data, tmp_path):
    result = _search(teacher, data, tmp_path, max_trials=1)
    space = result.tuner.oracle.hyperparameters.get_config()["space"]
    (transfer,) = [h for h in space if h["config"]["name"] == "transfer"]
    assert transfer["config"]["values"] == ["none", "transfer", "augmented"]


def _stream(teacher, data, cached, sample_weight=False):
    (x, y), validation, sets = data
    columns = (x, y, np.full(len(y), 2.0, "float32")) if sample_weight else (x, y)
    hypermodel = _every_choice(teacher)
    train, _, _, cache = search_data.prepare(
        hypermodel,
        tf.data.Dataset.from_tensor_slices(columns).batch(16),
        validation,
        16,
        TransferData(sets, cache=cached),
        seed=5,
    )
    return train, cache


@pytest.mark.parametrize("sample_weight", [False, True])
def test_a_transfer_epoch_weights_labelled_rows_to_their_mean(
    teacher, data, sample_weight
):
    (x, y), _, sets = data
    choices, _ = _stream(teacher, data, cached=False, sample_weight=sample_weight)
    assert isinstance(choices, TransferChoices)
    stream, extra = choices.fit_arguments("augmented")
    assert extra == {"steps_per_epoch": 3}  # 48 labelled rows, batches of 16.
    labelled_ids = {r.tobytes() for r in x["token_ids"]}
    label_of = {r.tobytes(): int(c) for r, c in zip(x["token_ids"], y)}
    augmented_ids = {r.tobytes() for r in sets["augmented"]["token_ids"]}
    own = 2.0 if sample_weight else 1.0
    seen, weights = 0, []
    for xb, yb, wb in stream.take(60):  # 960 rows: about 10 passes.
        for ids, label, weight in zip(xb["token_ids"].numpy(), yb.numpy(), wb.numpy()):
            key = ids.tobytes()
            if key in labelled_ids:
                seen += 1
                assert label == label_of[key]
                np.testing.assert_allclose(weight, own * (48 + 40) / 48, rtol=1e-6)
            else:
                assert key in augmented_ids and label == 0 and weight == 0
            weights.append(weight)
    # Rows come in proportion to their counts: 48 of 88 labelled.
    assert abs(seen / 960 - 48 / 88) < 0.06
    # So the mean weight, over an epoch's worth of rows, is about one (x own).
    assert abs(np.mean(weights) / own - 1) < 0.12
    # Every `fit` gets a fresh pipeline, and reads the same stream.
    first, again = (choices.fit_arguments("augmented")[0] for _ in range(2))
    for a, b in zip(first.take(6), again.take(6)):
        np.testing.assert_array_equal(a[0]["token_ids"], b[0]["token_ids"])


def test_cached_and_uncached_streams_hold_the_same_rows_in_the_same_order(
    teacher, data
):
    cached, cache = _stream(teacher, data, cached=True)
    uncached, _ = _stream(teacher, data, cached=False)
    a, _ = cached.fit_arguments("transfer")
    b, _ = uncached.fit_arguments("transfer")
    for (xa, ya, wa), (xb, yb, wb) in zip(a.take(8), b.take(8)):
        inputs = xa["inputs"]
        np.testing.assert_array_equal(inputs["token_ids"], xb["token_ids"])
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(wa, wb)
        # The cached logits are the teacher's on these rows.
        np.testing.assert_allclose(
            xa["teacher_outputs"]["logits"],
            teacher.predict(xb, verbose=0),
            rtol=1e-5,
            atol=1e-6,
        )
    assert cache.teacher_runs == 1


def test_cached_search_scores_as_running_the_teacher(teacher, data, tmp_path):
    kwargs = dict(max_trials=2, hypermodel=_every_choice(teacher))
    cached = _search(teacher, data, tmp_path / "cached", **kwargs)
    kwargs["hypermodel"] = _every_choice(teacher)
    (_, _, sets) = data
    uncached = _search(
        teacher,
        data,
        tmp_path / "uncached",
        transfer_data=TransferData(sets, cache=False),
        **kwargs,
    )
    assert_same_trials(cached, uncached)


def test_a_cache_directory_is_reused_by_a_later_search(teacher, data, tmp_path):
    settings = TransferData(data[2], cache_directory=str(tmp_path / "c"))
    first = _search(teacher, data, tmp_path / "a", max_trials=1, transfer_data=settings)
    second = _search(
        teacher, data, tmp_path / "b", max_trials=1, transfer_data=settings
    )
    assert first.teacher_runs == 1 and second.teacher_runs == 0
    assert first.trials[0]["val_accuracy"] == second.trials[0]["val_accuracy"]


@pytest.mark.parametrize(
    "sets, error, match",
    [
        ([1, 2], TypeError, "`sets` must be a non-empty dict"),
        ({}, TypeError, "`sets` must be a non-empty dict"),
        ({"none": None}, ValueError, "names must be strings other than 'none'"),
        ({"t": {"token_ids": np.zeros((4, 8), "int32")}}, ValueError, r"\['t'\]"),
        ({"t": np.zeros((4, 8), "float32")}, ValueError, "structure and dtypes"),
    ],
)
def test_bad_transfer_data(teacher, data, tmp_path, sets, error, match):
    with pytest.raises(error, match=match):
        _search(teacher, data, tmp_path, max_trials=1, transfer_data=TransferData(sets))


def test_choices_must_name_sets(teacher, data, tmp_path):
    with pytest.raises(ValueError, match=r"choices \['extra'\] are not sets"):
        _search(
            teacher,
            data,
            tmp_path,
            max_trials=1,
            hypermodel=StudentHyperModel(
                teacher, StudentSpace(transfer=["none", "extra"])
            ),
        )
    with pytest.raises(ValueError, match="needs a `hypermodel` with `transfer`"):
        _search(
            teacher, data, tmp_path, max_trials=1, hypermodel=StudentHyperModel(teacher)
        )
    with pytest.raises(ValueError, match="transfer_data=...\\)`'s data"):
        hypermodel = StudentHyperModel(teacher, StudentSpace(transfer=["none"]))
        hp = __import__("keras_tuner").HyperParameters()
        hypermodel.fit(hp, hypermodel.build(hp), tiny_bert.dataset(16))


@pytest.mark.parametrize("transfer", [[1, "none"], []])
def test_transfer_choices_are_names(teacher, transfer):
    with pytest.raises(ValueError, match="transfer"):
        StudentSpace(transfer=transfer)
