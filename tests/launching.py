"""`tf-mp launch` in a subprocess, for the tests that start several processes."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*arguments, timeout=240):
    """Runs `tf-mp launch ARGUMENTS`; returns the `CompletedProcess`."""
    return subprocess.run(
        [sys.executable, "-m", "tf_mp", "launch", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
