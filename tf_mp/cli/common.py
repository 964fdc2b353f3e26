"""Pieces the `tf-mp` commands share: devices and meshes, data, models, outputs."""

import dataclasses
import os
import sys

import tf_mp
from tf_mp.utils import pairs
from tf_mp.utils.checks import check_number

TINY = "tiny"
TINY_CONFIG = dict(num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128)
LARGE_INPUT = 10_000  # Texts from which tokenising shows its progress.


class UsageError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


def add_data_arguments(parser):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        required=True,
        help="TFDS name (glue/sst2, imdb_reviews, ...), a .tsv/.csv file or a "
        "directory with train.tsv/dev.tsv (GLUE layout), or tf_mp/sentiment "
        "(the corpus shipped with tf_mp).",
    )
    group.add_argument(
        "--validation-data",
        help="Validation source (default: "
        "the dataset's validation split, else 10%% held out).",
    )
    group.add_argument("--data-dir", help="TFDS data directory.")
    group.add_argument("--text-column", help="Text column / feature name.")
    group.add_argument("--label-column", help="Label column / feature name.")
    group.add_argument("--limit", type=int, help="Use the first N training rows.")
    group.add_argument("--seq-len", type=int, default=128, help="Tokens per example.")
    group.add_argument("--batch-size", type=int, default=32)


def add_device_arguments(parser, default_mesh=None):
    parser.add_argument(
        "--mesh",
        default=default_mesh,
        help="Device mesh as axis=size pairs, e.g. batch=2,model=4 (default: "
        "one device); `train` also takes 'auto' (planned by tf_mp.plan).",
    )
    add_virtual_devices_argument(parser)


def add_virtual_devices_argument(parser):
    parser.add_argument(
        "--virtual-devices",
        type=int,
        help="Split the CPU into N logical devices first (CPU-only machines).",
    )


def setup_devices(args):
    """Virtual devices (before TensorFlow starts), then the mesh's distribution."""

    if args.virtual_devices is not None:
        positive("--virtual-devices", args.virtual_devices)
        try:
            # Not `configure_virtual_devices`, which lists the devices and so
            # starts TensorFlow: `initialize` below must come first.
            from tf_mp.parallel import devices

            devices.configure_virtual_devices(args.virtual_devices)
        except RuntimeError as error:
            raise UsageError(f"--virtual-devices: {error}") from None
    # Under `tf-mp launch` (Keras's KERAS_DISTRIBUTION_* variables), join the
    # other processes; alone, this changes nothing.
    try:
        tf_mp.initialize()
    except RuntimeError as error:
        raise UsageError(str(error)) from None
    if not getattr(args, "mesh", None):
        return None
    shape = parse_pairs(args.mesh)
    try:
        mesh = tf_mp.Mesh(shape)
    except ValueError as error:
        raise UsageError(
            f"--mesh {args.mesh} does not fit the devices: {error}"
        ) from None
    if "model" in shape:
        layout_map = tf_mp.bert_layout_map(mesh)
    else:
        layout_map = tf_mp.LayoutMap(mesh)
    return tf_mp.ModelParallel(mesh, layout_map, batch_axis=next(iter(shape)))


def parse_pairs(text, flag="--mesh"):
    """`"batch=2,model=4"` -> `{"batch": 2, "model": 4}`, or a `UsageError`."""
    try:
        return pairs.parse_pairs(text, flag)
    except ValueError as error:
        raise UsageError(str(error)) from None


def positive(flag, value):
    """Raises a `UsageError` unless the flag's value is None or an int >= 1."""
    try:
        check_number(flag, value, integer=True, low=1, optional=True)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be >= 1. Received: {flag} {value}") from None


def check_arguments(args):
    """The checks that need no TensorFlow, run first so that a mistake costs no
    TensorFlow start-up: numbers, data files, the teacher directory."""
    for name in ("epochs", "num_classes", "trials", "limit", "seq_len", "batch_size"):
        positive(f"--{name.replace('_', '-')}", getattr(args, name, None))
    from tf_mp.data import sources  # No TensorFlow.

    if getattr(args, "data", None):
        sources.table_path(args.data, "train")
    if getattr(args, "validation_data", None):
        sources.table_path(args.validation_data, "validation")
    teacher = getattr(args, "teacher", None)
    if teacher is not None and not os.path.isdir(teacher):
        raise UsageError(f"--teacher {teacher}: no such directory")


