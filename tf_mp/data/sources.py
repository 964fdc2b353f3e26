"""Labelled text from TFDS, GLUE-layout TSV/CSV files, Python lists, or the
small corpus shipped with tf_mp."""

import csv
import dataclasses
import os

import numpy as np

CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
EMBEDDED = "tf_mp/sentiment"
_TEXT_COLUMNS = ("sentence", "text", "review", "content", "document")
_LABEL_COLUMNS = ("label", "labels", "sentiment")
_SPLIT_FILES = {"train": "train", "validation": "dev", "dev": "dev"}


@dataclasses.dataclass
class TextClassificationData:
    """Texts, integer labels in `[0, num_classes)`, and where they came from."""

    texts: list
    labels: np.ndarray
    num_classes: int
    source: str = "lists"
    split: str = "train"

    def __len__(self):
        return len(self.texts)

    def take(self, limit):
        """The first `limit` examples (all when `limit` is None)."""
        if limit is None:
            return self
        return dataclasses.replace(
            self, texts=self.texts[:limit], labels=self.labels[:limit]
        )


def load(
    source,
    split="train",
    *,
    data_dir=None,
    text_column=None,
    label_column=None,
    num_classes=None,
    limit=None,
):
    """Loads a text-classification split.

    Args:
        source: a TFDS name (`"glue/sst2"`, `"imdb_reviews"`, any dataset with a
            text and a class-label feature), a `.tsv` / `.csv` file with a header
            row (GLUE layout: `sentence<TAB>label`), a directory holding
            `train.tsv` / `dev.tsv`, `"tf_mp/sentiment"` (the corpus shipped
            with tf_mp), or a `(texts, labels)` pair of lists.
        split: `"train"`, `"validation"` (`dev.tsv` for files) or any TFDS split.
        data_dir: the TFDS data directory.
        text_column, label_column: column (feature) names. Default: the first of
            `sentence`, `text`, `review`, ... and of `label`, `labels`, ...
        num_classes: the number of classes; labels outside `[0, num_classes)`
            are an error. Defaults to the dataset's (TFDS) or `max(label) + 1`.
        limit: keep the first `limit` examples.

    Returns:
        A `TextClassificationData`.
    """
    if isinstance(source, (tuple, list)) and len(source) == 2:
        texts, labels = source
        data = _checked(list(texts), labels, num_classes, "lists", split)
    elif not isinstance(source, str) or not source:
        raise ValueError(
            "`source` must be a TFDS name, a .tsv/.csv path, a directory, "
            f"{EMBEDDED!r} or a (texts, labels) pair. Received: source={source!r}"
        )
    else:
        path = table_path(source, split)
        if path is None:
            data = _from_tfds(
                source, split, data_dir, text_column, label_column, num_classes
            )
        else:
            data = _from_table(path, text_column, label_column, num_classes, split)
            if source == EMBEDDED:
                data.source = EMBEDDED
    data = data.take(limit)
    if not len(data):
        raise ValueError(f"The dataset is empty: source={source!r}, split={split!r}")
    return data


def load_texts(source, split="train", *, data_dir=None, text_column=None, limit=None):
    """Loads texts without labels: transfer rows for distillation.

    Args:
        source: a TFDS name, a `.tsv` / `.csv` file with a header row (a
            label column, if any, is not read), a `.txt` file (one text per
            line, no header), a directory holding `train.tsv` / `dev.tsv`,
            `"tf_mp/sentiment"`, or a list of strings.
        split, data_dir, text_column, limit: as for `load`.

    Returns:
        A list of strings.
    """
    if isinstance(source, (list, tuple)):
        texts = [str(t) for t in source]
    elif not isinstance(source, str) or not source:
        raise ValueError(
            "`source` must be a TFDS name, a .tsv/.csv path, a directory, "
            f"{EMBEDDED!r} or a list of strings. Received: source={source!r}"
        )
    else:
        path = table_path(source, split)
        if path is None:
            texts = _texts_from_tfds(source, split, data_dir, text_column)
        elif path.lower().endswith(".txt"):
            with open(path, encoding="utf-8") as handle:
                texts = [line.rstrip("\n") for line in handle if line.strip()]
        else:
            texts = _texts_from_table(path, text_column)
    texts = texts[:limit] if limit is not None else texts
    if not texts:
        raise ValueError(f"No texts in source={source!r}, split={split!r}")
    return texts


