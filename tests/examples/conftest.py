"""A tiny saved BERT preset and GLUE-format TSV files for the examples' tests."""

import keras_hub
import pytest

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "a great bad movie film the was is not good awful fun boring".split()
)


@pytest.fixture
def tiny_preset(tmp_path):
    directory = tmp_path / "preset"
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
    return directory


def _glue_tsv(path, rows):
    lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def sst2_dir(tmp_path):
    directory = tmp_path / "sst2"
    directory.mkdir()
    reviews = [("a great fun film", 1), ("a bad boring movie", 0)] * 16
    _glue_tsv(directory / "train.tsv", reviews)
    _glue_tsv(directory / "dev.tsv", reviews[:8])
    return directory
