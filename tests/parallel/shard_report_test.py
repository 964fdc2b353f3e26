import keras

import tf_mp
from tests import tiny_models


def test_report_counts_per_device_bytes_from_the_layout(make_mesh):
    mesh = make_mesh((1, 4))
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        model = tiny_models.bert_classifier()
    report = tf_mp.shard_report(model)
    assert len(report.rows) == len(model.weights)
    rows = {r.path: r for r in report.rows}
    query = rows["transformer_layer_0/self_attention_layer/query/kernel"]
    assert query.axes == (None, "model", None)
    assert query.bytes == 16 * 4 * 4 * 4
    assert query.bytes_per_device == query.bytes // 4
    norm = rows["transformer_layer_0/feedforward_layer_norm/gamma"]
    assert norm.bytes_per_device == norm.bytes
    assert report.total_bytes == sum(r.bytes for r in report.rows)
    assert 0.25 < report.fraction_per_device < 1.0
    text = str(report)
    assert text.splitlines()[0].split() == [
        "path",
        "shape",
        "layout",
        "bytes",
        "bytes/device",
    ]
    assert "(-, model, -)" in text and "TOTAL" in text


def test_report_lists_optimizer_slots_and_off_mesh_models(make_mesh):
    model = tiny_models.mlp()
    model.compile(optimizer=keras.optimizers.Adam(), loss=tiny_models.loss())
    model.optimizer.build(model.trainable_variables)
    report = tf_mp.shard_report(model, include_optimizer=True)
    assert len(report.rows) == len(model.weights) + len(model.optimizer.variables)
    assert all(r.axes is None and r.bytes_per_device == r.bytes for r in report.rows)
    assert report.to_dict()["total_bytes"] == report.total_bytes
