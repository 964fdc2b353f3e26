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


def test_model_parallelism_that_does_not_fit_falls_back_in_one_line(virtual_devices):
    with pytest.warns(UserWarning) as warned:
        distribution = tf_mp.auto_parallel(model_parallelism=3, virtual_devices=8)
    assert distribution.mesh.shape == {"batch": 4, "model": 2}
    [message] = [str(w.message) for w in warned]
    assert message == (
        "model_parallelism=3 does not fit the 8 CPU device(s) found: using "
        "model_parallelism=2."
    )


def test_without_fallback_a_model_parallelism_that_does_not_fit_is_an_error(
    virtual_devices,
):
    with pytest.raises(ValueError, match=r"divide the 8 CPU.*model_parallelism=3"):
        tf_mp.auto_parallel(model_parallelism=3, virtual_devices=8, fallback=False)
    with pytest.raises(ValueError, match=r"model_parallelism=16 .*8 fits"):
        tf_mp.auto_parallel(model_parallelism=16, virtual_devices=8, fallback=False)
