"""Runs the seed example's whole code path on CPU with a tiny BERT preset."""

import importlib.util
import math
import pathlib

import keras_hub

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "bert_model_parallel_tpu.py"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "a great bad movie film the was is not good awful fun boring".split()
)


def _tiny_preset(directory):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        dropout=0.0,
    )
    backbone.save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=VOCAB).save_to_preset(str(directory))


def _glue_tsv(path, rows):
    lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
    path.write_text("\n".join(lines) + "\n")


def test_example_falls_back_to_a_mesh_and_trains(tmp_path, capsys, virtual_devices):
    _tiny_preset(tmp_path / "preset")
    data = tmp_path / "sst2"
    data.mkdir()
    reviews = [("a great fun film", 1), ("a bad boring movie", 0)] * 16
    _glue_tsv(data / "train.tsv", reviews)
    _glue_tsv(data / "dev.tsv", reviews[:8])

    spec = importlib.util.spec_from_file_location("seed_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    history = example.main(
        [
            "--preset", str(tmp_path / "preset"),
            "--data-dir", str(data),
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
