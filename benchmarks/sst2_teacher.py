"""SST-2 token data and a fine-tuned all-MiniLM-L6-v2 teacher, for the benchmarks.

Reads GLUE SST-2 from `../shared/data/sst2` and the pretrained checkpoint from
`../shared/scripts/fetch_minilm.sh`. The fine-tuned teacher's weights are cached
under `~/.cache/tf_mp_bench/` keyed by its recipe, so later benchmarks reuse it.
"""

import hashlib
import json
import math
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SST2 = os.path.join(HERE, "..", "..", "shared", "data", "sst2")
CACHE = os.path.expanduser(os.environ.get("TF_MP_BENCH_CACHE", "~/.cache/tf_mp_bench"))
# How the teacher's learning rate moves over its fine-tuning.
TEACHER_SCHEDULES = ("constant", "linear")


def minilm_path():
    script = os.path.join(HERE, "..", "..", "shared", "scripts", "fetch_minilm.sh")
    return subprocess.check_output(["bash", script], text=True).strip()


def read_tsv(split, limit=None, offset=0):
    """(sentences, labels) of a GLUE TSV split, rows [offset, offset + limit)."""
    from tf_mp import data

    rows = data.load(SST2, "validation" if split == "dev" else split)
    end = offset + limit if limit else None
    return list(rows.texts[offset:end]), [
        int(label) for label in rows.labels[offset:end]
    ]


def unseen_sentences(texts, trained, min_words=3):
    """Indices of the whole sentences among `texts` that no trained phrase of
    `min_words` or more words is part of: held-out rows shaped like GLUE dev's.

    SST-2's training file holds every phrase of its sentences' parse trees,
    shuffled, so a row held out at random often sits inside a trained row or
    around one (of the bench's last 2,048 rows, 459 lie inside one of the
    first 4,096 and 304 hold one of 3+ words), and most rows are short phrases
    (median 7 words; dev's sentences, 19). A sentence here is a row no longer
    row contains (6,885 of 67,349 rows, median 19 words); it is kept when it
    is neither in `trained` (indices into `texts`) nor equal to a trained row,
    and no trained row of `min_words` or more words is a phrase of it.
    Shorter phrases ("dull", "the film") recur across sentences: of dev's 872
    sentences, 55% hold a single word that is a row among the bench's first
    12,288 training rows, 18% a two-word row and 2.9% one of three or more
    words, so the default 3 leaves dev-like sentences.
    """
    words = [" ".join(str(t).split()) for t in texts]
    rows_with = {}
    for i, text in enumerate(words):
        for word in set(text.split()):
            rows_with.setdefault(word, set()).add(i)

    def containing(i):
        """Rows other than `i` with `words[i]` as a phrase (equal rows too)."""
        if not words[i]:
            return set()
        candidates = set.intersection(*(rows_with[w] for w in set(words[i].split())))
        phrase = f" {words[i]} "
        return {k for k in candidates if k != i and phrase in f" {words[k]} "}

    trained = set(int(i) for i in trained)
    trained_words = {words[i] for i in trained}
    seen = trained.union(
        *(containing(i) for i in trained if len(words[i].split()) >= min_words)
    )
    return [
        i
        for i in range(len(words))
        if i not in seen
        and words[i]
        and words[i] not in trained_words
        and not any(len(words[k]) > len(words[i]) for k in containing(i))
    ]


def tokenize(preset, sentences, seq_len, masked=False):
    """Token dicts (numpy) for `sentences` with the preset's preprocessor
    (`masked`: "[MASK]" in a sentence is read as the one mask token)."""
    import keras_hub
    import numpy as np
    import tensorflow as tf

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        preset, sequence_length=seq_len
    )
    preprocessor.tokenizer.special_tokens_in_strings = masked
    batches = tf.data.Dataset.from_tensor_slices(sentences).batch(256).map(preprocessor)
    parts = list(batches.as_numpy_iterator())
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def dataset(x, y, batch_size, sample_weight=None, shuffle_seed=None):
    import tensorflow as tf

    columns = (x, y) if sample_weight is None else (x, y, sample_weight)
    data = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(2)


def fine_tuned_teacher(
    preset,
    x,
    y,
    seq_len,
    epochs=1,
    batch_size=32,
    lr=5e-5,
    refit=False,
    schedule="constant",
):
    """A MiniLM `BertTextClassifier` fine-tuned on (x, y); cached on disk
    (`refit`: fine-tuned again all the same, to time it in this run).
    `schedule`: `"constant"` learning rate, or `"linear"` decay to 0 over
    the fine-tuning's steps.

    Returns `(teacher, seconds spent fine-tuning or 0.0 when reloaded)`.
    """
    if schedule not in TEACHER_SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {TEACHER_SCHEDULES}. "
            f"Received: schedule={schedule!r}"
        )
    import keras
    import keras_hub
    import numpy as np

    from tf_mp.utils.classifiers import compile_arguments

    recipe = dict(
        preset=os.path.basename(preset.rstrip("/")),
        rows=len(y),
        seq_len=seq_len,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        data=hashlib.sha256(np.ascontiguousarray(x["token_ids"])).hexdigest()[:12],
    )
    if schedule != "constant":  # Keys of constant-rate teachers stay as they were.
        recipe["schedule"] = schedule
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(CACHE, f"teacher_{key}.weights.h5")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    teacher = keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None
    )
    if os.path.exists(path) and not refit:
        teacher.load_weights(path)
        return teacher, 0.0
    if schedule == "linear":
        steps = epochs * math.ceil(len(y) / batch_size)
        lr = keras.optimizers.schedules.PolynomialDecay(lr, steps, 0.0)
    teacher.compile(
        **compile_arguments(keras.optimizers.AdamW(lr), "sparse_categorical_accuracy")
    )
    start = time.perf_counter()
    teacher.fit(dataset(x, y, batch_size, shuffle_seed=0), epochs=epochs, verbose=2)
    seconds = time.perf_counter() - start
    os.makedirs(CACHE, exist_ok=True)
    teacher.save_weights(path)
    return teacher, seconds


def examples_per_second(models, x, batch_size=32, rounds=3):
    """Inference throughput of each model on `x`, interleaved, best of `rounds`."""
    best = {name: 0.0 for name in models}
    for model in models.values():
        model.predict(x, batch_size=batch_size, verbose=0)  # trace
    n = len(next(iter(x.values())))
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.predict(x, batch_size=batch_size, verbose=0)
            best[name] = max(best[name], n / (time.perf_counter() - start))
    return best


def trainable(method, teacher, student, temperature, alpha, hidden_weight=0.0):
    """The model a bench arm fits: the student itself (`"labels"`), a
    `keras.distillation.Distiller` with `LogitsDistillation` as a Keras user
    writes it (`"keras_distiller"`), or a `tf_mp.Distiller` (any other)."""
    import keras

    import tf_mp

    if method == "labels":
        return student
    if method == "keras_distiller":
        return keras.distillation.Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=temperature
            ),
            student_loss_weight=alpha,
        )
    return tf_mp.Distiller(
        teacher,
        student,
        temperature=temperature,
        alpha=alpha,
        hidden_weight=hidden_weight,
    )
