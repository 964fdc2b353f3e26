"""`tf_mp.auto_parallel` on a machine without a TPU: a DTensor mesh."""

import pytest

import tf_mp


def test_without_a_tpu_it_is_a_batch_by_model_mesh(virtual_devices):
    seen = []

    def layout_map(mesh):
        seen.append(mesh)
        return tf_mp.bert_layout_map(mesh)

    distribution = tf_mp.auto_parallel(
        model_parallelism=4, layout_map=layout_map, virtual_devices=8
    )
    assert isinstance(distribution, tf_mp.ModelParallel)
    assert distribution.mesh.shape == {"batch": 2, "model": 4}
    assert distribution.num_replicas_in_sync == 2
    assert seen == [distribution.mesh]
    assert distribution.layout_map.mesh is distribution.mesh


def test_model_parallelism_must_divide_the_devices(virtual_devices):
    with pytest.raises(ValueError, match=r"divide the 8 CPU.*model_parallelism=3"):
        tf_mp.auto_parallel(model_parallelism=3, virtual_devices=8)
