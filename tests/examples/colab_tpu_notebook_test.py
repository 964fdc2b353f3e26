"""The Colab notebook: its install cell pins the matching TensorFlow pair, and its
code cells run end to end on CPU with a tiny preset (the shell lines aside)."""

import json
import pathlib

import keras

import tf_mp
from tests.examples import checks
from tests.examples.conftest import VOCAB

NOTEBOOK = pathlib.Path(__file__).parents[2] / "examples" / "colab_tpu.ipynb"


def _cells(kind):
    notebook = json.loads(NOTEBOOK.read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == kind]


def test_first_cell_installs_tf_mp_and_the_matching_tensorflow_tpu():
    first = "".join(_cells("code")[0]["source"])
    version = tf_mp.tpu.TENSORFLOW_TPU_VERSION
    assert '[tpu]"' in first  # tf_mp's extra: tensorflow==2.20.* + tensorflow-tpu
    assert f'"tensorflow-tpu=={version}.*"' in first
    # tensorflow-tpu is installed last, so its TPU kernels are the ones on disk.
    assert first.rstrip().splitlines()[-1].count("tensorflow-tpu") == 1


def test_notebook_runs_on_a_cpu_mesh(tiny_preset, sst2_dir, capsys, virtual_devices):
    cells = _cells("code")
    parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1
    overrides = (
        f"PRESET = {str(tiny_preset)!r}\nDATA_DIR = {str(sst2_dir)!r}\n"
        "STEPS = 4\nEPOCHS = 3\nBATCH_SIZE = 8\nSEQ_LEN = 8\nLEARNING_RATE = 5e-2\n"
    )
    namespace = {}
    keras.utils.set_random_seed(0)
    for cell in cells:
        source = "".join(
            line for line in cell["source"] if not line.lstrip().startswith(("!", "%"))
        )
        exec(compile(source, f"{NOTEBOOK.name}[{cell['id']}]", "exec"), namespace)
        if cell is parameters[0]:
            exec(overrides, namespace)
    output = capsys.readouterr().out
    assert "ModelParallel - 4 replica(s)" in output  # 8 CPUs: batch=4 x model=2
    history = namespace["history"]
    assert len(history.history["loss"]) == 3
    assert f"loss: {history.history['loss'][-1]:.4f}" in output
    checks.assert_trained_sharded_and_equivalent(
        namespace["classifier"], history, vocabulary_size=len(VOCAB), seq_len=8
    )
