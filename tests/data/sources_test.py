"""`tf_mp.data.load`: TFDS (through `tfds.testing.mock_data`), files, lists,
the shipped corpus, and every bad input a user can give."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tf_mp import data


@pytest.mark.parametrize(
    "name, split",
    [("glue/sst2", "train"), ("glue/sst2", "validation"), ("imdb_reviews", "test")],
)
def test_tfds_text_classification_datasets(name, split, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        loaded = data.load(name, split, data_dir=str(tmp_path))
    assert len(loaded) == 12 and loaded.num_classes == 2
    assert all(isinstance(t, str) for t in loaded.texts)
    assert loaded.labels.dtype == np.int32 and set(loaded.labels) <= {0, 1}
    assert (loaded.source, loaded.split) == (name, split)


def test_tfds_columns_limit_and_unknown_names():
    with tfds.testing.mock_data(num_examples=10):
        assert len(data.load("glue/sst2", limit=4)) == 4
        with pytest.raises(ValueError, match="Unknown column: text_column='review'"):
            data.load("glue/sst2", text_column="review")
        with pytest.raises(ValueError, match="Unknown dataset 'no_such_dataset'"):
            data.load("no_such_dataset")


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_and_csv_files(tmp_path):
    tsv = _write(tmp_path / "a.tsv", "sentence\tlabel\ngood film\t1\nbad, sad\t0\n")
    csv = _write(tmp_path / "b.csv", 'text,label\n"good, truly",1\nbad,0\nok,2\n')
    from_tsv = data.load(tsv)
    assert from_tsv.texts == ["good film", "bad, sad"]
    np.testing.assert_array_equal(from_tsv.labels, [1, 0])
    from_csv = data.load(csv)
    assert from_csv.texts == ["good, truly", "bad", "ok"] and from_csv.num_classes == 3


def test_glue_directory_and_embedded_corpus(tmp_path):
    _write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\n")
    _write(tmp_path / "dev.tsv", "sentence\tlabel\nc\t1\n")
    assert data.load(str(tmp_path), "validation").texts == ["c"]
    train = data.load(data.EMBEDDED)
    dev = data.load(data.EMBEDDED, "validation")
    assert (len(train), len(dev), train.num_classes) == (640, 160, 2)
    assert not set(train.texts) & set(dev.texts)


def test_lists():
    loaded = data.load((["x", "y", "z"], [0, 1, 1]))
    assert loaded.num_classes == 2 and loaded.source == "lists"


@pytest.mark.parametrize(
    "content, kwargs, match",
    [
        ("sentence\tlabel\n", {}, "The dataset is empty"),
        ("sentence\tlabel\ngood\tyes\n", {}, "line 2: label 'yes' .* not an integer"),
        (
            "sentence\tlabel\ngood\t3\n",
            {"num_classes": 2},
            r"Label 3 is out of range \[0, 2\)",
        ),
        ("sentence\tlabel\ngood\t-1\n", {}, r"Label -1 is out of range"),
        ("words\tlabel\ngood\t1\n", {}, "No text column .* name it with text_column"),
        (
            "sentence\tlabel\ngood\t1\n",
            {"label_column": "y"},
            "Unknown column: label_column='y'",
        ),
    ],
)
def test_bad_files(tmp_path, content, kwargs, match):
    path = _write(tmp_path / "data.tsv", content)
    with pytest.raises(ValueError, match=match):
        data.load(path, **kwargs)


def test_missing_file_and_bad_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such data file"):
        data.load(str(tmp_path / "missing.tsv"))
    with pytest.raises(ValueError, match="`source` must be"):
        data.load(42)
    with pytest.raises(ValueError, match="`split` must be one of"):
        data.load(data.EMBEDDED, "test")


@pytest.mark.slow
def test_real_sst2_files():
    directory = os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "data", "sst2"
    )
    if not os.path.isdir(directory):
        pytest.skip("../shared/data/sst2 is not available")
    dev = data.load(directory, "validation")
    assert len(dev) == 872 and dev.num_classes == 2
    train = data.load(os.path.join(directory, "train.tsv"), limit=1000)
    assert len(train) == 1000
