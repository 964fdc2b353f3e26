"""`tf-mp demo`: the whole job, offline, on the corpus shipped with tf_mp."""

import argparse
import os
import time

from tf_mp.cli import distill
from tf_mp.cli import outputs
from tf_mp.cli import train
from tf_mp.cli import tune


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="Partition and train a tiny BERT on 4 virtual CPUs, distil it, run a "
        "3-trial search (offline, a few minutes).",
    )
    parser.add_argument("--output", default="tf_mp_demo", help="Output directory.")
    parser.add_argument("--virtual-devices", type=int, default=4)
    parser.add_argument("--mesh", default="batch=2,model=2")
    parser.add_argument("--epochs", type=int, default=6, help="Teacher epochs.")
    parser.add_argument("--trials", type=int, default=3)
    parser.set_defaults(run=run)


def _stage_parser():
    """The parser of the commands the demo runs as its stages."""
    parser = argparse.ArgumentParser(prog="tf-mp")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in (train, distill, tune):
        command.add_parser(subparsers)
    return parser


def run(args):
    parser = _stage_parser()
    output = outputs.output_dir(args.output)
    stages = {}
    for name, argv in _stages(args, output):
        print(f"\n=== {name}: tf-mp {' '.join(argv)}\n", flush=True)
        start = time.perf_counter()
        stage_args = parser.parse_args(argv)
        stages[name] = (stage_args.run(stage_args), time.perf_counter() - start)
    _print_summary(output, stages)
    return {name: result for name, (result, _) in stages.items()}


def _argv(command, flags):
    """`[command, flag, value, ...]`; a flag whose value is `None` stands alone."""
    argv = [command]
    for flag, value in flags.items():
        argv += [flag] if value is None else [flag, str(value)]
    return argv


def _stages(args, output):
    """`(name, argv)` of the demo's stages, in order."""
    data = {"--data": "tf_mp/sentiment", "--seq-len": 32, "--batch-size": 16}
    teacher_dir = os.path.join(output, "teacher")
    teacher = os.path.join(teacher_dir, "model")
    return [
        (
            "train",
            _argv(
                "train",
                {
                    "--preset": "tiny",
                    **data,
                    "--mesh": args.mesh,
                    "--virtual-devices": args.virtual_devices,
                    "--epochs": args.epochs,
                    "--learning-rate": "1e-3",
                    "--output": teacher_dir,
                },
            ),
        ),
        (
            "distill",
            _argv(
                "distill",
                {
                    "--teacher": teacher,
                    **data,
                    "--student-layers": 0,
                    "--epochs": 4,
                    "--learning-rate": "1e-3",
                    "--alpha": 0.3,
                    "--output": os.path.join(output, "student"),
                },
            ),
        ),
        (
            "tune",
            _argv(
                "tune",
                {
                    "--teacher": teacher,
                    **data,
                    "--tuner": "random",
                    # Students that start from the teacher's blocks, at the rate
                    # the teacher trained with: 3 trials reach near the teacher.
                    "--init": "teacher",
                    "--learning-rates": "1e-3,3e-3",
                    "--trials": args.trials,
                    "--epochs": 3,
                    "--max-params": 0.6,
                    "--overwrite": None,
                    "--output": os.path.join(output, "search"),
                },
            ),
        ),
    ]


def _print_summary(output, stages):
    (trained, train_s), (distilled, distill_s), (tuned, tune_s) = (
        stages["train"],
        stages["distill"],
        stages["tune"],
    )
    best = tuned["best_trial"]
    rows = [
        (
            "teacher (2x2 mesh)",
            trained["validation_accuracy"],
            f"{trained['parameters']:,} total",
            f"{train_s:.0f}",
        ),
        (
            "distilled student",
            distilled["student"]["accuracy"],
            f"{distilled['student']['encoder parameters']:,} encoder",
            f"{distill_s:.0f}",
        ),
        (
            f"best of {tuned['trials']} trials",
            round(best["val_accuracy"], 4),
            f"{best['encoder_parameters']:,} encoder",
            f"{tune_s:.0f}",
        ),
    ]
    print("\n=== demo summary\n")
    print(
        outputs.table(rows, ["model", "validation accuracy", "parameters", "seconds"])
    )
    plots = (
        "teacher/training_curves.png",
        "student/teacher_vs_student.png",
        "search/pareto.png",
    )
    print("\nPlots: " + ", ".join(os.path.join(output, p) for p in plots))