def table_path(source, split="train"):
    """The TSV/CSV file `load(source, split)` reads, or None for a TFDS name.

    Raises `FileNotFoundError` for a local path that does not exist, so a
    missing file is reported without TensorFlow or TFDS being imported.
    """
    if source == EMBEDDED:
        return os.path.join(CORPUS_DIR, f"sentiment_{_split_file(split)}.tsv")
    source = os.path.expanduser(source)
    if os.path.isdir(source):
        path = os.path.join(source, f"{_split_file(split)}.tsv")
    elif source.lower().endswith((".tsv", ".csv", ".txt")) or os.path.isfile(source):
        path = source
    elif source.startswith((os.sep, ".")):
        # A path, never a TFDS name (`glue/sst2`, `imdb_reviews:1.0.0`).
        raise FileNotFoundError(f"No such data file or directory: {source}")
    else:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such data file: {path}")
    return path


def _split_file(split):
    if split not in _SPLIT_FILES:
        raise ValueError(
            f"`split` must be one of {sorted(_SPLIT_FILES)} for files. "
            f"Received: split={split!r}"
        )
    return _SPLIT_FILES[split]


def _read_table(path, pick):
    """`pick(columns)` gives the column names to read; returns their rows."""
    delimiter = "," if path.lower().endswith(".csv") else "\t"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(
                handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL
            )
            names = pick(reader.fieldnames or [])
            return names, [tuple(row[n] for n in names) for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"Cannot read {path!r} as a table: {error}") from None


def _texts_from_table(path, text_column):
    _, rows = _read_table(
        path,
        lambda columns: (
            _column("text_column", text_column, columns, _TEXT_COLUMNS, path),
        ),
    )
    return [text or "" for (text,) in rows]


def _from_table(path, text_column, label_column, num_classes, split):
    (text, label), rows = _read_table(
        path,
        lambda columns: (
            _column("text_column", text_column, columns, _TEXT_COLUMNS, path),
            _column("label_column", label_column, columns, _LABEL_COLUMNS, path),
        ),
    )
    labels = []
    for line, (_, value) in enumerate(rows, start=2):
        try:
            labels.append(int(value))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, line {line}: label {value!r} in column {label!r} is not "
                "an integer"
            ) from None
    texts = [t or "" for t, _ in rows]
    return _checked(texts, labels, num_classes, path, split)


def _column(argument, name, columns, candidates, where):
    if name is not None:
        if name not in columns:
            raise ValueError(
                f"Unknown column: {argument}={name!r}; {where} has columns {columns}"
            )
        return name
    for candidate in candidates:
        if candidate in columns:
            return candidate
    raise ValueError(
        f"No {argument.split('_')[0]} column in {where} (columns {columns}); "
        f"name it with {argument}"
    )


def _tfds_text_feature(name, data_dir, text_column):
    """`(features, text feature name)` of a TFDS dataset."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises many kinds for unknown names.
        raise ValueError(
            f"Unknown dataset {name!r}: not a file and not a TFDS dataset ({error})"
        ) from None
    features = builder.info.features
    columns = list(features.keys())
    strings = [
        k
        for k in columns
        if getattr(features[k], "dtype", None) == "string"
        or type(features[k]).__name__ == "Text"
    ]
    text = _column(
        "text_column", text_column, columns, (*_TEXT_COLUMNS, *strings), name
    )
    return features, text


def _texts_from_tfds(name, split, data_dir, text_column):
    import tensorflow_datasets as tfds

    _, text = _tfds_text_feature(name, data_dir, text_column)
    dataset = tfds.load(name, split=split, data_dir=data_dir)
    return [example[text].decode("utf-8") for example in dataset.as_numpy_iterator()]


def _from_tfds(name, split, data_dir, text_column, label_column, num_classes):
    import tensorflow_datasets as tfds

    features, text = _tfds_text_feature(name, data_dir, text_column)
    columns = list(features.keys())
    label = _column("label_column", label_column, columns, _LABEL_COLUMNS, name)
    if num_classes is None:
        num_classes = getattr(features[label], "num_classes", None)
    dataset = tfds.load(name, split=split, data_dir=data_dir)
    texts, labels = [], []
    for example in dataset.as_numpy_iterator():
        texts.append(example[text].decode("utf-8"))
        labels.append(int(example[label]))
    return _checked(texts, labels, num_classes, name, split)


def _checked(texts, labels, num_classes, source, split):
    labels = np.asarray(labels)
    if len(texts) != len(labels):
        raise ValueError(
            f"{len(texts)} texts but {len(labels)} labels in {source} ({split})"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Labels must be integers; {source} has {labels.dtype}")
    labels = labels.astype("int32")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(
            f"Label {int(bad[0])} is out of range [0, {num_classes}) in {source} "
            f"({split})"
        )
    return TextClassificationData(list(texts), labels, int(num_classes), source, split)
