"""Distillation recipes at one cost budget: a multiple of the teacher's fine-tuning.

Teacher: all-MiniLM-L6-v2 fine-tuned on the first `--rows` SST-2 training rows
for `--teacher-epochs` (3) at AdamW `--teacher-lr` decaying linearly to 0
(`--teacher-schedule`): of the recipes tried, the one best on held-out rows. It
is timed in this run (`--budget 2`: every arm may spend twice that wall time).
Students: (a) teacher blocks [0, 2, 4] copied, (b) the narrow shape
`bench_search.py` found (blocks 0, 3; 12 heads; 384 units). Arms, each from the
same initial student per seed:

* `labels`: cross-entropy on the labelled rows;
* `keras_distiller`: `keras.distillation.Distiller` with
  `LogitsDistillation(temperature)`; its teacher runs in every step;
* `tf_mp`: `tf_mp.Distiller` on the labelled rows, the teacher scored once
  (`TeacherCache`): the recipe the Distiller's defaults gave before this bench;
* `tf_mp_transfer`: the same plus `--transfer` later training rows without
  their labels (`tf_mp.automl.TransferChoices`' stream: rows in proportion,
  labelled rows weighted so the labels loss stays their mean);
* `tf_mp_augment`: the same with `--copies` augmented copies of each labelled
  row (`tf_mp.distillation.augment`, Tang et al.'s operations) instead.

An arm's cost is its teacher scoring (rows x the per-row time of one pass over
all the rows, measured here) plus its student training. Each arm first times
`--calibration-steps` steps of a throwaway copy of its model, then trains a
fresh one (same seed) for as many steps as the rest of the budget holds. Its
learning rate decays linearly to 0 over whichever runs out first, those steps
or the budget's wall time (`Budget`), and training stops at the budget should
the estimate be short: a machine that slows after calibration still ends its
run at a rate of 0, not part-way down. Evaluation is not counted.

`--temperature`, `--alpha` and `--lr` (comma-separated) run every arm at
each combination of the values given, and `--transfer-min-words` (comma-
separated) runs `tf_mp_transfer` once per transfer set, all at the budget of
one teacher fine-tuning: a probe of settings pays for the teacher once. Seeds
are the outer loop, so a run stopped early leaves every arm compared on the
seeds it finished. `--pin-steps` plans each student's arm once and runs every
run of it for those steps: a comparison at equal steps, which a machine whose
speed drifts between runs cannot skew (costs are then reported, not capped).

Prints a JSON line per student, arm and settings once every seed has run,
then one that holds them all: dev accuracy (mean and per seed) and its
fraction of the teacher's, accuracy on the `--held-out` last training rows (no
arm trains on them: recipes are chosen there, not on dev) and on those of them
with 10 or more words (`held_out_long`: dev's sentences are longer than most
training phrases), accuracy on the whole training sentences that no labelled
or transfer row of 3+ words is part of (`held_out_sentences`, from any
training row: dev-like rows where the held-out rows, phrases often inside a
trained phrase or around one, are not), steps, cost in seconds, and the
budget. Each run's line also goes to stderr as it ends.
"""

import argparse
import itertools
import json
import os
import sys
import time
from math import inf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sst2_teacher import TEACHER_SCHEDULES  # noqa: E402

