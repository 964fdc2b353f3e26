"""Sharding is real: each device holds 1/k of each sharded kernel and its moments."""

import keras
import numpy as np
from tensorflow.experimental import dtensor

import tf_mp
from tests import tiny_models


def test_bert_kernels_and_adam_moments_are_split_across_devices(make_mesh):
    mesh = make_mesh((2, 4))
    layout_map = tf_mp.bert_layout_map(mesh)
    with tf_mp.ModelParallel(mesh, layout_map).scope():
        model = tiny_models.bert_classifier()
    x, y = tiny_models.bert_data()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_models.loss())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)

    slots = {v.path: v for v in model.optimizer.variables}
    sharded = 0
    for variable in model.trainable_weights:
        axes = layout_map.axes_for(variable.path, variable.shape)
        if "model" not in axes:
            continue
        sharded += 1
        dim = axes.index("model")
        key = variable.path.replace("/", "_")
        moments = [
            slots[f"{model.optimizer.name}/{key}_{n}"] for n in ("momentum", "velocity")
        ]
        for tensor in [variable, *moments]:
            pieces = dtensor.unpack(tensor.value.read_value())
            assert len(pieces) == 8
            assert len({p.device for p in pieces}) == 8
            expected_shape = list(variable.shape)
            expected_shape[dim] //= 4
            for piece in pieces:
                assert list(piece.shape) == expected_shape, tensor.path
            # Pieces along the model axis tile the global value.
            model_row = np.concatenate([p.numpy() for p in pieces[:4]], axis=dim)
            np.testing.assert_array_equal(model_row, np.asarray(tensor))
    # 2 blocks x (q, k, v kernels and biases, attention output, ff in kernel
    # and bias, ff out kernel), and the token embedding.
    assert sharded == 2 * 10 + 1
