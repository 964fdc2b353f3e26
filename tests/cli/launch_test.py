"""`tf-mp launch`: environments, prefixed output, and a failure that stops the
other processes. The commands here are plain Python, no TensorFlow; a real
two-process mesh runs in `tests/parallel/processes_test.py`."""

import json
import os
import sys
import time

import pytest

from tests.launching import launch

SHOW_ENVIRONMENT = (
    "import os; print(os.environ['KERAS_DISTRIBUTION_PROCESS_ID'], "
    "os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES'], "
    "os.environ['KERAS_DISTRIBUTION_JOB_ADDRESSES'], "
    "os.environ.get('TF_MP_VIRTUAL_DEVICES'))"
)


def test_each_process_gets_its_place_in_the_cluster():
    run = launch(
        "--num-processes",
        "3",
        "--virtual-devices",
        "2",
        "--",
        sys.executable,
        "-c",
        SHOW_ENVIRONMENT,
    )
    assert run.returncode == 0, run.stderr
    lines = sorted(run.stdout.splitlines())
    assert [line[:4] for line in lines] == ["[0] ", "[1] ", "[2] "]
    fields = [line[4:].split() for line in lines]
    assert [f[0] for f in fields] == ["0", "1", "2"]
    assert {f[1] for f in fields} == {"3"}
    assert {f[3] for f in fields} == {"2"}
    addresses = {f[2] for f in fields}
    assert len(addresses) == 1
    hosts_ports = [a.rsplit(":", 1) for a in addresses.pop().split(",")]
    assert [host for host, _ in hosts_ports] == ["127.0.0.1"] * 3
    assert len({port for _, port in hosts_ports}) == 3


def test_cluster_mode_starts_this_hosts_process_only():
    run = launch(
        "--job-addresses",
        "10.0.0.1:9870,10.0.0.2:9870",
        "--process-id",
        "1",
        "--",
        sys.executable,
        "-c",
        SHOW_ENVIRONMENT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "2", "10.0.0.1:9870,10.0.0.2:9870", "None"]


def test_a_failing_process_stops_the_others(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(
        "import os, sys, time\n"
        "index = os.environ['KERAS_DISTRIBUTION_PROCESS_ID']\n"
        f"open(os.path.join({str(tmp_path)!r}, 'pid' + index), 'w')"
        ".write(str(os.getpid()))\n"
        "if index == '1':\n"
        "    time.sleep(1)\n"
        "    sys.exit('process 1: out of patience')\n"
        "time.sleep(300)\n"
    )
    started = time.monotonic()
    run = launch("--grace-period", "2", "--", sys.executable, str(script))
    assert time.monotonic() - started < 60
    assert run.returncode == 1
    assert "process 1 failed (exit status 1)" in run.stderr
    assert "process 1: out of patience" in run.stderr  # Its last lines.
    for index in ("0", "1"):
        pid = int((tmp_path / f"pid{index}").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_exit_status_of_the_failed_process_is_kept():
    run = launch(
        "--num-processes", "2", "--", sys.executable, "-c", "raise SystemExit(7)"
    )
    assert run.returncode == 7


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--process-id", "1"], "--process-id needs --job-addresses"),
        (["--num-processes", "0"], "--num-processes must be >= 1"),
        (
            ["--job-addresses", "a:1,b:1", "--process-id", "2"],
            "--process-id must be in [0, 2)",
        ),
        (
            ["--job-addresses", "a:1,b:1", "--num-processes", "3", "--process-id", "0"],
            "lists 2 process(es) but --num-processes is 3",
        ),
    ],
)
def test_bad_arguments_are_one_line(arguments, message):
    run = launch(*arguments, "--", sys.executable, "-c", "pass")
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_a_missing_program_is_one_line():
    run = launch("--", "/nonexistent/program")
    assert run.returncode == 2
    assert "cannot run '/nonexistent/program'" in run.stderr


def test_tf_mp_train_on_two_processes(tmp_path):
    run = launch(
        "--virtual-devices",
        "2",
        "--",
        sys.executable,
        "-m",
        "tf_mp",
        "train",
        "--preset",
        "tiny",
        "--data",
        "tf_mp/sentiment",
        "--mesh",
        "batch=2,model=2",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--seq-len",
        "32",
        "--batch-size",
        "8",
        "--output",
        str(tmp_path),
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["mesh"] == "batch=2,model=2"
    # Both processes trained the same model on one mesh: the same epoch line.
    epochs = [line[4:] for line in run.stdout.splitlines() if "val_loss" in line]
    assert len(epochs) == 2
    assert epochs[0].split(" - ")[3:] == epochs[1].split(" - ")[3:]  # Metrics.
    # Process 0 wrote the outputs; the others' scratch copies are gone.
    assert sorted(os.listdir(tmp_path)) == [
        "history.json",
        "logs",  # TensorBoard's, one set of curves.
        "metrics.json",
        "model",
        "training_curves.png",
    ]
    assert len(list((tmp_path / "logs" / "train").iterdir())) == 1
