import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_mp  # noqa: E402

NUM_VIRTUAL_DEVICES = 8


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="Also run tests marked `slow` (real data, pretrained checkpoints).",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or os.environ.get("TF_MP_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or TF_MP_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def virtual_devices():
    """Splits the CPU into 8 logical devices once per test session."""
    try:
        return tf_mp.configure_virtual_devices(NUM_VIRTUAL_DEVICES)
    except RuntimeError:
        # TensorFlow started earlier with another count; tests needing more
        # devices than exist are skipped by `make_mesh`.
        return tf.config.list_logical_devices("CPU")


@pytest.fixture(scope="session")
def minilm_path():
    """The pretrained all-MiniLM-L6-v2 (BERT) checkpoint from ../shared, for
    slow tests; skips when it cannot be fetched."""
    script = os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "scripts", "fetch_minilm.sh"
    )
    try:
        return subprocess.check_output(["bash", script], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the MiniLM checkpoint is unavailable: {error}")


@pytest.fixture
def make_mesh(virtual_devices):
    """`make_mesh((batch, model))` -> a `tf_mp.Mesh`, or skip if too few devices."""

    def make(shape, axis_names=("batch", "model")):
        needed = 1
        for size in shape:
            needed *= size
        if needed > len(virtual_devices):
            pytest.skip(
                f"needs {needed} devices, only {len(virtual_devices)} logical CPU "
                "devices exist (TensorFlow was initialised before the conftest could "
                "split the CPU)"
            )
        return tf_mp.Mesh(dict(zip(axis_names, shape)))

    return make
