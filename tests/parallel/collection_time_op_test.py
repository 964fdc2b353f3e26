"""The session's 8 logical CPUs survive a test module that runs a TensorFlow
op while it is collected (the conftest splits the CPU before collection)."""

import tensorflow as tf

COLLECTED = tf.constant(1.0)  # Runs when pytest imports this module.


def test_a_collection_time_op_leaves_the_session_its_eight_devices():
    assert len(tf.config.list_logical_devices("CPU")) == 8
    assert float(COLLECTED) == 1.0
