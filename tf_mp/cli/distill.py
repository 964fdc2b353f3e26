"""`tf-mp distill`: a smaller student from a fine-tuned teacher directory."""

import dataclasses
import json
import os
import time

import tf_mp
from tf_mp.cli import common
from tf_mp.cli import outputs
from tf_mp.cli import plots
from tf_mp.cli import transfer
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
    transfer.add_arguments(
        parser,
        augment_help="Add N augmented copies of every labelled text (Tang et "
        "al.: masking, word replacement, n-gram sampling), e.g. 20.",
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
    common.add_lr_schedule_argument(parser, "the training steps")
    parser.add_argument(
        "--no-cache", action="store_true", help="Run the teacher in every step."
    )
    parser.add_argument("--output", default="tf_mp_distill", help="Output directory.")
    outputs.add_tensorboard_arguments(parser)
    parser.set_defaults(run=run)


def run(args):
    common.check_arguments(args)
    transfer_texts = transfer.load_texts(args)  # Files: before TensorFlow starts.
    job = _load(args, transfer_texts)
    fitted = _fit(args, job)
    return _report(args, job, fitted)


@dataclasses.dataclass
class _Job:
    """What `tf-mp distill` loaded: the models, the rows, where output goes."""

    teacher: object
    student: object
    preprocessor: object
    train: object
    validation: object
    data: object  # tf.data batches of the training rows
    x_val: object
    rows: int
    extra: object  # `transfer_rows`, or None
    output: str
    logs: object


def _load(args, transfer_texts):
    teacher, preprocessor = common.load_teacher(args)
    classes = teacher.get_config()["num_classes"]
    train, validation = common.load_data(args, classes)
    output = outputs.output_dir(args.output)
    x, data = common.encode_batches(preprocessor, train, args.batch_size)
    x_val, _ = common.encode_batches(preprocessor, validation, args.batch_size)
    rows = len(train)
    extra = transfer.transfer_rows(args, train, preprocessor, transfer_texts)
    if extra is not None:
        data = transfer.training_set(args, x, train.labels, extra)
        rows += len(extra["texts"])
    return _Job(
        teacher=teacher,
        student=make_student(args, teacher),
        preprocessor=preprocessor,
        train=train,
        validation=validation,
        data=data,
        x_val=x_val,
        rows=rows,
        extra=extra,
        output=output,
        logs=outputs.tensorboard_dir(args, output),
    )


def _fit(args, job):
    """Distils (the teacher scored once unless `--no-cache`); returns the
    distiller, its history, the seconds it took, the learning rate schedule
    and the teacher-scoring figures."""
    import keras

    from tf_mp.utils import schedules  # Imports TensorFlow: not at parse time.

    distiller = tf_mp.Distiller(
        job.teacher,
        job.student,
        temperature=args.temperature,
        alpha=args.alpha,
        logits_loss=args.logits_loss,
        hidden_weight=args.hidden_weight,
    )
    steps = args.epochs * -(-job.rows // args.batch_size)
    rate = schedules.learning_rate(args.learning_rate, args.lr_schedule, steps)
    distiller.compile(**classifiers.compile_arguments(keras.optimizers.Adam(rate)))
    classifiers.build_optimizer(distiller)  # One trace of the train step, not two.
    start = time.perf_counter()
    data, scoring = job.data, {}
    if not args.no_cache:
        cache = tf_mp.distillation.TeacherCache.for_distiller(
            distiller, directory=args.cache_dir, verbose=common.verbosity()
        )
        print(f"The teacher scores the {job.rows:,} training rows once")
        data = cache.attach(data).shuffle(job.rows, seed=0).batch(args.batch_size)
        scoring = {
            "teacher_scored_rows": cache.scored_rows,
            "teacher_scoring_seconds": round(cache.scoring_seconds, 2),
        }
        print(
            f"Teacher scored {cache.scored_rows:,} rows in "
            f"{cache.scoring_seconds:.1f} s"
        )
    labelled = len(job.train)
    print(
        f"Distilling on {job.rows:,} rows: {labelled:,} labelled"
        + (f", {job.rows - labelled:,} transfer" if job.rows > labelled else "")
        + f" ({len(job.validation)} for validation)"
    )
    history = distiller.fit(
        data,
        epochs=args.epochs,
        verbose=common.verbosity(),
        callbacks=outputs.tensorboard_callbacks(job.logs),
    )
    seconds = time.perf_counter() - start
    return distiller, history, seconds, rate, scoring


def _report(args, job, fitted):
    from tf_mp.utils.latency import measure_latency  # Imports TensorFlow.

    distiller, history, seconds, rate, scoring = fitted
    figures = {}
    for name, model in (("teacher", job.teacher), ("student", job.student)):
        latency = measure_latency(model, job.x_val, batch_sizes=(32,))
        figures[name] = {
            "accuracy": round(
                classifiers.accuracy(model, job.x_val, job.validation.labels), 4
            ),
            "encoder parameters": tf_mp.distillation.encoder_parameters(model),
            "examples / s": round(32000.0 / latency[32], 1),
        }
    metrics = {
        "teacher": args.teacher,
        "data": args.data,
        "train_examples": len(job.train),
        "transfer_rows": job.rows - len(job.train),
        "augmented_rows": job.extra["augmented"] if job.extra else 0,
        "validation_examples": len(job.validation),
        "distill_seconds": round(seconds, 2),
        "teacher_fine_tuning_seconds": teacher_cost(args.teacher),
        "teacher_cache": not args.no_cache,
        **scoring,
        "learning_rate": args.learning_rate,
        "lr_schedule": args.lr_schedule,
        "train_steps": int(distiller.optimizer.iterations),
        "lr_decay_steps": getattr(rate, "decay_steps", None),  # The schedule's.
        "final_learning_rate": float(distiller.optimizer.learning_rate),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        **{name: values for name, values in figures.items()},
    }
    paths = {
        "student": common.save_classifier(
            job.student, job.preprocessor, os.path.join(job.output, "student")
        ),
        "metrics": write_json(os.path.join(job.output, "metrics.json"), metrics),
        "comparison": plots.comparison(
            figures, os.path.join(job.output, "teacher_vs_student.png")
        ),
        "tensorboard": job.logs,
    }
    _print_summary(figures, seconds, metrics, paths)
    return metrics


def _print_summary(figures, seconds, metrics, paths):
    paths = {name: path for name, path in paths.items() if path}
    t, s = figures["teacher"], figures["student"]
    print()
    print(
        outputs.table(
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
    cost = f"Total cost {seconds:.1f} s (teacher scoring and student training)"
    if metrics["teacher_fine_tuning_seconds"] is not None:
        cost += (
            f"; the teacher's fine-tuning took "
            f"{metrics['teacher_fine_tuning_seconds']:.1f} s"
        )
    print("\n" + cost)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))


def teacher_cost(teacher):
    """The teacher's fine-tuning seconds from `tf-mp train`'s metrics.json
    (beside the model directory), else None."""
    for path in (
        os.path.join(teacher, "metrics.json"),
        os.path.join(os.path.dirname(os.path.abspath(teacher)), "metrics.json"),
    ):
        try:
            with open(path, encoding="utf-8") as handle:
                return float(json.load(handle)["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


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
