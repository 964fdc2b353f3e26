import pytest

import tf_mp
from tests import tiny_models


def test_mesh_exposes_axes_shape_size_and_devices(make_mesh):
    mesh = make_mesh((2, 4))
    assert mesh.axis_names == ("batch", "model")
    assert mesh.shape == {"batch": 2, "model": 4}
    assert mesh.size == 8
    assert mesh.device_type == "CPU"
    assert len(set(mesh.devices)) == 8
    assert mesh.dtensor_mesh.dim_size("model") == 4


def test_mesh_accepts_a_sequence_of_pairs_and_explicit_devices(virtual_devices):
    mesh = tf_mp.Mesh([("model", 2)], devices=["CPU:3", "cpu:5"])
    assert mesh.devices == ("CPU:3", "CPU:5")
    assert mesh.shape == {"model": 2}


def test_mesh_uses_only_as_many_devices_as_its_shape(make_mesh):
    assert make_mesh((1, 2)).devices == make_mesh((2, 1)).devices


def test_mesh_converts_a_keras_device_mesh(virtual_devices):
    keras_mesh = tiny_models.keras_device_mesh((2, 2))
    mesh = tf_mp.Mesh.from_keras(keras_mesh)
    assert mesh.shape == {"batch": 2, "model": 2}
    assert mesh.devices == ("CPU:0", "CPU:1", "CPU:2", "CPU:3")


def test_too_few_devices_names_the_numbers(virtual_devices):
    with pytest.raises(ValueError, match=r"needs 16 devices, but only 8 CPU"):
        tf_mp.Mesh({"batch": 4, "model": 4})


def test_device_count_must_equal_the_shape_product(virtual_devices):
    with pytest.raises(
        ValueError, match=r"product of the mesh shape \(4 .*Received: 3"
    ):
        tf_mp.Mesh({"batch": 2, "model": 2}, devices=["CPU:0", "CPU:1", "CPU:2"])


@pytest.mark.parametrize(
    "shape, error",
    [
        ({}, ValueError),
        ({"model": 0}, ValueError),
        ({"model": 2.0}, ValueError),
        ([("model",)], TypeError),
        ([("model", 2), ("model", 2)], ValueError),
    ],
)
def test_bad_shapes_are_rejected(virtual_devices, shape, error):
    with pytest.raises(error):
        tf_mp.Mesh(shape)