def load_data(args, num_classes=None):
    """`(train, validation)` `TextClassificationData` for the data arguments."""

    options = dict(
        data_dir=args.data_dir,
        text_column=args.text_column,
        label_column=args.label_column,
        num_classes=num_classes,
    )
    train = tf_mp.data.load(args.data, "train", limit=args.limit, **options)
    if args.validation_data:
        validation = tf_mp.data.load(args.validation_data, "validation", **options)
    else:
        try:
            validation = tf_mp.data.load(args.data, "validation", **options)
        except (ValueError, FileNotFoundError):
            validation = None
    if validation is None or validation.texts == train.texts:
        held = max(1, len(train) // 10)
        if len(train) < 2:
            raise UsageError(f"{args.data} has too few rows to hold out validation")
        rows = len(train) - held
        validation = dataclasses.replace(
            train,
            texts=train.texts[rows:],
            labels=train.labels[rows:],
            split="validation",
        )
        train = train.take(rows)
    classes = max(train.num_classes, validation.num_classes)
    return (
        dataclasses.replace(train, num_classes=classes),
        dataclasses.replace(validation, num_classes=classes),
    )


def load_teacher(args):
    """`(teacher, preprocessor)` from `--teacher` (see `check_arguments`)."""
    return load_classifier(args.teacher, None, args.seq_len)


def load_classifier(preset, num_classes, seq_len, texts=None, distribution=None):
    """`(classifier without preprocessor, preprocessor)` from a keras-hub preset
    name or directory, or `"tiny"`: a random-init BERT with a word vocabulary
    built from `texts`."""
    import keras_hub

    if preset == TINY:
        vocabulary = tf_mp.data.word_vocabulary(texts)
        preprocessor = tf_mp.data.preprocessor(seq_len, vocabulary=vocabulary)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary),
            max_sequence_length=seq_len,
            dropout=0.0,
            **TINY_CONFIG,
        )
        model = keras_hub.models.BertTextClassifier(
            backbone, num_classes=num_classes, preprocessor=None, dropout=0.0
        )
        return tf_mp.models.move_to_mesh(model, distribution), preprocessor
    if not os.path.isdir(preset) and preset not in _known_presets():
        raise UsageError(
            f"Unknown preset {preset!r}: not a model directory, not a keras-hub "
            f"classifier or BERT preset name, and not {TINY!r}"
        )
    try:
        preprocessor = tf_mp.data.preprocessor(seq_len, preset=preset)
        extra = {"num_classes": num_classes} if num_classes else {}
        model = keras_hub.models.TextClassifier.from_preset(
            preset, preprocessor=None, **extra
        )
    except Exception as error:
        if os.path.isdir(preset) and not isinstance(
            error, (FileNotFoundError, ValueError)
        ):
            raise
        raise UsageError(
            f"Unknown preset {preset!r}: not a keras-hub preset available offline or "
            f"a model directory ({_first_line(error)})"
        ) from None
    return tf_mp.models.move_to_mesh(model, distribution), preprocessor


def _known_presets():
    import keras_hub

    return set(keras_hub.models.TextClassifier.presets) | set(
        keras_hub.models.BertBackbone.presets
    )


def encode_batches(
    preprocessor, data, batch_size, shuffle_seed=None, drop_remainder=False
):
    """`(token arrays, tf.data batches)` of `data`; a count while tokenising
    large inputs."""
    verbose = verbosity() if len(data) >= LARGE_INPUT else 0
    if verbose:
        print(f"Tokenising {len(data):,} texts ({data.source}, {data.split})")
    x = tf_mp.data.encode(preprocessor, data.texts, verbose=verbose)
    dataset = tf_mp.data.to_dataset(
        x,
        data.labels,
        batch_size,
        shuffle_seed=shuffle_seed,
        drop_remainder=drop_remainder,
    )
    return x, dataset


def save_classifier(model, preprocessor, directory):
    """Writes a keras-hub preset directory (model, tokenizer, preprocessor) that
    `keras_hub.models.TextClassifier.from_preset` and `--teacher` load, with or
    without tf_mp: a model on a mesh is saved as keras-hub's own classes."""
    from tf_mp.parallel.model_parallel import distribution_of

    if distribution_of(model) is not None:
        model = tf_mp.models.unpartition(model)
    model.preprocessor = preprocessor
    try:
        model.save_to_preset(directory)
    finally:
        model.preprocessor = None
    return directory


def add_lr_schedule_argument(parser, steps):
    parser.add_argument(
        "--lr-schedule",
        choices=["constant", "linear"],
        default="linear",
        help=f"linear (default): decay to 0 over {steps}, the measured best; "
        "constant: keep the rate.",
    )


def verbosity():
    return 1 if sys.stdout.isatty() else 2


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
