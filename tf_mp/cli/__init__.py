"""The `tf-mp` command line: devices, train, distill, tune, generate, demo."""

import os
import sys


def main(argv=None):
    """Runs `tf-mp` with `argv` (default: the process arguments); returns the
    exit status."""
    # Quiet TensorFlow's C++ logs (DTensor logs every step at INFO) unless the
    # user chose a level; must happen before TensorFlow is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tf_mp.cli.commands import main as run

    return run(argv)


def console_main():
    sys.exit(main())
