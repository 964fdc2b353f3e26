"""`tf-mp distill`: a smaller student from a fine-tuned teacher directory."""

import os
import time

import tf_mp
from tf_mp.cli import common
from tf_mp.cli import plots
from tf_mp.utils import classifiers
from tf_mp.utils.files import write_json


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "distill", help="Distil a fine-tuned teacher into a smaller student."
    )
    parser.add_argument(
        "--teacher",
        required=True,
        help="The teacher: a model directory written by `tf-mp train` (or any "
        "keras-hub text-classifier preset).",
    )
    common.add_data_arguments(parser)
    student = parser.add_argument_group("student (default: every other block)")
    student.add_argument(
        "--student-layers",
        help="Teacher blocks to copy, e.g. 0,2,4 (DistilBERT-style).",
    )
    student.add_argument("--num-heads", type=int, help="Slice to N heads per block.")
    student.add_argument(
        "--intermediate-dim", type=int, help="Slice to N feed-forward units."
    )
    student.add_argument(
        "--student-config",
        help="A fresh student instead: num_layers=2,hidden_dim=128,num_heads=2,"
        "intermediate_dim=512.",
    )
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument(
        "--logits-loss",
        choices=["kl_divergence", "mean_squared_error"],
        default="kl_divergence",
        help="Soft-target term: tempered KL, or MSE of the raw logits.",
    )
    parser.add_argument("--hidden-weight", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--no-cache", action="store_true", help="Run the teacher in every step."
    )
    parser.add_argument("--output", default="tf_mp_distill", help="Output directory.")
    common.add_tensorboard_arguments(parser)
    parser.set_defaults(run=run)


def run(args):
    common.check_arguments(args)
    import keras

    teacher, preprocessor = common.load_teacher(args)
    classes = teacher.get_config()["num_classes"]
    train, validation = common.load_data(args, classes)
    output = common.output_dir(args.output)
    logs = common.tensorboard_dir(args, output)
    student = make_student(args, teacher)
    distiller = tf_mp.Distiller(
        teacher,
        student,
        temperature=args.temperature,
        alpha=args.alpha,
        logits_loss=args.logits_loss,
        hidden_weight=args.hidden_weight,
    )
    distiller.compile(
        **classifiers.compile_arguments(keras.optimizers.Adam(args.learning_rate))
    )
    x, data = common.encode(preprocessor, train, args.batch_size)
    x_val, _ = common.encode(preprocessor, validation, args.batch_size)
    start = time.perf_counter()
    scoring = {}
    if not args.no_cache:
        cache = tf_mp.distillation.TeacherCache.for_distiller(
            distiller, verbose=common.verbosity()
        )
        print(f"The teacher scores the {len(train):,} training examples once")
        data = cache.attach(data).shuffle(len(train), seed=0).batch(args.batch_size)
        scoring = {
            "teacher_scored_rows": cache.scored_rows,
            "teacher_scoring_seconds": round(cache.scoring_seconds, 2),
        }
        print(
            f"Teacher scored {cache.scored_rows:,} rows in "
            f"{cache.scoring_seconds:.1f} s"
        )
    print(f"Distilling on {len(train)} examples ({len(validation)} for validation)")
    history = distiller.fit(
        data,
        epochs=args.epochs,
        verbose=common.verbosity(),
        callbacks=common.tensorboard_callbacks(logs),
    )
    seconds = time.perf_counter() - start
    figures = {}
    for name, model in (("teacher", teacher), ("student", student)):
        latency = tf_mp.automl.measure_latency(model, x_val, batch_sizes=(32,))
        figures[name] = {
            "accuracy": round(classifiers.accuracy(model, x_val, validation.labels), 4),
            "encoder parameters": tf_mp.distillation.encoder_parameters(model),
            "examples / s": round(32000.0 / latency[32], 1),
        }
    metrics = {
        "teacher": args.teacher,
        "data": args.data,
        "train_examples": len(train),
        "validation_examples": len(validation),
        "distill_seconds": round(seconds, 2),
        "teacher_cache": not args.no_cache,
        **scoring,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        **{name: values for name, values in figures.items()},
    }
    paths = {
        "student": common.save_classifier(
            student, preprocessor, os.path.join(output, "student")
        ),
        "metrics": write_json(os.path.join(output, "metrics.json"), metrics),
        "comparison": plots.comparison(
            figures, os.path.join(output, "teacher_vs_student.png")
        ),
        "tensorboard": logs,
    }
    paths = {name: path for name, path in paths.items() if path}
    t, s = figures["teacher"], figures["student"]
    print()
    print(
        common.table(
            [
                ("validation accuracy", t["accuracy"], s["accuracy"]),
                (
                    "encoder parameters",
                    f"{t['encoder parameters']:,}",
                    f"{s['encoder parameters']:,}",
                ),
                ("examples / s (batch 32)", t["examples / s"], s["examples / s"]),
            ],
            ["distill", "teacher", "student"],
        )
    )
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))
    return metrics


def make_student(args, teacher):

    if args.student_config:
        if args.student_layers or args.num_heads or args.intermediate_dim:
            raise common.UsageError(
                "--student-config builds a fresh student; it cannot be combined "
                "with --student-layers, --num-heads or --intermediate-dim"
            )
        config = common.parse_pairs(args.student_config, flag="--student-config")
        expected = {"num_layers", "hidden_dim", "num_heads", "intermediate_dim"}
        if set(config) != expected:
            raise common.UsageError(
                f"--student-config needs exactly {sorted(expected)}. "
                f"Received: --student-config {args.student_config}"
            )
        return tf_mp.distillation.student_from_config(teacher, **config)
    depth = tf_mp.distillation.encoder_config(teacher)["num_layers"]
    if args.student_layers:
        try:
            layers = [int(i) for i in args.student_layers.split(",")]
        except ValueError:
            raise common.UsageError(
                "--student-layers must be block numbers like 0,2,4. "
                f"Received: --student-layers {args.student_layers}"
            ) from None
    else:
        layers = list(range(0, depth, 2))
    return tf_mp.distillation.student_from_teacher(
        teacher,
        layers=layers,
        num_heads=args.num_heads,
        intermediate_dim=args.intermediate_dim,
    )
