"""Every tf_mp layer through the shared harness (`harness.run_layer_test`),
off-mesh and on (1, 2) and (2, 2) meshes."""

import numpy as np
import pytest

import tf_mp
from tests.layers import harness

_X = np.random.default_rng(0).normal(size=(4, 6, 8)).astype("float32")

LAYERS = {
    "column": (
        tf_mp.layers.ColumnParallelDense,
        {"units": 4, "activation": "gelu"},
        _X,
        (4, 6, 4),
        2,
    ),
    "column_gathered": (
        tf_mp.layers.ColumnParallelDense,
        {"units": 4, "gather_output": True},
        _X,
        (4, 6, 4),
        2,
    ),
    "row": (tf_mp.layers.RowParallelDense, {"units": 6}, _X, (4, 6, 6), 2),
    "attention": (
        tf_mp.layers.ParallelMultiHeadAttention,
        {"num_heads": 2, "key_dim": 4},
        {"query": _X, "value": _X},
        (4, 6, 8),
        8,
    ),
    "encoder": (
        tf_mp.layers.ParallelTransformerEncoder,
        {"intermediate_dim": 16, "num_heads": 2, "dropout": 0.0},
        _X,
        (4, 6, 8),
        16,
    ),
    "cached_attention": (
        tf_mp.layers.ParallelCachedMultiHeadAttention,
        {"num_heads": 2, "key_dim": 4},
        {"query": _X, "value": _X},
        (4, 6, 8),
        8,
    ),
    "decoder": (
        tf_mp.layers.ParallelTransformerDecoder,
        {"intermediate_dim": 16, "num_heads": 2, "dropout": 0.0},
        {"decoder_sequence": _X},
        (4, 6, 8),
        16,
    ),
}


@pytest.mark.parametrize("mesh_shape", [None, (1, 2), (2, 2)], ids=str)
@pytest.mark.parametrize("name", LAYERS)
def test_layer(name, mesh_shape, make_mesh, tmp_path):
    cls, kwargs, data, shape, weights = LAYERS[name]
    mesh = make_mesh(mesh_shape) if mesh_shape else None
    harness.run_layer_test(cls, kwargs, data, shape, weights, tmp_path, mesh=mesh)


def test_row_parallel_configs_from_tf_mp_0_1_load():
    """`input_is_parallel` was saved by tf_mp 0.1 and never read."""
    config = tf_mp.layers.RowParallelDense(6).get_config()
    layer = tf_mp.layers.RowParallelDense.from_config(
        {**config, "input_is_parallel": False}
    )
    assert layer.get_config() == config
