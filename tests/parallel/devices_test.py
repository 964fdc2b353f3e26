import pytest
import tensorflow as tf

import tf_mp
from tests.conftest import NUM_VIRTUAL_DEVICES


def test_configure_is_idempotent_for_the_same_count(virtual_devices):
    assert tf_mp.configure_virtual_devices(NUM_VIRTUAL_DEVICES) is None
    assert len(tf.config.list_logical_devices("CPU")) == NUM_VIRTUAL_DEVICES


def test_reconfiguring_after_start_says_how_to_fix_it(virtual_devices):
    with pytest.raises(RuntimeError, match=r"already initialised 8 logical CPU.*n=4"):
        tf_mp.configure_virtual_devices(4)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"n": 0}, ValueError),
        ({"n": "8"}, TypeError),
        ({"n": 2, "device_type": "TPU"}, ValueError),
        ({"n": 2, "device_type": "GPU"}, ValueError),  # No memory_limit.
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        tf_mp.configure_virtual_devices(**kwargs)
