"""Student construction from an encoder teacher (BERT and its relatives)."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tests.distillation import tiny_bert
from tests.models import families
from tf_mp import distillation


def _weights(model):
    return {w.path: w.numpy() for w in model.weights}


def test_all_blocks_copied_is_the_teacher():
    teacher = tiny_bert.classifier(seed=0)
    student = distillation.student_from_teacher(teacher)
    x, _ = tiny_bert.data(8)
    np.testing.assert_allclose(
        student.predict(x, verbose=0), teacher.predict(x, verbose=0), rtol=1e-6
    )


def test_listed_blocks_are_copied_distilbert_style():
    teacher = tiny_bert.classifier(num_layers=4, seed=0)
    student = distillation.student_from_teacher(teacher, layers=[0, 2])
    assert isinstance(student, keras_hub.models.BertTextClassifier)
    assert distillation.bert_config(student)["num_layers"] == 2
    t, s = _weights(teacher), _weights(student)
    for path, value in s.items():
        source = path.replace("transformer_layer_1/", "transformer_layer_2/")
        np.testing.assert_array_equal(value, t[source], err_msg=path)


def test_narrow_student_keeps_the_most_important_heads_units_and_dims():
    teacher = tiny_bert.classifier(num_layers=2, hidden=16, heads=4, ff=32, seed=0)
    w = {v.path: v for v in teacher.weights}
    block = "transformer_layer_0/"
    attention = block + "self_attention_layer/"
    heads, units, dims = [1, 3], [2, 5, 11, 30], np.arange(4, 12)
    for name in ("query", "key", "value"):
        kernel = w[attention + name + "/kernel"]  # (16, 4, 4)
        scaled = kernel.numpy()
        scaled[:, heads] *= 10.0
        kernel.assign(scaled)
    up, down = (
        w[block + "feedforward_intermediate_dense/kernel"],
        w[block + "feedforward_output_dense/kernel"],
    )
    up_value, down_value = up.numpy(), down.numpy()
    up_value[:, units] *= 10.0
    down_value[units] *= 10.0
    up.assign(up_value)
    down.assign(down_value)
    embeddings = w["token_embedding/embeddings"]
    value = embeddings.numpy()
    value[:, dims] *= 100.0
    embeddings.assign(value)

    student = distillation.student_from_teacher(
        teacher, num_heads=2, intermediate_dim=4
    )
    config = distillation.bert_config(student)
    assert (config["num_heads"], config["hidden_dim"], config["intermediate_dim"]) == (
        2,
        8,  # 2 heads x head size 4
        4,
    )
    s, t = _weights(student), {p: v.numpy() for p, v in w.items()}
    query = attention + "query/kernel"
    np.testing.assert_array_equal(s[query], t[query][dims][:, heads])
    out = attention + "attention_output/kernel"
    np.testing.assert_array_equal(s[out], t[out][heads][:, :, dims])
    ff = block + "feedforward_intermediate_dense/kernel"
    np.testing.assert_array_equal(s[ff], t[ff][dims][:, units])
    np.testing.assert_array_equal(
        s["token_embedding/embeddings"], t["token_embedding/embeddings"][:, dims]
    )
    assert distillation.encoder_parameters(student) < distillation.encoder_parameters(
        teacher
    )


def test_fresh_student_from_config_shares_the_vocabulary():
    teacher = tiny_bert.classifier(seed=0)
    student = distillation.student_from_config(
        teacher, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16
    )
    config = distillation.bert_config(student)
    assert config["vocabulary_size"] == tiny_bert.VOCAB
    assert config["max_sequence_length"] == tiny_bert.SEQ
    assert (config["num_layers"], config["hidden_dim"]) == (1, 8)
    tf_mp.Distiller(teacher, student)  # Compatible by construction.
    backbone = distillation.student_from_config(teacher.backbone, 1, 8, 2, 16)
    assert isinstance(backbone, keras_hub.models.BertBackbone)


def test_partitioned_teacher_gives_the_same_student():
    teacher = tiny_bert.classifier(seed=0)
    partitioned = tf_mp.models.partition_bert(teacher.backbone)
    assert distillation.bert_config(partitioned) == distillation.bert_config(teacher)
    a = distillation.student_from_teacher(teacher.backbone, layers=[1, 3])
    b = distillation.student_from_teacher(partitioned, layers=[1, 3])
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": [0, 4]}, r"`layers` must name blocks of the teacher, which has 4"),
        ({"num_heads": 8}, r"`num_heads` must be an int from 1 to the teacher's 4"),
        ({"intermediate_dim": 0}, r"`intermediate_dim` must be an int from 1"),
    ],
)
def test_bad_student_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distillation.student_from_teacher(tiny_bert.classifier(seed=0), **kwargs)


def test_fresh_student_width_must_split_into_heads():
    with pytest.raises(ValueError, match=r"hidden_dim=10, num_heads=4"):
        distillation.student_from_config(tiny_bert.classifier(seed=0), 1, 10, 4, 16)


# The encoder families that share BERT's keras-hub `TransformerEncoder` block.
# ELECTRA has no keras-hub text classifier: its teacher is the backbone.
FAMILY_TASKS = {
    "roberta": keras_hub.models.RobertaTextClassifier,
    "xlm_roberta": keras_hub.models.XLMRobertaTextClassifier,
    "distil_bert": keras_hub.models.DistilBertTextClassifier,
    "electra": None,
}


def _family_teacher(family, backbone=None):
    backbone = backbone or families.backbone(family, num_layers=2)
    task = FAMILY_TASKS[family]
    if task is None:
        return backbone
    keras.utils.set_random_seed(3)
    return task(backbone, num_classes=2, preprocessor=None)


def _outputs(model, x):
    outputs = model.predict(x, verbose=0)
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


@pytest.mark.parametrize("family", sorted(FAMILY_TASKS))
def test_students_of_other_encoder_families(family):
    teacher = _family_teacher(family)
    x = families.inputs(teacher)
    whole = distillation.student_from_teacher(teacher)
    assert type(whole) is type(teacher)
    np.testing.assert_allclose(_outputs(whole, x), _outputs(teacher, x), rtol=1e-5)

    one_block = distillation.student_from_teacher(teacher, layers=[1])
    t = _weights(teacher)
    for path, value in _weights(one_block).items():
        source = path.replace("transformer_layer_0/", "transformer_layer_1/")
        np.testing.assert_array_equal(value, t[source], err_msg=path)

    narrow = distillation.student_from_teacher(teacher, num_heads=2, intermediate_dim=8)
    config = distillation.encoder_config(narrow)
    assert (config["num_heads"], config["hidden_dim"], config["intermediate_dim"]) == (
        2,
        8,  # 2 heads x head size 4
        8,
    )
    assert _outputs(narrow, x).shape[-1] == (2 if FAMILY_TASKS[family] else 8)
    fresh = distillation.student_from_config(teacher, 1, 8, 2, 8)
    assert type(fresh) is type(teacher)
    if FAMILY_TASKS[family] is not None:
        # The hidden-state and attention terms read the family's blocks.
        distiller = tf_mp.Distiller(
            teacher, narrow, hidden_weight=1.0, attention_weight=1.0
        )
        tiny_bert.compile_distiller(distiller)
        y = families.labels()
        history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])


def test_a_partitioned_family_teacher_gives_the_same_student(make_mesh):
    teacher = _family_teacher("roberta")
    partitioned = tf_mp.models.partition(teacher, make_mesh((1, 2)))
    assert distillation.encoder_config(partitioned) == distillation.encoder_config(
        teacher
    )
    a = distillation.student_from_teacher(teacher, layers=[1], num_heads=2)
    b = distillation.student_from_teacher(partitioned, layers=[1], num_heads=2)
    assert type(b) is keras_hub.models.RobertaTextClassifier
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_teachers_without_per_layer_encoder_blocks_are_refused():
    with pytest.raises(TypeError, match=r"Received: teacher=AlbertBackbone"):
        distillation.student_from_teacher(families.backbone("albert"))
    with pytest.raises(TypeError, match=r"Received: teacher=GPT2Backbone"):
        distillation.encoder_config(families.backbone("gpt2"))