ARMS = ("labels", "keras_distiller", "tf_mp", "tf_mp_transfer", "tf_mp_augment")
GRID = ("temperature", "alpha", "lr")  # Each student's own unless given.
LONG = 10  # Words: `held_out_long` scores the held-out rows this long or longer.
STUDENTS = {
    "a": dict(recipe=dict(layers=[0, 2, 4]), lr=1e-4, temperature=2.0, alpha=0.5),
    "b": dict(
        recipe=dict(layers=[0, 3], num_heads=12, intermediate_dim=384),
        lr=3e-4,
        temperature=4.0,
        alpha=0.3,
    ),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="Teacher checkpoint (default: MiniLM).")
    parser.add_argument("--rows", type=int, default=4096, help="Labelled rows.")
    parser.add_argument("--transfer", type=int, default=8192, help="Unlabelled rows.")
    parser.add_argument(
        "--transfer-min-words",
        default="0",
        help="Transfer rows only from training rows of at least this many words "
        "(dev's sentences: median 19 words; training rows: median 7); "
        "comma-separated values, e.g. 0,10, run one transfer arm each.",
    )
    parser.add_argument("--copies", type=int, default=2, help="Augmented per row.")
    parser.add_argument("--budget", type=float, default=2.0, help="x fine-tuning.")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=2048, help="Last train rows.")
    parser.add_argument("--seeds", default="0", help="Comma-separated, e.g. 0,1,2.")
    parser.add_argument("--students", default="a,b", help="a and/or b.")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--calibration-steps", type=int, default=24)
    parser.add_argument(
        "--pin-steps",
        action="store_true",
        help="Each student's arm plans its steps once, in its first run, and "
        "every run of it (seeds, settings, transfer sets) takes all of them, "
        "not stopped at the budget: recipes compared at equal steps, not at "
        "equal wall time on a machine whose speed drifts.",
    )
    parser.add_argument(
        "--hidden-weight",
        type=float,
        default=0.0,
        help="The tf_mp arms' hidden-state term (the Distiller's default layer "
        "map); above 0 the cache keeps those teacher blocks' states (float16).",
    )
    for key in GRID:
        parser.add_argument(
            f"--{key}",
            help="Comma-separated values instead of each student's own, e.g. "
            "2,4; every combination of --temperature, --alpha and --lr runs.",
        )
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument(
        "--teacher-schedule", choices=TEACHER_SCHEDULES, default="linear"
    )
    args = parser.parse_args()

    def values(key, kind, noun):
        given = getattr(args, key)
        try:
            return [kind(v) for v in given.split(",")] if given else None
        except ValueError:
            option = "--" + key.replace("_", "-")
            parser.error(f"{option} takes comma-separated {noun}. Received: {given!r}")

    for key in GRID:
        setattr(args, key, values(key, float, "numbers"))
    args.transfer_min_words = values("transfer_min_words", int, "integers")
    return args


def settings_grid(student, args):
    """`student`'s settings once per combination of the values given with
    `--temperature`, `--alpha` and `--lr` (the student's own where not given)."""
    axes = {key: getattr(args, key) or [student[key]] for key in GRID}
    for values in itertools.product(*axes.values()):
        yield {**student, **dict(zip(axes, values))}


def variant_values(settings, words):
    """What tells a run's variant apart, which every output line carries: the
    `GRID` part of `settings`, and the transfer set's `words` where it has one."""
    values = {key: settings[key] for key in GRID}
    return values if words is None else {**values, "transfer_min_words": words}


def word_count(text):
    return len(text.split())


