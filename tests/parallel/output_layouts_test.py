"""Layout-map `/output` keys: layer outputs relaid out in a step, values unchanged."""

import keras
import numpy as np
import pytest

import tf_mp
from tests import tiny_models


def _fit(layout_map=None, epochs=2):
    x, y = tiny_models.mlp_data()
    if layout_map is None:
        model = tiny_models.mlp()
    else:
        with tf_mp.ModelParallel(layout_map.mesh, layout_map).scope():
            model = tiny_models.mlp()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return model, history.history["loss"], model.predict(x, batch_size=16, verbose=0)


@pytest.mark.parametrize("mesh_shape", [(1, 2), (2, 2)])
def test_gathered_output_trains_as_single_device(make_mesh, mesh_shape):
    layout_map = tiny_models.mlp_layout_map(make_mesh(mesh_shape))
    # `hidden` is column-parallel: its output is split over "model". Gather it.
    layout_map[r"hidden/output$"] = ("batch", None)
    _, expected_loss, expected_pred = _fit()
    model, loss, pred = _fit(layout_map)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred, expected_pred, rtol=1e-5, atol=1e-5)
    assert model.get_layer("hidden")._tf_mp_original_call is not None


def test_an_output_layout_of_the_wrong_rank_names_the_layer(make_mesh):
    layout_map = tiny_models.mlp_layout_map(make_mesh((1, 2)))
    layout_map[r"hidden/output$"] = ("batch", None, None)
    with pytest.raises(ValueError, match=r"rank 3.*layer 'mlp/hidden'.*\(16, 16\)"):
        _fit(layout_map, epochs=1)
