"""Where a `tf-mp` command's results go, and how they are shown."""

import os

import tf_mp
from tf_mp.cli.common import UsageError


def add_tensorboard_arguments(parser):
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="TensorBoard log directory (default: OUTPUT/logs; watch with "
        "`tensorboard --logdir DIR`).",
    )
    parser.add_argument(
        "--no-tensorboard", action="store_true", help="Write no TensorBoard logs."
    )


def tensorboard_callbacks(directory):
    """`[keras.callbacks.TensorBoard]` logging into `directory` (from
    `tensorboard_dir`), or `[]` when it is None."""
    if directory is None:
        return []
    import keras

    # No graph: the step functions on a mesh are DTensor functions.
    return [keras.callbacks.TensorBoard(directory, write_graph=False)]


def tensorboard_dir(args, output):
    """Where the TensorBoard logs go, or None. `output` is already this
    process's own; a `--tensorboard` directory is process 0's alone too."""
    if args.no_tensorboard:
        return None
    if args.tensorboard:
        return tf_mp.parallel.processes.own_directory(args.tensorboard)
    return os.path.join(output, "logs")


def output_dir(path):
    """Creates the `--output` directory. On a mesh over several processes only
    process 0 writes there; the others run the same steps (saving a model is a
    collective) into a scratch directory that is removed at exit."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--output {path}: {error.strerror}") from None
    return tf_mp.parallel.processes.own_directory(path)


def table(rows, headers):
    """A plain text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
