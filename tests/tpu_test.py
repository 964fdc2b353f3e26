"""The TPUStrategy engine's pure parts, and its annotations in a real traced graph."""

import keras
import pytest
import tensorflow as tf
from tensorflow.compiler.xla import xla_data_pb2

import tf_mp
from tf_mp import tpu


@pytest.mark.parametrize(
    "axes, shape, expected",
    [
        ((None, "model"), (8, 16), [1, 4]),  # column-parallel kernel
        (("model", None), (16, 8), [4, 1]),  # row-parallel kernel
        ((None, "model", None), (16, 4, 4), [1, 4, 1]),  # q/k/v kernel
        (("model",), (16,), [4]),
        ((None, None, "model"), (None, None, 16), [1, 1, 4]),  # activation
        (("batch", None), (8, 16), [1, 1]),  # the batch axis maps to replicas
    ],
)
def test_partition_dimensions(axes, shape, expected):
    assert tpu.partition_dimensions(axes, shape, 4) == expected


@pytest.mark.parametrize(
    "axes, shape, message",
    [
        ((None, "model"), (8, 6), r"Dimension 1 .*model_parallelism=4\. Received: 6"),
        (("model", "model"), (8, 8), "only one dimension"),
        ((None,), (8, 8), "rank 1"),
    ],
)
def test_partition_dimensions_errors(axes, shape, message):
    with pytest.raises(ValueError, match=message):
        tpu.partition_dimensions(axes, shape, 4)


def _sharding_tiles(layer_fn, input_shape):
    function = tf.function(layer_fn).get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32)
    )
    tiles = []
    for op in function.graph.get_operations():
        if op.type == "XlaSharding":
            sharding = xla_data_pb2.OpSharding()
            sharding.ParseFromString(op.get_attr("_XlaSharding"))
            tiles.append(list(sharding.tile_assignment_dimensions))
    return tiles


def test_parallel_dense_layers_emit_xla_sharding_annotations():
    keras.utils.set_random_seed(0)
    up = tf_mp.layers.ColumnParallelDense(16, activation="relu")
    down = tf_mp.layers.RowParallelDense(8)

    def block(x):  # x: (batch, 8)
        return down(up(x))

    assert _sharding_tiles(block, (4, 8)) == []  # No TPU engine: no annotations.
    with tpu.logical_device_annotations(4):
        tiles = _sharding_tiles(block, (4, 8))
    # Column: kernel (8, 16) -> [1, 4], bias (16,) -> [4], output (4, 16) -> [1, 4];
    # row: input (4, 16) -> [1, 4], kernel (16, 8) -> [4, 1]; replicated output.
    assert tiles == [[1, 4], [4], [1, 4], [1, 4], [4, 1]]


def test_without_a_tpu_the_error_points_to_the_dtensor_engine():
    with pytest.raises(RuntimeError, match=r"No TPU found.*tf_mp\.Mesh"):
        tpu.tpu_strategy(model_parallelism=2)


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.0, TypeError)])
def test_model_parallelism_is_checked(value, error):
    with pytest.raises(error, match="model_parallelism"):
        tpu.tpu_strategy(model_parallelism=value)