def main():
    args = parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    import sst2_teacher as sst2

    preset = args.preset or sst2.minilm_path()
    import keras
    import numpy as np

    import tf_mp
    from tf_mp import distillation
    from tf_mp.utils.classifiers import accuracy

    texts, labels = sst2.read_tsv("train")
    held_start = len(labels) - args.held_out
    labelled_texts = texts[: args.rows]
    unlabelled = range(args.rows, held_start)
    transfer_rows = {
        words: [i for i in unlabelled if word_count(texts[i]) >= words][: args.transfer]
        for words in args.transfer_min_words
    }
    transfer_texts = {
        words: [texts[i] for i in rows] for words, rows in transfer_rows.items()
    }
    # Whole sentences nothing of which any transfer set or the labelled rows
    # hold: the same rows for every arm, and for runs with the same options.
    trained = itertools.chain(range(args.rows), *transfer_rows.values())
    sentences = sst2.unseen_sentences(texts, trained)
    copies = distillation.augment(labelled_texts, copies=args.copies, seed=0)
    x = sst2.tokenize(preset, labelled_texts, args.seq_len)
    y = np.asarray(labels[: args.rows], "int32")
    # Only the rows a requested arm reads are tokenized and scored, keyed by
    # `(arm, transfer_min_words)` (None where the arm reads no transfer rows).
    sets = {}
    if "tf_mp_transfer" in arms:
        for words, rows in transfer_texts.items():
            sets["tf_mp_transfer", words] = sst2.tokenize(preset, rows, args.seq_len)
    if "tf_mp_augment" in arms:
        sets["tf_mp_augment", None] = sst2.tokenize(preset, copies, args.seq_len, True)
    dev_texts, dev_labels = sst2.read_tsv("dev")
    held_texts, held_labels = texts[held_start:], labels[held_start:]
    long = [i for i, text in enumerate(held_texts) if word_count(text) >= LONG]
    eval_sets = {
        "dev": (sst2.tokenize(preset, dev_texts, args.seq_len), dev_labels),
        "held_out": (sst2.tokenize(preset, held_texts, args.seq_len), held_labels),
        "held_out_long": (
            sst2.tokenize(preset, [held_texts[i] for i in long], args.seq_len),
            [held_labels[i] for i in long],
        ),
        "held_out_sentences": (
            sst2.tokenize(preset, [texts[i] for i in sentences], args.seq_len),
            [labels[i] for i in sentences],
        ),
    }
    eval_sets = {k: (v, np.asarray(w, "int32")) for k, (v, w) in eval_sets.items()}

    teacher, finetune_s = sst2.fine_tuned_teacher(
        preset,
        x,
        y,
        args.seq_len,
        epochs=args.teacher_epochs,
        lr=args.teacher_lr,
        refit=True,
        schedule=args.teacher_schedule,
    )
    budget = args.budget * finetune_s
    teacher_acc = {k: accuracy(teacher, *v) for k, v in eval_sets.items()}

    def hidden_blocks(weight):
        """The teacher blocks any requested student's hidden-state term reads."""
        if not weight:
            return []
        blocks = set()
        for name in args.students.split(","):
            student = distillation.student_from_teacher(
                teacher, **STUDENTS[name]["recipe"]
            )
            distiller = tf_mp.Distiller(teacher, student, hidden_weight=weight)
            blocks.update(distiller.teacher_blocks_needed[0])
        return sorted(blocks)

    # One pass of the teacher over every row any arm reads; each arm is
    # charged its own rows at the measured per-row time.
    cache = distillation.TeacherCache(
        teacher,
        hidden_blocks(args.hidden_weight),
        dtype="float16" if args.hidden_weight else "float32",
    )
    pool = {k: np.concatenate([x[k], *(s[k] for s in sets.values())]) for k in x}
    pool_y = np.zeros(len(pool["token_ids"]), "int32")
    pool_y[: len(y)] = y
    scored = cache.attach(sst2.dataset(pool, pool_y, 256))
    per_row_s = cache.scoring_seconds / cache.scored_rows
    teacher_line = {
        f"teacher_{k}_accuracy": round(v, 4) for k, v in teacher_acc.items()
    }
    print(json.dumps({**teacher_line, "budget_s": round(budget, 1)}), file=sys.stderr)
    parts, start = {}, 0
    for name, rows in [(("tf_mp", None), len(y))] + [
        (k, len(v["token_ids"])) for k, v in sets.items()
    ]:
        # Cached once split: each pass of a repeating stream reads memory.
        parts[name] = (scored.skip(start).take(rows).cache(), rows)
        start += rows

    def data_for(arm, words, seed):
        """`(dataset, rows the teacher scored for it)`; datasets repeat."""
        if arm in ("labels", "keras_distiller"):
            data = sst2.dataset(x, y, args.batch_size, shuffle_seed=1 + seed)
            return data.repeat(), 0
        labelled, rows = parts["tf_mp", None]
        if arm == "tf_mp":
            data = labelled.shuffle(rows, seed=2 + seed).repeat()
            return data.batch(args.batch_size).prefetch(2), rows
        extra = {arm: parts[arm, words]}
        choices = tf_mp.automl.TransferChoices(
            None, (labelled, rows), extra, args.batch_size, seed=2 + seed
        )
        data, _ = choices.fit_arguments(arm)
        return data, rows + parts[arm, words][1]

    def model_for(arm, student, settings):
        model = sst2.trainable(
            arm,
            teacher,
            student,
            settings["temperature"],
            settings["alpha"],
            hidden_weight=args.hidden_weight,
        )
        model.compile(
            keras.optimizers.Adam(settings["lr"]),  # `Budget` sets it per step.
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["sparse_categorical_accuracy"],
        )
        return model

    planned = {}  # (student, arm): (steps, calibrated step), `--pin-steps`.

    def plan(name, arm, settings, data, charge, seed):
        """`(steps, calibrated step seconds)` that fit the rest of the budget."""
        if args.pin_steps and (name, arm) in planned:
            return planned[name, arm]
        # Calibration: a throwaway copy, timed after its trace.
        keras.utils.set_random_seed(seed)
        student = distillation.student_from_teacher(teacher, **settings["recipe"])
        clock = Clock()
        start = time.perf_counter()
        calibration = Budget(settings["lr"], args.calibration_steps, inf)
        model_for(arm, student, settings).fit(
            data,
            epochs=1,
            steps_per_epoch=args.calibration_steps,
            callbacks=[calibration, clock],
            verbose=0,
        )
        total = time.perf_counter() - start
        step_s = float(np.median(np.diff(clock.ends[4:])))
        overhead = total - step_s * args.calibration_steps
        planned[name, arm] = int((budget - charge - overhead) / step_s), step_s
        return planned[name, arm]

    def run(name, arm, settings, words, seed):
        data, rows = data_for(arm, words, seed)
        charge = rows * per_row_s
        steps, step_s = plan(name, arm, settings, data, charge, seed)
        if steps < 1:
            return {"steps": 0, "cost_s": round(charge, 1), "over_budget": True}
        keras.utils.set_random_seed(seed)
        student = distillation.student_from_teacher(teacher, **settings["recipe"])
        model = model_for(arm, student, settings)
        # Pinned steps all run: the cost may pass the budget (it is reported).
        stop = Budget(settings["lr"], steps, inf if args.pin_steps else budget - charge)
        model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[stop], verbose=0)
        scores = {k: accuracy(student, *v) for k, v in eval_sets.items()}
        result = {
            "steps": stop.steps,
            "planned_steps": steps,
            "cost_s": round(charge + stop.seconds, 1),
            "scoring_s": round(charge, 1),
            "calibration_step_s": round(step_s, 4),
            "pinned_steps": args.pin_steps,
            "final_learning_rate": float(model.optimizer.learning_rate.numpy()),
            **{k: round(v, 4) for k, v in scores.items()},
        }
        line = {"student": name, "arm": arm, "seed": seed}
        line.update(variant_values(settings, words), **result)
        print(json.dumps(line), file=sys.stderr)
        return result

    variants = [
        (name, settings, arm, words)
        for name in args.students.split(",")
        for settings in settings_grid(STUDENTS[name], args)
        for arm in arms
        for words in (args.transfer_min_words if arm == "tf_mp_transfer" else [None])
    ]
    runs = [[] for _ in variants]
    for seed in seeds:
        for variant, (name, settings, arm, words) in zip(runs, variants):
            variant.append(run(name, arm, settings, words, seed))
    results = {name: [] for name in args.students.split(",")}
    for variant, (name, settings, arm, words) in zip(runs, variants):
        done = [r for r in variant if r["steps"]]
        mean = {
            k: float(np.mean([r[k] for r in done])) if done else None for k in eval_sets
        }
        line = {
            "arm": arm,
            **variant_values(settings, words),
            "dev_accuracy": mean["dev"],
            "fraction_of_teacher": mean["dev"] and mean["dev"] / teacher_acc["dev"],
            "held_out_accuracy": mean["held_out"],
            "held_out_long_accuracy": mean["held_out_long"],
            "held_out_sentences_accuracy": mean["held_out_sentences"],
            "runs": variant,
        }
        print(json.dumps({"student": name, **line}), flush=True)
        results[name].append(line)
    print(
        json.dumps(
            {
                "benchmark": "bench_distill_budget",
                "rows": args.rows,
                "transfer_rows": {w: len(t) for w, t in transfer_texts.items()},
                "transfer_min_words": args.transfer_min_words,
                "augmented_rows": len(copies),
                "teacher_epochs": args.teacher_epochs,
                "teacher_schedule": args.teacher_schedule,
                "hidden_weight": args.hidden_weight,
                "seeds": seeds,
                "teacher_finetune_s": round(finetune_s, 1),
                "budget_s": round(budget, 1),
                "teacher_scoring_s_per_1000_rows": round(1000 * per_row_s, 2),
                **teacher_line,
                "held_out_long_rows": len(long),
                "held_out_sentences_rows": len(sentences),
                "students": results,
            }
        )
    )


class Clock:
    """A Keras callback recording the time each batch ends."""

    def __new__(cls):
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        return _Clock()


class Budget:
    """A Keras callback holding a run to `steps` steps and `seconds` of wall
    time: before each step the learning rate is `rate` times the share left of
    whichever runs out first, and training stops once `seconds` have passed."""

    def __new__(cls, rate, steps, seconds):
        import keras

        class _Budget(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.perf_counter()
                self.steps = 0
                self.seconds = 0.0

            def on_train_batch_begin(self, batch, logs=None):
                spent = time.perf_counter() - self.start
                used = max(self.steps / steps, spent / seconds)
                self.model.optimizer.learning_rate = rate * max(0.0, 1.0 - used)

            def on_train_batch_end(self, batch, logs=None):
                self.steps += 1
                self.seconds = time.perf_counter() - self.start
                if self.seconds >= seconds:
                    self.model.stop_training = True

        return _Budget()


if __name__ == "__main__":
    main()
