"""`tf-mp tune`: search for the best student under a size / latency budget."""

import functools
import os
import types

import tf_mp
from tf_mp.cli import common
from tf_mp.cli import outputs
from tf_mp.cli import transfer
from tf_mp.utils import classifiers


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune", help="Search student architectures and distillation settings."
    )
    parser.add_argument(
        "--teacher", required=True, help="Teacher directory (from `tf-mp train`)."
    )
    common.add_data_arguments(parser)
    parser.add_argument(
        "--tuner", choices=["bayesian", "hyperband", "random"], default="bayesian"
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1, help="Epochs per trial.")
    parser.add_argument(
        "--max-params",
        type=float,
        help="Largest student encoder: a parameter count, or a fraction (<= 1) of "
        "the teacher's encoder.",
    )
    parser.add_argument("--max-latency-ms", type=float, help="At batch 1.")
    parser.add_argument(
        "--init",
        default="teacher,random",
        help="Student initialisations to search: teacher (evenly spread teacher "
        "blocks, most important heads and units), random, or both "
        "(default: teacher,random).",
    )
    parser.add_argument(
        "--learning-rates",
        default="5e-5,1e-4,3e-4",
        help="Adam learning rates to search, comma-separated (default: %(default)s).",
    )
    common.add_lr_schedule_argument(parser, "each trial's training steps")
    transfer.add_arguments(
        parser,
        augment_help="Also search training on N augmented copies of every "
        "labelled text (Tang et al.: masking, word replacement, n-gram "
        "sampling), e.g. 20: the trials choose none, --transfer-data's rows "
        "or the copies (a `transfer` hyperparameter).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="Start over instead of resuming."
    )
    parser.add_argument("--output", default="tf_mp_tune", help="Output directory.")
    parser.set_defaults(run=run)


def _choices(flag, text, kind):
    """`"teacher,random"` -> `["teacher", "random"]`, or a `UsageError`."""
    try:
        values = [kind(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values:
        raise common.UsageError(
            f"{flag} must be a comma-separated list. Received: {flag} {text}"
        )
    return values


def run(args):
    inits, learning_rates = _checked_choices(args)
    common.check_arguments(args)
    transfer_texts = transfer.load_texts(args)  # Files: before TensorFlow starts.
    job = _load(args, transfer_texts)
    result = _search(args, job, inits, learning_rates)
    return _report(job, result)


def _checked_choices(args):
    """`(inits, learning rates)`; numbers checked before TensorFlow starts."""
    inits = _choices("--init", args.init, str)
    learning_rates = _choices("--learning-rates", args.learning_rates, float)
    for init in inits:
        if init not in ("teacher", "random"):
            raise common.UsageError(
                f"--init takes teacher and/or random. Received: --init {args.init}"
            )
    for rate in learning_rates:
        if not rate > 0:
            raise common.UsageError(
                "--learning-rates must be > 0. Received: "
                f"--learning-rates {args.learning_rates}"
            )
    if args.max_params is not None and args.max_params <= 0:
        raise common.UsageError(
            f"--max-params must be > 0. Received: {args.max_params}"
        )
    return inits, learning_rates


def _load(args, transfer_texts):
    """The teacher, the encoded rows and transfer sets, the output directory."""
    teacher, preprocessor = common.load_teacher(args)
    train, validation = common.load_data(args, teacher.get_config()["num_classes"])
    _, data = common.encode_batches(preprocessor, train, args.batch_size)
    x_val, val_data = common.encode_batches(preprocessor, validation, args.batch_size)
    sets = {}
    if transfer_texts:
        sets["transfer"] = transfer.tokenize(preprocessor, transfer_texts, masked=False)
    copies = transfer.augmented(args, train, preprocessor.tokenizer)
    if copies:
        sets["augmented"] = transfer.tokenize(preprocessor, copies, masked=True)
    return types.SimpleNamespace(
        teacher=teacher,
        preprocessor=preprocessor,
        validation=validation,
        data=data,
        x_val=x_val,
        val_data=val_data,
        sets=sets,
        output=outputs.output_dir(args.output),
    )


def _search(args, job, inits, learning_rates):
    max_params = args.max_params
    if max_params is not None and max_params <= 1:
        max_params = max_params * tf_mp.distillation.encoder_parameters(job.teacher)
    space = tf_mp.automl.StudentSpace(
        init=inits,
        learning_rate=learning_rates,
        lr_schedule=args.lr_schedule,
        transfer=["none", *job.sets] if job.sets else None,
    )
    hypermodel = tf_mp.automl.StudentHyperModel(job.teacher, space, seed=args.seed)
    return tf_mp.automl.search_student(
        job.teacher,
        job.data,
        job.val_data,
        hypermodel=hypermodel,
        tuner=args.tuner,
        max_trials=args.trials,
        budget=tf_mp.automl.Budget(
            max_params=None if max_params is None else int(max_params),
            max_latency_ms=args.max_latency_ms,
        ),
        epochs=args.epochs,
        directory=job.output,
        project_name="search",
        overwrite=args.overwrite,
        seed=args.seed,
        progress=functools.partial(_print_trial, args.trials),
        transfer_data=tf_mp.automl.TransferData(
            sets=job.sets or None, cache_directory=args.cache_dir
        ),
    )


def _print_trial(trials, row):
    hp = row["hyperparameters"]
    score = row.get("val_accuracy")
    print(
        f"trial {int(row['trial_id']) + 1}/{trials} {row['status']:<9} "
        f"layers={hp.get('num_layers')} heads={hp.get('num_heads')} "
        f"ff={hp.get('intermediate_dim')} init={hp.get('init', 'random')} "
        + (f"transfer={hp['transfer']} " if "transfer" in hp else "")
        + f"params={row.get('encoder_parameters', 0):,} "
        f"latency={row.get('latency_ms_batch_1', 0):.2f}ms "
        + (f"val_accuracy={score:.4f}" if score is not None else row.get("reason", "")),
        flush=True,
    )


def _report(job, result):
    trials_path = os.path.join(job.output, "trials.json")
    result.to_json(trials_path)
    teacher_accuracy = classifiers.accuracy(
        job.teacher, job.x_val, job.validation.labels
    )
    paths = {
        "trials": trials_path,
        "pareto plot": result.plot(
            os.path.join(job.output, "pareto.png"), teacher_score=teacher_accuracy
        ),
        "best student": common.save_classifier(
            result.best_student,
            job.preprocessor,
            os.path.join(job.output, "best_student"),
        ),
    }
    print()
    print(result.summary())
    print(
        f"\n* = Pareto front ({len(result.pareto_front)} trials); best: trial "
        f"{result.best_trial['trial_id']}"
    )
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return {
        "best_trial": result.best_trial,
        "teacher_validation_accuracy": teacher_accuracy,
        "trials": len(result.trials),
        "completed": sum(t["status"] == "COMPLETED" for t in result.trials),
        "transfer_rows": {name: len(x["token_ids"]) for name, x in job.sets.items()},
        "teacher_scored_rows": result.teacher_scored_rows,
        "teacher_scoring_seconds": round(result.teacher_scoring_s, 2),
    }
