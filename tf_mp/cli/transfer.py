"""Transfer rows for `tf-mp distill` and `tf-mp tune`: unlabelled texts
(`--transfer-data`) and augmented copies of the labelled ones (`--augment`),
tokenized for the teacher."""

import tf_mp
from tf_mp.cli import common


def add_arguments(parser, augment_help):
    group = parser.add_argument_group(
        "transfer rows (unlabelled; the teacher labels them)"
    )
    group.add_argument(
        "--transfer-data",
        help="Unlabelled texts to distil on as well: a TFDS name, a .tsv/.csv "
        "file with a header (a label column is not read), a .txt file (one "
        "text per line) or a GLUE-layout directory (its train.tsv).",
    )
    group.add_argument("--transfer-text-column", help="Text column of --transfer-data.")
    group.add_argument(
        "--transfer-limit", type=int, help="Use the first N transfer texts."
    )
    group.add_argument("--augment", type=int, help=augment_help)
    group.add_argument("--augment-seed", type=int, default=0)
    group.add_argument(
        "--cache-dir",
        help="Keep the teacher's outputs on disk here, scored 4,096 rows at a "
        "time (memory then holds one chunk: for hidden states of many "
        "augmented rows); later runs on the same data reuse them.",
    )


def load_texts(args):
    """The texts of `--transfer-data` (a list, empty without it). Checks the
    options first; reads files only, so it may run before TensorFlow starts."""
    for name in ("transfer_limit", "augment"):
        common.positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if not args.transfer_data:
        return []
    try:
        return tf_mp.data.load_texts(
            args.transfer_data,
            "train",
            data_dir=args.data_dir,
            text_column=args.transfer_text_column,
            limit=args.transfer_limit,
        )
    except ValueError as error:
        message = str(error).replace("text_column=", "--transfer-text-column ")
        raise common.UsageError(
            f"--transfer-data {args.transfer_data}: {message}"
        ) from None


def augmented(args, train, tokenizer):
    """`--augment` copies of every labelled text (a list, empty without it)."""
    if not args.augment:
        return []
    return tf_mp.distillation.augment(
        train.texts,
        copies=args.augment,
        seed=args.augment_seed,
        mask_token=getattr(tokenizer, "mask_token", None) or "[MASK]",
    )


def tokenize(preprocessor, texts, masked):
    """Token arrays of `texts`; with `masked`, the tokenizer reads its mask
    token in a text as one token (keras-hub's WordPiece splits "[MASK]"
    otherwise)."""
    tokenizer = preprocessor.tokenizer
    reads_special = getattr(tokenizer, "special_tokens_in_strings", None)
    verbose = common.verbosity() if len(texts) >= common.LARGE_INPUT else 0
    if masked and reads_special is not None:
        tokenizer.special_tokens_in_strings = True
    try:
        return tf_mp.data.encode(preprocessor, texts, verbose=verbose)
    finally:
        if reads_special is not None:
            tokenizer.special_tokens_in_strings = reads_special


def transfer_rows(args, train, preprocessor, texts):
    """`{"x": token arrays, "texts": [...], "augmented": n}` of the transfer
    rows (`texts` from `--transfer-data`, then `--augment` copies), or None."""
    copies = augmented(args, train, preprocessor.tokenizer)
    texts = list(texts) + copies
    if not texts:
        return None
    x = tokenize(preprocessor, texts, masked=bool(copies))
    return {"x": x, "texts": texts, "augmented": len(copies)}


def training_set(args, x, labels, extra):
    """Batches of labelled and transfer rows (`transfer_set` weights)."""
    import tensorflow as tf

    xs, ys, weights = tf_mp.distillation.transfer_set((x, labels), extra["x"])
    data = tf.data.Dataset.from_tensor_slices((xs, ys, weights))
    if args.no_cache:  # The cache shuffles its rows itself.
        data = data.shuffle(len(ys), seed=0)
    return data.batch(args.batch_size)
