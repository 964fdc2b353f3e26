"""`Budget`, `TransferData` and `StudentSpace`: their checks, and the keywords
of earlier releases that still reach them (with a `DeprecationWarning`)."""

import numpy as np
import pytest

from tests.distillation import tiny_bert
from tf_mp.automl import Budget
from tf_mp.automl import StudentHyperModel
from tf_mp.automl import StudentSpace
from tf_mp.automl import TransferData
from tf_mp.automl import search_student
from tf_mp.automl.settings import grouped


@pytest.fixture(scope="module")
def teacher():
    return tiny_bert.classifier(seed=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_params": -5}, ValueError, "max_params=-5"),
        ({"max_params": 0}, ValueError, "max_params=0"),
        ({"max_latency_ms": "fast"}, TypeError, "max_latency_ms='fast'"),
    ],
)
def test_bad_budget(kwargs, error, match):
    with pytest.raises(error, match=match):
        Budget(**kwargs)


def test_bad_transfer_data():
    with pytest.raises(ValueError, match="needs cache=True"):
        TransferData(cache=False, cache_directory="teacher_cache")
    with pytest.raises(TypeError, match="cache='yes'"):
        TransferData(cache="yes")


def test_old_search_keywords_fold_into_the_settings():
    keywords = {
        "max_params": 1000,
        "max_latency_ms": 2.5,
        "teacher_cache": True,
        "cache_directory": "c",
        "num_initial_points": 3,
    }
    sets = {"augmented": np.zeros((2, 8), "int32")}
    with pytest.warns(DeprecationWarning, match="budget=tf_mp.automl.Budget"):
        budget, transfer_data = grouped(None, sets, keywords)
    assert budget == Budget(max_params=1000, max_latency_ms=2.5)
    assert transfer_data.sets is sets and transfer_data.cache_directory == "c"
    assert keywords == {"num_initial_points": 3}  # Left for Keras Tuner.
    with pytest.raises(ValueError, match="either `budget` or the deprecated"):
        grouped(Budget(), None, {"max_params": 1})
    with pytest.raises(ValueError, match=r"deprecated keywords \['teacher_cache'\]"):
        grouped(None, TransferData(), {"teacher_cache": False})
    with pytest.raises(TypeError, match="`budget` must be a `tf_mp.automl.Budget`"):
        grouped({"max_params": 1}, None, {})
    assert grouped(None, None, {}) == (Budget(), TransferData())


def test_a_search_with_an_old_keyword_checks_it_and_writes_nothing(teacher, tmp_path):
    data = tiny_bert.data(16, seed=0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="-5"):
        search_student(teacher, data, data, max_params=-5, directory=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_old_space_keywords_make_the_same_space(teacher):
    with pytest.warns(DeprecationWarning, match=r"space=tf_mp.automl.StudentSpace"):
        old = StudentHyperModel(teacher, num_layers=[1, 2], init="random")
    new = StudentHyperModel(teacher, StudentSpace(num_layers=[1, 2], init="random"))
    assert old.space == new.space and old.student_space == new.student_space
    with pytest.raises(ValueError, match="either `space` or the deprecated"):
        StudentHyperModel(teacher, StudentSpace(), num_layers=2)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['depth'\]"):
        StudentHyperModel(teacher, depth=2)
    with pytest.raises(TypeError, match="`space` must be a `tf_mp.automl.Student"):
        StudentHyperModel(teacher, {"num_layers": 2})


def test_a_space_resolves_against_its_teacher_and_model_axis(teacher):
    config = {"num_layers": 6, "num_heads": 8, "hidden_dim": 64}
    config["intermediate_dim"] = 256
    space = StudentSpace(num_heads=[2, 3, 8], temperature=2.0).choices(config, 2)
    assert space["num_layers"] == [1, 2, 3, 4, 5, 6]
    assert space["num_heads"] == [2, 8]  # 3 does not divide the model axis.
    assert space["head_size"] == [8]
    assert space["intermediate_dim"] == [64, 128, 256]
    assert space["temperature"] == [2.0]
    assert "transfer" not in space
