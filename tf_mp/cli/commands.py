"""The `tf-mp` command line (also `python -m tf_mp`)."""

import argparse
import sys
import traceback
import warnings

from tf_mp.cli import common
from tf_mp.cli import demo
from tf_mp.cli import devices
from tf_mp.cli import distill
from tf_mp.cli import generate
from tf_mp.cli import launch
from tf_mp.cli import plan
from tf_mp.cli import train
from tf_mp.cli import tune


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tf-mp",
        description="Model parallelism, distillation and student search for BERT "
        "models on TensorFlow / Keras 3.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="Show tracebacks of errors."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in (devices, train, distill, tune, generate, demo, launch, plan):
        command.add_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="Show tracebacks of errors.",
        )
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # Keras warns about arguments the commands pass on purpose (`shuffle`
        # with datasets, optimizer state in presets).
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    try:
        args.run(args)
    except (common.UsageError, ValueError, TypeError, OSError) as error:
        if not is_input_error(error):
            raise  # A bug: Python prints the traceback, exit status 1.
        if args.debug:
            traceback.print_exc()
        lines = str(error).strip().splitlines()
        message = lines[0] if lines else repr(error)
        print(f"tf-mp {args.command}: error: {message}", file=sys.stderr)
        if not args.debug:
            print("(run with --debug for the traceback)", file=sys.stderr)
        # Not imported when the command never started TensorFlow (`launch`).
        processes = sys.modules.get("tf_mp.parallel.processes")
        if processes is not None:
            processes.leaving_after_an_error()
        return 2
    return 0


def is_input_error(error):
    """Whether `error` is about the user's input, shown as one line.

    `UsageError`s (the commands' own checks) and `OSError`s (files) are; a
    `ValueError` / `TypeError` is when tf_mp raised it, since tf_mp raises
    those only for bad arguments, naming them. The same errors raised inside
    TensorFlow, Keras or NumPy come from tf_mp's use of them: bugs.
    """
    if isinstance(error, (common.UsageError, OSError)):
        return True
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame else ""
    return module == "tf_mp" or module.startswith("tf_mp.")
