"""`tf-mp train`: fine-tune a text classifier (BERT, RoBERTa, DistilBERT, ...),
model-parallel on a mesh."""

import os
import time
import types

import tf_mp
from tf_mp.cli import common
from tf_mp.cli import outputs
from tf_mp.cli import plots
from tf_mp.cli import train_causal_lm
from tf_mp.utils import classifiers
from tf_mp.utils.files import write_json

AUTO = "auto"  # `--mesh auto`: plan the mesh and layout (`tf_mp.plan`).


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="Fine-tune a text classifier (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, "
        "ELECTRA, ALBERT) with model parallelism.",
    )
    parser.add_argument(
        "--preset",
        required=True,
        help="keras-hub preset name, a local Hugging Face / keras-hub model "
        "directory of a text classifier family, or 'tiny' (a small random-init "
        "BERT). On a mesh with a 'model' axis, its blocks are split by "
        "tf_mp.models.partition; the saved preset is plain keras-hub.",
    )
    common.add_data_arguments(parser)
    common.add_device_arguments(parser)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--num-classes", type=int, help="Default: from the data.")
    parser.add_argument("--output", default="tf_mp_train", help="Output directory.")
    outputs.add_tensorboard_arguments(parser)
    parser.add_argument(
        "--task",
        choices=("text-classifier", "causal-lm"),
        default="text-classifier",
        help="causal-lm: fine-tune a keras-hub causal LM preset on a .txt file "
        "(one text per line).",
    )
    parser.add_argument(
        "--lora-rank", type=int, help="causal-lm: train LoRA weights of this rank only."
    )
    parser.set_defaults(run=run)


def run(args):
    if args.task == "causal-lm":
        return train_causal_lm.run(args)
    common.check_arguments(args)
    job = _load(args)
    history, seconds = _fit(args, job)
    return _report(args, job, history, seconds)


def _load(args):
    """The classifier (on the mesh with `--mesh`), its rows as batches, and
    where output goes."""
    auto = args.mesh == AUTO
    if auto:
        args.mesh = None
    distribution = common.setup_devices(args)
    train, validation = common.load_data(args, args.num_classes)
    output = outputs.output_dir(args.output)
    model, preprocessor = common.load_classifier(
        args.preset, train.num_classes, args.seq_len, train.texts, distribution
    )
    if auto:
        model, distribution = _planned(model, args, output)
    batch_axis = distribution.num_replicas_in_sync if distribution else 1
    if args.batch_size % batch_axis:
        raise common.UsageError(
            f"--batch-size {args.batch_size} must divide by the mesh's batch axis "
            f"({batch_axis})"
        )
    if len(train) < args.batch_size:
        # Full batches only (a mesh splits each): none would train at all.
        raise common.UsageError(
            f"--batch-size {args.batch_size} is more than the {len(train)} "
            "training rows; lower it"
        )
    _, train_data = common.encode_batches(
        preprocessor, train, args.batch_size, shuffle_seed=0, drop_remainder=True
    )
    x_val, val_data = common.encode_batches(
        preprocessor, validation, args.batch_size, drop_remainder=batch_axis > 1
    )
    return types.SimpleNamespace(
        model=model,
        preprocessor=preprocessor,
        train=train,
        validation=validation,
        train_data=train_data,
        x_val=x_val,
        val_data=val_data,
        output=output,
        logs=outputs.tensorboard_dir(args, output),
    )


def _planned(model, args, output):
    """`--mesh auto`: the classifier planned (`tf_mp.plan`) over all devices and
    moved onto the plan's mesh; the plan is saved as `plan.json`. The cost
    model ranks; only the best candidate is timed (each costs a compile)."""
    from tf_mp.parallel.model_parallel import distribution_of

    plan = tf_mp.plan(
        model, batch_size=args.batch_size, sequence_length=args.seq_len, measure=1
    )
    plan.summary()
    plan.save(os.path.join(output, "plan.json"))
    args.mesh = ",".join(f"{axis}={size}" for axis, size in plan.mesh_shape.items())
    model = plan.apply(model)
    return model, distribution_of(model)


def _fit(args, job):
    """`(history, seconds)` of `fit`."""
    import keras

    job.model.compile(
        **classifiers.compile_arguments(keras.optimizers.Adam(args.learning_rate))
    )
    print(
        f"Training on {len(job.train)} examples ({job.validation.source}: "
        f"{len(job.validation)} for validation), mesh {args.mesh or 'none'}"
    )
    start = time.perf_counter()
    history = job.model.fit(
        job.train_data,
        validation_data=job.val_data,
        epochs=args.epochs,
        verbose=common.verbosity(),
        callbacks=outputs.tensorboard_callbacks(job.logs),
    ).history
    seconds = time.perf_counter() - start
    return {k: [float(v) for v in values] for k, values in history.items()}, seconds


def _report(args, job, history, seconds):
    metrics = {
        "preset": args.preset,
        "data": args.data,
        "mesh": args.mesh,
        "processes": tf_mp.parallel.num_processes(),
        "train_examples": len(job.train),
        "validation_examples": len(job.validation),
        "num_classes": job.train.num_classes,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 2),
        "validation_accuracy": round(
            classifiers.accuracy(job.model, job.x_val, job.validation.labels), 4
        ),
        "parameters": int(job.model.count_params()),
    }
    output = job.output
    paths = {
        "model": common.save_classifier(
            job.model, job.preprocessor, os.path.join(output, "model")
        ),
        "history": write_json(os.path.join(output, "history.json"), history),
        "metrics": write_json(os.path.join(output, "metrics.json"), metrics),
        "curves": plots.training_curves(
            history, os.path.join(output, "training_curves.png")
        ),
        "tensorboard": job.logs,
    }
    paths = {name: path for name, path in paths.items() if path}
    print()
    print(
        outputs.table(
            [
                ("validation accuracy", metrics["validation_accuracy"]),
                ("parameters", f"{metrics['parameters']:,}"),
                ("training time (s)", metrics["train_seconds"]),
                *paths.items(),
            ],
            ["train", ""],
        )
    )
    return metrics
