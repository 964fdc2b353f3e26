import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tf_mp  # noqa: E402

NUM_VIRTUAL_DEVICES = 8


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="Also run tests marked `slow` (real data, pretrained checkpoints).",
    )


def _runs_slow(config):
    return config.getoption("--run-slow") or os.environ.get("TF_MP_RUN_SLOW") == "1"


@pytest.fixture(scope="session")
def runs_slow(request):
    """Whether this session runs the `slow` tests (for a fixture that does the
    work of several tests at once)."""
    return _runs_slow(request.config)


def pytest_collection_modifyitems(config, items):
    if _runs_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or TF_MP_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    """Splits the CPU into 8 logical devices before collection, so that a
    test module which runs a TensorFlow op while it is collected cannot leave
    the session with one device (the mesh tests would then skip)."""
    try:
        tf_mp.configure_virtual_devices(NUM_VIRTUAL_DEVICES)
        import tensorflow as tf

        config.tf_mp_devices = tf.config.list_logical_devices("CPU")
    except RuntimeError as error:
        raise pytest.UsageError(
            f"The tests need {NUM_VIRTUAL_DEVICES} logical CPU devices: {error}"
        ) from error


@pytest.fixture(scope="session")
def virtual_devices(pytestconfig):
    """The 8 logical CPU devices split when the session started."""
    return pytestconfig.tf_mp_devices


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
                f"needs {needed} devices, the session has {len(virtual_devices)}"
            )
        return tf_mp.Mesh(dict(zip(axis_names, shape)))

    return make


@pytest.fixture
def bridge():
    """Keras's `keras.distribution` on TensorFlow (`enable_keras_distribution`),
    no Keras distribution set; both undone afterwards."""
    import keras

    tf_mp.enable_keras_distribution()
    try:
        yield
    finally:
        keras.distribution.set_distribution(None)
        tf_mp.disable_keras_distribution()


@pytest.fixture(scope="session")
def tiny_gemma_preset(tmp_path_factory):
    """A tiny random Gemma causal LM preset directory (`tests/models/
    tiny_presets.py`)."""
    from tests.models.tiny_presets import save_tiny_gemma_preset

    return save_tiny_gemma_preset(str(tmp_path_factory.mktemp("gemma_preset")))
