"""`tf-mp train --preset DIR` on a saved preset of a family other than BERT:
the classifier is split by `tf_mp.models.partition` on the mesh, trains, and
saves a preset that reloads as its keras-hub class."""

import json

import keras
import keras_hub
import numpy as np

from tf_mp.cli.commands import main

WORDS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _roberta_preset(path, seq_len):
    """A tiny RoBERTa classifier with a byte-pair tokenizer, saved as keras-hub
    saves any preset (what its converters write from a Hugging Face directory)."""
    vocabulary = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for token in [*WORDS, "Ġ", *("Ġ" + c for c in WORDS), "te", "Ġt"]:
        vocabulary[token] = len(vocabulary)
    tokenizer = keras_hub.models.RobertaTokenizer(
        vocabulary=vocabulary, merges=["t e", "Ġ t"]
    )
    keras.utils.set_random_seed(4)
    backbone = keras_hub.models.RobertaBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=seq_len,
        dropout=0.0,
    )
    preprocessor = keras_hub.models.RobertaTextClassifierPreprocessor(
        tokenizer, sequence_length=seq_len
    )
    classifier = keras_hub.models.RobertaTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )
    classifier.save_to_preset(str(path))
    return classifier


def test_train_splits_and_saves_a_roberta_preset(tmp_path, capsys):
    preset = tmp_path / "roberta"
    original = _roberta_preset(preset, seq_len=16)
    data = tmp_path / "data.tsv"
    data.write_text(
        "sentence\tlabel\n"
        + "".join(f"text {i} {'a b' if i % 2 else 'c d'}\t{i % 2}\n" for i in range(40))
    )
    output = tmp_path / "out"
    argv = ["train", "--preset", str(preset), "--data", str(data)]
    argv += ["--mesh", "batch=2,model=2", "--seq-len", "16", "--batch-size", "8"]
    argv += ["--epochs", "1", "--output", str(output), "--no-tensorboard"]
    assert main(argv) == 0, capsys.readouterr().err
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["parameters"] == original.count_params()
    assert metrics["mesh"] == "batch=2,model=2"

    reloaded = keras_hub.models.TextClassifier.from_preset(str(output / "model"))
    assert isinstance(reloaded, keras_hub.models.RobertaTextClassifier)
    # Trained: the weights moved from the preset's.
    before, after = original.backbone.get_weights(), reloaded.backbone.get_weights()
    assert len(before) == len(after)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
