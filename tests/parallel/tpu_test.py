"""The TPUStrategy engine's pure parts, and its annotations in a real traced graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.compiler.xla import xla_data_pb2

import tf_mp
from tf_mp.parallel import tpu


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


def _annotations(layer_fn, input_shape):
    """(annotated tensor's shape, tile assignment) of each XlaSharding op."""
    function = tf.function(layer_fn).get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32)
    )
    found = []
    for op in function.graph.get_operations():
        if op.type == "XlaSharding":
            sharding = xla_data_pb2.OpSharding()
            sharding.ParseFromString(op.get_attr("_XlaSharding"))
            found.append(
                (tuple(op.inputs[0].shape), list(sharding.tile_assignment_dimensions))
            )
    return found


def _sharding_tiles(layer_fn, input_shape):
    return [tiles for _, tiles in _annotations(layer_fn, input_shape)]


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


def test_encoder_block_emits_megatron_annotations_and_keeps_its_math():
    keras.utils.set_random_seed(0)
    block = tf_mp.layers.ParallelTransformerEncoder(32, 4, dropout=0.0)
    x = np.random.default_rng(0).normal(size=(2, 8, 16)).astype("float32")
    expected = block(x)
    with tpu.logical_device_annotations(4):
        found = _annotations(block, (2, 8, 16))
        # XLA (CPU, one device) compiles the annotated graph to the same math.
        compiled = tf.function(block, jit_compile=True)(x)
    heads = ((2, 8, 4, 4), [1, 1, 4, 1])  # (batch, seq, heads, head_dim)
    assert found == [
        heads,  # query
        heads,  # key
        heads,  # value
        heads,  # attention context, before the row-parallel output projection
        ((16, 32), [1, 4]),  # feed-forward intermediate kernel, column-split
        ((32,), [4]),  # its bias
        ((2, 8, 32), [1, 1, 4]),  # intermediate activations, split
        ((2, 8, 32), [1, 1, 4]),  # ... as the row-parallel layer's input
        ((32, 16), [4, 1]),  # feed-forward output kernel, row-split
    ]
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-6)


def test_without_a_tpu_the_error_points_to_the_dtensor_engine():
    with pytest.raises(RuntimeError, match=r"No TPU found.*tf_mp\.Mesh"):
        tpu.tpu_strategy(model_parallelism=2)


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.0, TypeError)])
def test_model_parallelism_is_checked(value, error):
    with pytest.raises(error, match="model_parallelism"):
        tpu.tpu_strategy(model_parallelism=value)


def _topology(mesh_shape):
    """A `tf.tpu.experimental.Topology` as `initialize_tpu_system` returns it
    for one host with the chips of `mesh_shape` ([x, y, z, cores per chip])."""
    import itertools

    from tensorflow.python.tpu.topology import Topology

    coordinates = list(itertools.product(*(range(n) for n in mesh_shape)))
    return Topology(mesh_shape=mesh_shape, device_coordinates=np.array([coordinates]))


def test_on_one_core_model_parallelism_falls_back_to_1():
    # Colab's free TPU since 2025: one v5e chip, one core.
    with pytest.warns(UserWarning, match="model_parallelism=2 does not fit the 1 TPU"):
        assignment = tpu.device_assignment(_topology([1, 1, 1, 1]), 2)
    assert (assignment.num_replicas, assignment.num_cores_per_replica) == (1, 1)
    with pytest.raises(ValueError, match=r"model_parallelism=2 \(with fallback=False"):
        tpu.device_assignment(_topology([1, 1, 1, 1]), 2, fallback=False)


@pytest.mark.parametrize(
    "mesh_shape, model_parallelism, replicas",
    [
        ([2, 4, 1, 1], 4, 2),  # 8 single-core chips (v5e-8 style): 2 x 2 chips
        ([2, 4, 1, 1], 8, 1),
        ([2, 4, 1, 1], 2, 4),
        ([2, 2, 1, 2], 2, 4),  # v2-8 / v3-8: 4 chips of 2 cores, a chip each
        ([2, 2, 1, 2], 8, 1),
    ],
)
def test_replicas_take_neighbouring_cores(mesh_shape, model_parallelism, replicas):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Fits: no fallback.
        assignment = tpu.device_assignment(_topology(mesh_shape), model_parallelism)
    assert assignment.num_replicas == replicas
    assert assignment.num_cores_per_replica == model_parallelism


def test_a_count_that_does_not_divide_the_cores_falls_back():
    with pytest.warns(UserWarning, match="using model_parallelism=2"):
        assignment = tpu.device_assignment(_topology([2, 4, 1, 1]), 3)
    assert assignment.num_cores_per_replica == 2
