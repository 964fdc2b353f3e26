"""Distillation on SST-2: tf_mp.Distiller vs labels alone vs keras.distillation.

Teacher: the pretrained all-MiniLM-L6-v2 fine-tuned as a 2-class
`BertTextClassifier` on the first `--rows` SST-2 training rows (cached). Two
students: (a) teacher blocks [0, 2, 4] copied (DistilBERT-style) and (b)
teacher blocks `--narrow-layers` sliced to `--narrow-heads` heads and
`--narrow-ff` feed-forward units (<= 25% of the teacher's encoder parameters;
the default is the shape and settings `bench_search.py` found). Each student
trains from the same initial weights for the same number of optimizer steps
(`--epochs` x rows / batch) with the same learning-rate schedule (linear decay
to 0 by default), temperature and alpha, three ways, in one run:

* labels alone (cross-entropy on the labelled rows);
* `keras.distillation.Distiller` with `LogitsDistillation(temperature=T)` and
  `student_loss_weight=alpha`, as a Keras user would write it;
* `tf_mp.Distiller` (logits, plus hidden states with `--hidden-weight`) fed by
  a `TeacherCache` over the labelled rows plus `--transfer` further training
  rows (of at least `--transfer-min-words` words) used without their labels
  (sample weight 0 in the student loss; the labelled rows weigh pool /
  labelled, so the labels loss stays a mean over labelled rows).

With `--seeds 0,1,2` every student is trained once per seed (its random state
and data order; the teacher is fixed) and the accuracies are averaged.

Prints one JSON line: dev accuracies (mean, and per seed), their ratio to the
teacher's, accuracy on `--held-out` training rows no model trains on (the last
rows of the split; the recipe was chosen on them, not on dev) and on those of
them with at least 10 words (sentence-like, as dev's), encoder parameters as a
fraction of the teacher's, inference examples/second (batch 32) next to the
teacher's, and the epoch-time ratio of cached tf_mp distillation to labels
alone (second epochs, per seed).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


METHODS = ("labels", "keras_distiller", "tf_mp_distiller")
# Held-out rows of this many words or more are reported apart: sentence-like,
# as dev's are (SST-2 dev: median 19 words; training rows: median 7, phrases).
SENTENCE = 10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="Teacher checkpoint (default: MiniLM).")
    parser.add_argument("--rows", type=int, default=4096, help="Labelled rows.")
    parser.add_argument("--transfer", type=int, default=8192, help="Unlabelled rows.")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--held-out", type=int, default=2048, help="Last train rows.")
    parser.add_argument(
        "--schedule",
        choices=("linear", "constant"),
        default="linear",
        help="Learning rate: linear decay to 0 over the run, or constant.",
    )
    parser.add_argument(
        "--seeds",
        default="0",
        help="Comma-separated seeds, e.g. 0,1,2: each sets the students' random "
        "state and data order (the teacher is fixed); accuracies are averaged.",
    )
    parser.add_argument(
        "--transfer-min-words",
        type=int,
        default=0,
        help="Take as transfer rows only training rows of at least N words, "
        "e.g. 10: sentence-like, as dev's (0: the rows after the labelled ones, "
        "as they come).",
    )
    parser.add_argument("--hidden-weight", type=float, default=0.0)
    parser.add_argument("--temperature", type=float, default=2.0, help="(a)")
    parser.add_argument("--alpha", type=float, default=0.5, help="(a)")
    parser.add_argument("--lr-copied", type=float, default=1e-4, help="(a)")
    parser.add_argument("--narrow-layers", default="0,3", help="(b) teacher blocks")
    parser.add_argument("--narrow-heads", type=int, default=12)
    parser.add_argument("--narrow-ff", type=int, default=384)
    parser.add_argument("--narrow-temperature", type=float, default=4.0)
    parser.add_argument("--narrow-alpha", type=float, default=0.3)
    parser.add_argument("--lr-narrow", type=float, default=3e-4)
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    return parser.parse_args()


class EpochTimes:
    """A Keras callback recording each epoch's wall time."""

    def __new__(cls):
        import keras

        class _EpochTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _EpochTimes()


