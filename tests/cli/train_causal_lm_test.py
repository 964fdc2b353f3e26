"""`tf-mp train --task causal-lm`: a causal LM preset fine-tuned on plain
text, with LoRA, on a mesh as on one device; the saved preset loads in plain
keras-hub."""

import json

import keras_hub
import numpy as np
import pytest

from tests.cli.isolated import run_cli
from tests.models.tiny_presets import SENTENCES
from tf_mp.cli.commands import main


def _train(preset, data, output, *extra):
    argv = ["train", "--task", "causal-lm", "--preset", preset, "--data", data]
    argv += ["--epochs", "2", "--batch-size", "4", "--seq-len", "16"]
    return main(argv + ["--output", str(output)] + list(extra))


def test_lora_fine_tuning_on_a_mesh_saves_a_keras_hub_preset(
    tmp_path, capsys, virtual_devices, tiny_gemma_preset
):
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(SENTENCES * 3) + "\n")
    lora = ["--lora-rank", "2", "--learning-rate", "0.05"]
    assert _train(tiny_gemma_preset, str(data), tmp_path / "one", *lora) == 0
    mesh = ["--mesh", "batch=2,model=2"]
    assert _train(tiny_gemma_preset, str(data), tmp_path / "mesh", *lora, *mesh) == 0

    tokens = np.array([[1, 5, 6, 7, 0, 0]], "int32")
    x = {"token_ids": tokens, "padding_mask": (tokens > 0).astype("int32")}
    outputs = {}
    for name in ("one", "mesh"):
        model = keras_hub.models.CausalLM.from_preset(str(tmp_path / name / "model"))
        model.preprocessor = None
        assert not model.backbone.get_layer(
            "decoder_block_0"
        ).attention.query_dense.lora_enabled
        outputs[name] = model.predict(x, verbose=0)
        with open(tmp_path / name / "metrics.json") as f:
            metrics = json.load(f)
        # LoRA only: 2 blocks x (query, value) x (A (4, 16, 2) + B (2, 4)).
        assert metrics["trainable_parameters"] == 2 * 2 * (4 * 16 * 2 + 2 * 4)
    original = keras_hub.models.CausalLM.from_preset(tiny_gemma_preset)
    original.preprocessor = None
    np.testing.assert_allclose(outputs["mesh"], outputs["one"], rtol=1e-4, atol=1e-5)
    assert np.abs(outputs["one"] - original.predict(x, verbose=0)).max() > 1e-3


@pytest.mark.parametrize(
    "data, line",
    [
        (
            "texts.tsv",
            "--task causal-lm reads a .txt file, one text per line. Received: "
            "--data texts.tsv",
        ),
        ("missing.txt", "No such data file: missing.txt"),
    ],
)
def test_bad_data_exits_2_before_tensorflow_starts(tmp_path, data, line):
    argv = ["train", "--task", "causal-lm", "--preset", "x", "--data", data]
    status, imported, err = run_cli(argv, tmp_path)
    assert status == 2, err
    assert not imported
    assert err[0] == f"tf-mp train: error: {line}"
