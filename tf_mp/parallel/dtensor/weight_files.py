"""Weights read from a Keras weights file one shard at a time.

Keras's `.weights.h5` store (`saving_lib.H5IOStore`) reads each weight whole
into a NumPy array, which `Variable.assign` then hands over. For a weight on a
mesh that is a whole extra copy on the host at a time (BERT-base's token
embedding: 94 MB). While a layer that only assigns what it reads loads its
variables on a mesh, its store hands out `FileArray`s instead: each device's
shard is read from the file by itself (`transfer.place`), and anything else
that meets one reads it whole, as before.
"""

import h5py
import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class FileArray(NDArrayOperatorsMixin):
    """A dataset of an HDF5 weights file, read only where indexed.

    `array[index]` reads that part of the file; `np.asarray(array)`, NumPy
    functions and arithmetic read it whole, so code that expected Keras's
    array still gets one.
    """

    def __init__(self, dataset):
        self._dataset = dataset
        self.shape = tuple(dataset.shape)
        self.dtype = dataset.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, index):
        return np.asarray(self._dataset[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._dataset[()], dtype=dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = [np.asarray(x) if isinstance(x, FileArray) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __len__(self):
        return self.shape[0]

    # What else code written for Keras's array might use, read whole. (No
    # `__getattr__` fallback: type checks probe attributes with `hasattr`.)
    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def T(self):
        return np.asarray(self).T

    def astype(self, dtype, copy=True):
        return np.asarray(self).astype(dtype, copy=copy)

    def reshape(self, *shape, **kwargs):
        return np.asarray(self).reshape(*shape, **kwargs)

    def __repr__(self):
        return f"<FileArray {self._dataset.name!r} shape={self.shape} {self.dtype}>"


class ShardReadingStore:
    """A Keras `H5IOStore` whose weights are `FileArray`s.

    A weight Keras itself converts on reading (bfloat16, stored as raw bytes),
    or one held in another file of a sharded store, is read as Keras reads it.
    """

    def __init__(self, store):
        self._store = store

    def __getitem__(self, key):
        group = getattr(self._store, "_h5_entry_group", None)
        dataset = group.get(key) if group is not None else None
        if (
            not isinstance(dataset, h5py.Dataset)
            or "dtype" in dataset.attrs
            or not dataset.shape
        ):
            return self._store[key]
        return FileArray(dataset)

    def __len__(self):
        return len(self._store)

    def __contains__(self, key):
        return key in self._store

    def __getattr__(self, name):
        return getattr(self._store, name)


def _on_mesh(layer):
    return any(
        getattr(v, "_tf_mp_distribution", None) is not None for v in layer.variables
    )


def reading_by_shard(load_own_variables):
    """A `load_own_variables` that only assigns what it reads, given a
    `ShardReadingStore` when its layer's variables are on a mesh."""

    def load(self, store):
        if hasattr(store, "_h5_entry_group") and _on_mesh(self):
            store = ShardReadingStore(store)
        return load_own_variables(self, store)

    load.tf_mp_original = load_own_variables
    return load


# Keras layers whose `load_own_variables` assigns each value it reads to a
# variable and does nothing else with it (subclasses that do not override it
# included: keras-hub's `ReversibleEmbedding` is an `Embedding`).
ASSIGNING = (
    ("keras.src.layers.layer", "Layer"),
    ("keras.src.layers.core.dense", "Dense"),
    ("keras.src.layers.core.einsum_dense", "EinsumDense"),
    ("keras.src.layers.core.embedding", "Embedding"),
    ("keras.src.layers.convolutional.base_conv", "BaseConv"),
)