def main():
    args = parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    import sst2_teacher as sst2

    preset = args.preset or sst2.minilm_path()
    import keras
    import numpy as np

    import tf_mp
    from tf_mp import distillation
    from tf_mp.utils.classifiers import accuracy

    train_sentences, train_labels = sst2.read_tsv("train")
    held_start = len(train_labels) - args.held_out
    sentences, labels = train_sentences[: args.rows], train_labels[: args.rows]
    extra = [
        text
        for text in train_sentences[args.rows : max(args.rows, held_start)]
        if len(text.split()) >= args.transfer_min_words
    ][: args.transfer]
    if len(extra) < args.transfer or len(labels) < args.rows:
        raise ValueError(
            f"--transfer {args.transfer}: the {len(train_labels)} training rows "
            f"hold only {len(extra)} rows of at least --transfer-min-words "
            f"{args.transfer_min_words} words between the --rows {args.rows} "
            f"labelled rows and the --held-out {args.held_out} last ones"
        )
    held_sentences = train_sentences[held_start:]
    held_labels = train_labels[held_start:]
    dev_sentences, dev_labels = sst2.read_tsv("dev")
    x = sst2.tokenize(preset, sentences, args.seq_len)
    x_extra = sst2.tokenize(preset, extra, args.seq_len)
    y = np.asarray(labels, "int32")
    long_rows = [i for i, t in enumerate(held_sentences) if len(t.split()) >= SENTENCE]
    x_held = sst2.tokenize(preset, held_sentences, args.seq_len)
    y_held = np.asarray(held_labels, "int32")
    eval_sets = {
        "dev": (
            sst2.tokenize(preset, dev_sentences, args.seq_len),
            np.asarray(dev_labels, "int32"),
        ),
        "held_out": (x_held, y_held),
        "held_out_sentences": (
            {k: v[long_rows] for k, v in x_held.items()},
            y_held[long_rows],
        ),
    }

    def accuracies(model):
        return {name: accuracy(model, xs, ys) for name, (xs, ys) in eval_sets.items()}

    teacher, finetune_s = sst2.fine_tuned_teacher(
        preset, x, y, args.seq_len, lr=args.teacher_lr
    )
    teacher_acc = accuracies(teacher)
    teacher_params = distillation.encoder_parameters(teacher)
    steps = args.rows // args.batch_size
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics = ["sparse_categorical_accuracy"]

    def optimizer(lr):
        if args.schedule == "linear":
            lr = keras.optimizers.schedules.PolynomialDecay(
                lr, decay_steps=steps * args.epochs, end_learning_rate=0.0
            )
        return keras.optimizers.Adam(lr)

    narrow_layers = [int(b) for b in args.narrow_layers.split(",")]
    students = {
        "a_copied_blocks_0_2_4": (
            dict(layers=[0, 2, 4]),
            dict(lr=args.lr_copied, temperature=args.temperature, alpha=args.alpha),
        ),
        "b_narrow": (
            dict(
                layers=narrow_layers,
                num_heads=args.narrow_heads,
                intermediate_dim=args.narrow_ff,
            ),
            dict(
                lr=args.lr_narrow,
                temperature=args.narrow_temperature,
                alpha=args.narrow_alpha,
            ),
        ),
    }
    # One cache for both students: the teacher blocks either one reads.
    blocks = set()
    for recipe, _ in students.values():
        probe = tf_mp.Distiller(
            teacher,
            distillation.student_from_teacher(teacher, **recipe),
            hidden_weight=args.hidden_weight,
        )
        blocks.update(probe.teacher_blocks_needed[0])
    cache = distillation.TeacherCache(teacher, hidden_blocks=sorted(blocks))
    pool_x = {k: np.concatenate([x[k], x_extra[k]]) for k in x}
    pool_y = np.concatenate([y, np.zeros(len(extra), "int32")])
    # Labelled rows weigh pool / labelled: the labels loss is their mean.
    labelled_weight = len(pool_y) / len(y)
    pool_w = np.concatenate(
        [np.full(len(y), labelled_weight), np.zeros(len(extra))]
    ).astype("float32")
    start = time.perf_counter()
    cached = cache.attach(sst2.dataset(pool_x, pool_y, 256, sample_weight=pool_w))
    cache_s = time.perf_counter() - start

    def train(method, recipe, settings, seed):
        """`(trained student, epoch seconds)` for one method and seed."""
        keras.utils.set_random_seed(seed)
        student = distillation.student_from_teacher(teacher, **recipe)
        times = EpochTimes()
        model = sst2.trainable(
            method,
            teacher,
            student,
            settings["temperature"],
            settings["alpha"],
            args.hidden_weight,
        )
        if method == "tf_mp_distiller":
            data = cached.shuffle(len(pool_y), seed=2 + seed).repeat()
            data = data.batch(args.batch_size).prefetch(2)
            kwargs = {"steps_per_epoch": steps}
        else:  # Both baselines read the labelled rows only.
            data = sst2.dataset(x, y, args.batch_size, shuffle_seed=1 + seed)
            kwargs = {}
        model.compile(optimizer(settings["lr"]), loss, metrics=metrics)
        model.fit(data, epochs=args.epochs, callbacks=[times], verbose=2, **kwargs)
        return student, [round(s, 1) for s in times.seconds]

    results = {}
    for name, (recipe, settings) in students.items():
        row = {}
        for method in METHODS:
            runs = [train(method, recipe, settings, seed) for seed in seeds]
            scores = [accuracies(student) for student, _ in runs]
            per_seed = {k: [round(sc[k], 4) for sc in scores] for k in eval_sets}
            mean = {k: float(np.mean(v)) for k, v in per_seed.items()}
            row[method] = {
                "dev_accuracy": round(mean["dev"], 4),
                "fraction_of_teacher": round(mean["dev"] / teacher_acc["dev"], 4),
                "held_out_accuracy": round(mean["held_out"], 4),
                "held_out_fraction_of_teacher": round(
                    mean["held_out"] / teacher_acc["held_out"], 4
                ),
                "held_out_sentences_accuracy": round(mean["held_out_sentences"], 4),
                "per_seed": per_seed,
                "epoch_s": [times for _, times in runs],
            }
            if method == "tf_mp_distiller":
                trained = runs[-1][0]
        row["settings"] = {"layers": recipe["layers"], **settings}
        row["encoder_params_fraction"] = round(
            distillation.encoder_parameters(trained) / teacher_params, 4
        )
        speed = sst2.examples_per_second(
            {"teacher": teacher, "student": trained}, eval_sets["dev"][0]
        )
        row["inference_examples_per_s"] = {k: round(v, 1) for k, v in speed.items()}
        row["speedup_vs_teacher"] = round(speed["student"] / speed["teacher"], 2)
        row["cached_epoch_vs_labels_epoch"] = [
            round(cached_s[-1] / labels_s[-1], 3)
            for cached_s, labels_s in zip(
                row["tf_mp_distiller"]["epoch_s"], row["labels"]["epoch_s"]
            )
        ]
        results[name] = row

    print(
        json.dumps(
            {
                "benchmark": "bench_distill",
                "rows": args.rows,
                "transfer_rows": args.transfer,
                "held_out_rows": args.held_out,
                "schedule": args.schedule,
                "seeds": seeds,
                "transfer_min_words": args.transfer_min_words,
                "held_out_sentence_rows": len(long_rows),
                "seq_len": args.seq_len,
                "steps": steps * args.epochs,
                "labelled_weight": labelled_weight,
                "hidden_weight": args.hidden_weight,
                "teacher_lr": args.teacher_lr,
                "teacher_dev_accuracy": round(teacher_acc["dev"], 4),
                "teacher_held_out_accuracy": round(teacher_acc["held_out"], 4),
                "teacher_held_out_sentences_accuracy": round(
                    teacher_acc["held_out_sentences"], 4
                ),
                "teacher_finetune_s": round(finetune_s, 1),
                "teacher_cache_s": round(cache_s, 1),
                "students": results,
            }
        )
    )


if __name__ == "__main__":
    main()
