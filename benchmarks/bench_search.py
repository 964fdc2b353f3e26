"""Student search on SST-2: `tf_mp.automl.search_student` under a size budget.

Teacher: the fine-tuned all-MiniLM-L6-v2 of `bench_distill.py` (cached). The
search (Bayesian, `--trials` trials, `max_params` = `--budget` x the teacher's
encoder parameters, seeded trials) trains each student for `--epochs` epochs on
the first `--rows` labelled training rows and scores it on the next
`--val-rows` training rows;
the SST-2 dev set is only used for the final figures. Baseline: a hand-picked
student of similar size (teacher blocks [0, 2, 4] sliced to 8 heads and 1,024
feed-forward units) distilled with the same data and steps and tf_mp's default
settings. Then a 3-trial random search with the shared teacher cache and the
same search without it, side by side, for the wall-time ratio.

Prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="Teacher checkpoint (default: MiniLM).")
    parser.add_argument("--rows", type=int, default=4096, help="Training rows.")
    parser.add_argument("--val-rows", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2, help="Epochs per trial.")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--budget", type=float, default=0.25)
    parser.add_argument("--cache-trials", type=int, default=3)
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    parser.add_argument(
        "--lr-schedule",
        choices=("linear", "constant"),
        default="linear",
        help="Trials' learning rate (StudentHyperModel's lr_schedule; runs "
        "before 2026-12-03 used constant).",
    )
    parser.add_argument("--directory", help="Search directory (default: a temp dir).")
    return parser.parse_args()


def main():
    args = parse_args()
    import sst2_teacher as sst2

    preset = args.preset or sst2.minilm_path()
    import keras
    import numpy as np

    import tf_mp
    from tf_mp import distillation
    from tf_mp.utils.classifiers import accuracy

    sentences, labels = sst2.read_tsv("train", args.rows + args.val_rows)
    dev_sentences, dev_labels = sst2.read_tsv("dev")
    x_all = sst2.tokenize(preset, sentences, args.seq_len)
    x_dev = sst2.tokenize(preset, dev_sentences, args.seq_len)
    y_all, y_dev = np.asarray(labels, "int32"), np.asarray(dev_labels, "int32")
    n = args.rows
    x = {k: v[:n] for k, v in x_all.items()}
    x_val = {k: v[n:] for k, v in x_all.items()}
    y, y_val = y_all[:n], y_all[n:]

    teacher, _ = sst2.fine_tuned_teacher(preset, x, y, args.seq_len, lr=args.teacher_lr)
    teacher_acc = accuracy(teacher, x_dev, y_dev)
    teacher_params = distillation.encoder_parameters(teacher)
    max_params = int(args.budget * teacher_params)
    teacher_latency = tf_mp.automl.measure_latency(teacher, x_dev)
    train = sst2.dataset(x, y, args.batch_size, shuffle_seed=1)
    validation = sst2.dataset(x_val, y_val, args.batch_size)
    directory = args.directory or tempfile.mkdtemp(prefix="bench_search_")

    def space(seed):
        return tf_mp.automl.StudentHyperModel(
            teacher, tf_mp.automl.StudentSpace(lr_schedule=args.lr_schedule), seed=seed
        )

    def trial_line(row):
        print(json.dumps({"trial": row}), file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = tf_mp.automl.search_student(
        teacher,
        train,
        validation,
        tuner="bayesian",
        max_trials=args.trials,
        budget=tf_mp.automl.Budget(max_params=max_params),
        directory=directory,
        project_name="search",
        overwrite=True,
        epochs=args.epochs,
        seed=0,
        hypermodel=space(0),
        progress=trial_line,
    )
    search_s = time.perf_counter() - start
    best = result.best_student
    found = {
        "dev_accuracy": round(accuracy(best, x_dev, y_dev), 4),
        "encoder_params_fraction": round(
            result.best_trial["encoder_parameters"] / teacher_params, 4
        ),
        "latency_ms_batch_1": result.best_trial["latency_ms_batch_1"],
        "latency_ms_batch_32": result.best_trial["latency_ms_batch_32"],
        "hyperparameters": result.best_trial["hyperparameters"],
    }
    found["fraction_of_teacher"] = round(found["dev_accuracy"] / teacher_acc, 4)
    result.plot(os.path.join(directory, "pareto.png"))
    result.to_json(os.path.join(directory, "search.json"))

    # The hand-picked baseline: same data, same steps, default distillation.
    keras.utils.set_random_seed(0)
    student = distillation.student_from_teacher(
        teacher, layers=[0, 2, 4], num_heads=8, intermediate_dim=1024
    )
    baseline_distiller = tf_mp.Distiller(teacher, student)
    baseline_distiller.compile(
        keras.optimizers.Adam(1e-4),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    cache = distillation.TeacherCache(teacher)
    baseline_distiller.fit(
        cache.attach(train).batch(args.batch_size), epochs=args.epochs, verbose=0
    )
    latency = tf_mp.automl.measure_latency(student, x_dev)
    baseline = {
        "dev_accuracy": round(accuracy(student, x_dev, y_dev), 4),
        "encoder_params_fraction": round(
            distillation.encoder_parameters(student) / teacher_params, 4
        ),
        "latency_ms_batch_1": round(latency[1], 3),
        "latency_ms_batch_32": round(latency[32], 3),
    }
    baseline["fraction_of_teacher"] = round(baseline["dev_accuracy"] / teacher_acc, 4)

    # Shared teacher cache against running the teacher in every step.
    walls, trained, scores = {}, {}, {}
    for cached in (True, False):
        start = time.perf_counter()
        side = tf_mp.automl.search_student(
            teacher,
            train,
            validation,
            tuner="random",
            max_trials=args.cache_trials,
            budget=tf_mp.automl.Budget(max_params=max_params),
            directory=directory,
            project_name=f"cache_{cached}",
            overwrite=True,
            epochs=args.epochs,
            seed=1,
            hypermodel=space(1),
            transfer_data=tf_mp.automl.TransferData(cache=cached),
            progress=trial_line,
        )
        walls[cached] = time.perf_counter() - start
        trained[cached] = sum(t["status"] == "COMPLETED" for t in side.trials)
        scores[cached] = [t.get("val_accuracy") for t in side.trials]

    completed = [t for t in result.trials if t["status"] == "COMPLETED"]
    print(
        json.dumps(
            {
                "benchmark": "bench_search",
                "rows": args.rows,
                "val_rows": args.val_rows,
                "epochs_per_trial": args.epochs,
                "trials": args.trials,
                "lr_schedule": args.lr_schedule,
                "completed_trials": len(completed),
                "rejected_over_budget": sum(
                    "Rejected before training" in t.get("reason", "")
                    for t in result.trials
                ),
                "max_params": max_params,
                "teacher_dev_accuracy": round(teacher_acc, 4),
                "teacher_latency_ms": {
                    str(k): round(v, 3) for k, v in teacher_latency.items()
                },
                "found": found,
                "baseline": baseline,
                "found_beats_baseline": found["dev_accuracy"]
                > baseline["dev_accuracy"],
                "pareto_front_size": len(result.pareto_front),
                "search_s": round(search_s, 1),
                "cache_side_by_side_trials": args.cache_trials,
                "cache_side_by_side_trained": [trained[True], trained[False]],
                "cache_side_by_side_scores": [scores[True], scores[False]],
                "search_s_with_cache": round(walls[True], 1),
                "search_s_without_cache": round(walls[False], 1),
                "cache_time_saving": round(1.0 - walls[True] / walls[False], 3),
                "directory": directory,
            }
        )
    )


if __name__ == "__main__":
    main()
