"""Weights of a Keras weights file go to a mesh one shard at a time: each
device's shard is read from the file by itself, never the whole weight."""

import h5py
import keras
import numpy as np

import tf_mp
from tf_mp.parallel.dtensor import weight_files


def _model():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="up")(inputs)
    outputs = keras.layers.Dense(6, name="down")(hidden)
    return keras.Model(inputs, outputs)


def test_each_device_reads_only_its_shard_of_a_split_weight(
    make_mesh, tmp_path, monkeypatch
):
    keras.utils.set_random_seed(3)
    source = _model()
    path = str(tmp_path / "model.weights.h5")
    source.save_weights(path)
    reads = []
    whole_reads = []
    read_part = weight_files.FileArray.__getitem__
    read_whole = weight_files.FileArray.__array__

    def recorded_part(self, index):
        reads.append((self.shape, index))
        return read_part(self, index)

    def recorded_whole(self, *args, **kwargs):
        whole_reads.append(self.shape)
        return read_whole(self, *args, **kwargs)

    monkeypatch.setattr(weight_files.FileArray, "__getitem__", recorded_part)
    monkeypatch.setattr(weight_files.FileArray, "__array__", recorded_whole)
    mesh = make_mesh((2, 2))
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map["up/kernel"] = (None, "model")
    layout_map["down/kernel"] = ("model", None)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        loaded = _model()
    loaded.load_weights(path)

    for got, want in zip(loaded.weights, source.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    assert whole_reads == []

    def parts(shape, dim):
        return sorted(
            (index[dim].start, index[dim].stop) for s, index in reads if s == shape
        )

    # On (2, 2), two devices hold each half: each half is read once.
    assert parts((6, 8), dim=1) == [(0, 4), (4, 8)]
    assert parts((8, 6), dim=0) == [(0, 4), (4, 8)]
    # A replicated weight is read once for all the devices holding it.
    assert [index for shape, index in reads if shape == (8,)] == [(slice(None),)]


def test_a_file_array_met_outside_a_mesh_assignment_reads_as_an_array(tmp_path):
    value = np.arange(12, dtype="float32").reshape(3, 4)
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f["w"] = value
    with h5py.File(path, "r") as f:
        array = weight_files.FileArray(f["w"])
        assert (array.shape, array.ndim, array.dtype, len(array)) == (
            (3, 4),
            2,
            np.dtype("float32"),
            3,
        )
        np.testing.assert_array_equal(np.asarray(array), value)
        np.testing.assert_array_equal(array[1:, 2], value[1:, 2])
        np.testing.assert_array_equal(array * 2 + 1, value * 2 + 1)
        np.testing.assert_array_equal(array.T, value.T)
        np.testing.assert_array_equal(np.concatenate([array, array]).shape, (6, 4))
        variable = keras.Variable(np.zeros((3, 4), "float32"))
        variable.assign(array)
        np.testing.assert_array_equal(variable.numpy(), value)
