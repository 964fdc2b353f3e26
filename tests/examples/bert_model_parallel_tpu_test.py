"""Runs the seed example's whole code path on CPU with a tiny BERT preset."""

import importlib.util
import math
import pathlib

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "bert_model_parallel_tpu.py"


def test_example_falls_back_to_a_mesh_and_trains(
    tiny_preset, sst2_dir, capsys, virtual_devices
):
    spec = importlib.util.spec_from_file_location("seed_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    history = example.main(
        [
            "--preset", str(tiny_preset),
            "--data-dir", str(sst2_dir),
            "--steps", "3",
            "--batch-size", "8",
            "--seq-len", "8",
            "--learning-rate", "1e-3",
            "--virtual-devices", str(len(virtual_devices)),
        ]
    )  # fmt: skip
    output = capsys.readouterr().out
    assert "No TPU found: falling back to a DTensor mesh" in output
    assert "batch" in output and "model" in output
    assert len(history.history["loss"]) == 1
    assert math.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["val_sparse_categorical_accuracy"][0] <= 1.0
