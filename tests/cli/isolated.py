"""Runs `tf-mp` in a fresh Python process and reports whether TensorFlow was
imported, for the checks that must come before TensorFlow starts."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(argv, cwd):
    """`(exit status, tensorflow imported?, stderr lines)` of `tf-mp argv`."""
    script = (
        "import sys\n"
        "from tf_mp.cli.commands import main\n"
        f"status = main({argv!r})\n"
        "print('tensorflow' in sys.modules)\n"
        "sys.exit(status)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.returncode, run.stdout.split() == ["True"], run.stderr.splitlines()
