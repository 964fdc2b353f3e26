"""`StudentHyperModel`: the space it proposes, on and off a mesh."""

import keras_tuner
import numpy as np
import pytest

import tf_mp
from tests.automl.search_test import assert_same_students
from tests.distillation import tiny_bert
from tf_mp.automl import StudentHyperModel
from tf_mp.automl import StudentSpace
from tf_mp.automl import search_student
from tf_mp.automl.hypermodel import spread_layers


@pytest.fixture(scope="module")
def teacher():
    return tiny_bert.classifier(seed=0)  # 4 blocks, 4 heads of 4, 32 units


def _choices(hypermodel):
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    return {p.name: list(p.values) for p in hp.space if hasattr(p, "values")}


def test_default_space_is_drawn_from_the_teacher(teacher):
    choices = _choices(StudentHyperModel(teacher))
    assert choices["num_layers"] == [1, 2, 3, 4]
    assert choices["num_heads"] == [1, 2, 4]
    assert choices["head_size"] == [4]
    assert choices["intermediate_dim"] == [8, 16, 32]
    assert choices["init"] == ["teacher", "random"]
    assert {"temperature", "alpha", "learning_rate", "hidden_weight"} <= set(choices)
    assert choices["lr_schedule"] == ["linear"]


def test_teacher_init_copies_spread_blocks(teacher):
    assert spread_layers(3, 6) == [0, 2, 4]
    assert spread_layers(2, 4) == [0, 2]
    space = StudentSpace(num_layers=2, num_heads=4, intermediate_dim=32, init="teacher")
    hypermodel = StudentHyperModel(teacher, space)
    hp = keras_tuner.HyperParameters()
    student = hypermodel.build(hp).student
    source = teacher.backbone.get_layer("transformer_layer_2").get_weights()
    copied = student.backbone.get_layer("transformer_layer_1").get_weights()
    for a, b in zip(source, copied):
        np.testing.assert_array_equal(a, b)


def test_random_init_with_a_seed_rebuilds_identically(teacher):
    hypermodel = StudentHyperModel(teacher, StudentSpace(init="random"), seed=7)
    weights = [
        hypermodel.student(keras_tuner.HyperParameters()).get_weights()
        for _ in range(2)
    ]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("init", ["teacher", "random"])
def test_a_seeded_trial_trains_identically_despite_dropout(init):
    teacher = tiny_bert.classifier(seed=0, dropout=0.3)

    def trained_weights(seed):
        space = StudentSpace(init=init, num_layers=2)
        hypermodel = StudentHyperModel(teacher, space, seed=seed)
        distiller = hypermodel.build(keras_tuner.HyperParameters())
        distiller.fit(tiny_bert.dataset(n=16, batch_size=8), epochs=2, verbose=0)
        return distiller.student.get_weights()

    for a, b in zip(trained_weights(5), trained_weights(5)):
        np.testing.assert_array_equal(a, b)
    if init == "teacher":
        # Copied weights: only the dropout masks differ between two unseeded
        # runs, and they do. (Random-init students differ anyway.)
        unseeded = zip(trained_weights(None), trained_weights(None))
        assert any(not np.array_equal(a, b) for a, b in unseeded)


def test_other_head_sizes_start_randomly(teacher):
    hypermodel = StudentHyperModel(teacher, StudentSpace(head_size=8, num_heads=2))
    hp = keras_tuner.HyperParameters()
    student = hypermodel.student(hp)
    assert "init" not in hp.values  # Inactive: widths do not match the teacher.
    assert student.backbone.hidden_dim == 16


def test_mesh_keeps_only_shapes_that_divide_the_model_axis(teacher, make_mesh):
    mesh = make_mesh((1, 4))
    distribution = tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh))
    hypermodel = StudentHyperModel(
        teacher,
        StudentSpace(intermediate_dim=[6, 8, 12, 32]),
        distribution=distribution,
    )
    assert hypermodel.space["num_heads"] == [4]
    assert hypermodel.space["intermediate_dim"] == [8, 12, 32]
    with pytest.raises(ValueError, match=r"No `num_heads` value divides .*\(4\)"):
        StudentHyperModel(
            teacher, StudentSpace(num_heads=[1, 2]), distribution=distribution
        )
    with pytest.raises(ValueError, match="`model_axis` must be one of"):
        StudentHyperModel(teacher, distribution=distribution, model_axis="tensor")


def test_search_on_a_mesh_equals_the_search_on_one_device(teacher, make_mesh, tmp_path):
    mesh = make_mesh((2, 2))
    distribution = tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh))
    results = {}
    for name, where in (("mesh", distribution), ("one_device", None)):
        # Its own teacher: training on the mesh moves the teacher there too.
        teacher = tiny_bert.classifier(seed=0)
        space = StudentSpace(num_layers=[1, 2], num_heads=[2, 4])
        hypermodel = StudentHyperModel(teacher, space, distribution=where, seed=0)
        results[name] = search_student(
            teacher,
            tiny_bert.data(64, seed=0),
            tiny_bert.data(32, seed=1),
            tuner="random",
            max_trials=2,
            hypermodel=hypermodel,
            batch_size=16,
            directory=str(tmp_path / name),
            seed=0,
        )
    sharded, plain = results["mesh"], results["one_device"]
    assert [t["status"] for t in sharded.trials] == ["COMPLETED"] * 2
    for a, b in zip(sharded.trials, plain.trials):
        assert a["hyperparameters"] == b["hyperparameters"]
        assert a["val_accuracy"] == b["val_accuracy"]
    report = tf_mp.shard_report(sharded.best_student)
    assert report.bytes_per_device < report.total_bytes
    assert_same_students(sharded, plain)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_layers": []}, "`num_layers` offers no value"),
        ({"num_heads": [0, 2]}, "`num_heads` values must be positive integers"),
        ({"intermediate_dim": 2.5}, "`intermediate_dim` values must be positive"),
        (
            {"init": "pretrained"},
            r"`init` values must be one of \['teacher', 'random'\]",
        ),
        ({"lr_schedule": "cosine"}, r"`lr_schedule` values must be one of"),
    ],
)
def test_bad_space(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StudentSpace(**kwargs)


def test_a_trial_traces_its_train_step_once(teacher):
    """The trial's optimizer is built with its distiller: built inside the
    first traced step, it made TensorFlow trace that step twice."""
    hypermodel = StudentHyperModel(teacher, StudentSpace(num_layers=1), seed=0)
    hp = keras_tuner.HyperParameters()
    distiller = hypermodel.build(hp)
    assert distiller.optimizer.built
    traces = []
    step = distiller.train_step

    def counted(data):
        traces.append(data)
        return step(data)

    object.__setattr__(distiller, "train_step", counted)
    data = tiny_bert.dataset(n=16, batch_size=8)
    hypermodel.fit(hp, distiller, data, epochs=2, verbose=0)
    assert len(traces) == 1
