"""`tf_mp.initialize`: its checks in this process, and one mesh over two real
processes on loopback (`tf-mp launch`)."""

import functools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tf_mp
from tests import launching
from tests import tiny_models
from tests.launching import launch
from tests.parallel import equivalence
from tf_mp.cli.launch import free_ports
from tf_mp.parallel import processes

# One worker runs this module, so the two-process runs happen once.
pytestmark = pytest.mark.xdist_group("two_processes")

SCRIPT = os.path.join(os.path.dirname(__file__), "multi_process_script.py")
TWO = "127.0.0.1:9870,127.0.0.1:9871"


@pytest.fixture(autouse=True)
def no_launch_environment(monkeypatch):
    for name in (
        processes.JOB_ADDRESSES,
        processes.NUM_PROCESSES,
        processes.PROCESS_ID,
        processes.VIRTUAL_DEVICES,
        processes.TPU_WORKER_HOSTNAMES,
        processes.TPU_WORKER_ID,
        processes.TPU_PORT,
    ):
        monkeypatch.delenv(name, raising=False)


def test_alone_it_changes_nothing(virtual_devices):
    tf_mp.initialize()
    tf_mp.initialize(job_addresses="127.0.0.1:9870", num_processes=1, process_id=0)
    assert tf_mp.parallel.num_processes() == 1
    assert tf_mp.parallel.process_id() == 0
    mesh = tf_mp.Mesh({"batch": 2})
    assert mesh.num_processes == 1
    assert mesh.local_devices == mesh.devices


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(job_addresses=TWO, num_processes=3, process_id=0), "has 2 address"),
        (
            dict(job_addresses="127.0.0.1:9870", num_processes=2, process_id=0),
            "every process needs its own address",
        ),
        (dict(job_addresses=TWO, process_id=2), r"process_id=2"),
        (dict(job_addresses=TWO, process_id=-1), r"process_id=-1"),
        (dict(job_addresses=TWO), "process_id=None"),
        (dict(num_processes=2, process_id=0), "job_addresses=None"),
        (
            dict(job_addresses="127.0.0.1,127.0.0.1:9871", process_id=0),
            "bad item '127.0.0.1'",
        ),
        (
            dict(job_addresses="127.0.0.1:9870,127.0.0.1:9870", process_id=0),
            "lists an address twice",
        ),
        (dict(num_processes=0), "num_processes=0"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_mp.initialize(**kwargs)
    assert tf_mp.parallel.num_processes() == 1


def test_environment_variables_are_read_and_checked(monkeypatch):
    monkeypatch.setenv(processes.JOB_ADDRESSES, TWO)
    monkeypatch.setenv(processes.PROCESS_ID, "two")
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_PROCESS_ID='two'"):
        tf_mp.initialize()
    monkeypatch.setenv(processes.PROCESS_ID, "5")
    with pytest.raises(ValueError, match=r"\[0, 2\).*process_id=5"):
        tf_mp.initialize()


def test_a_multi_host_tpu_slice_fills_the_arguments(monkeypatch):
    # What GKE sets on each host of a TPU slice; Keras's variables win.
    monkeypatch.setenv(processes.TPU_WORKER_HOSTNAMES, "tpu-0, tpu-1,tpu-2")
    monkeypatch.setenv(processes.TPU_WORKER_ID, "2")
    addresses = ("tpu-0:9870", "tpu-1:9870", "tpu-2:9870")
    assert processes._resolve(None, None, None) == (addresses, 3, 2)
    monkeypatch.setenv(processes.TPU_PORT, "8476")
    assert processes._resolve(None, None, 0)[0][0] == "tpu-0:8476"
    monkeypatch.setenv(processes.JOB_ADDRESSES, TWO)
    monkeypatch.setenv(processes.PROCESS_ID, "1")
    assert processes._resolve(None, None, None) == (tuple(TWO.split(",")), 2, 1)
    # One host: nothing to join.
    monkeypatch.delenv(processes.JOB_ADDRESSES)
    monkeypatch.delenv(processes.PROCESS_ID)
    monkeypatch.setenv(processes.TPU_WORKER_HOSTNAMES, "tpu-0")
    monkeypatch.setenv(processes.TPU_WORKER_ID, "0")
    assert processes._resolve(None, None, None) == ((), 1, 0)


def test_after_tensorflow_started_it_is_a_clear_error(virtual_devices):
    # The test session has run TensorFlow ops: too late to join a cluster.
    with pytest.raises(RuntimeError, match="cannot join a cluster any more"):
        tf_mp.initialize(job_addresses=TWO, num_processes=2, process_id=0)
    assert tf_mp.parallel.num_processes() == 1
    for name in ("DTENSOR_JOBS", "DTENSOR_JOB_NAME", "DTENSOR_CLIENT_ID"):
        assert name not in os.environ
    # The process still makes meshes of its own devices.
    mesh = tf_mp.Mesh({"batch": 2})
    assert "/job:localhost/" in mesh.dtensor_mesh.local_devices()[0]


def test_mesh_accepts_tensorflow_and_keras_devices(virtual_devices):
    import keras
    import tensorflow as tf

    logical = tf.config.list_logical_devices("CPU")[:4]
    from_objects = tf_mp.Mesh({"batch": 2, "model": 2}, devices=logical)
    keras_names = keras.distribution.list_devices("cpu")[:4]
    from_keras = tf_mp.Mesh({"batch": 2, "model": 2}, devices=keras_names)
    assert from_objects == from_keras == tf_mp.Mesh({"batch": 2, "model": 2})
    physical = tf.config.list_physical_devices("CPU")
    assert tf_mp.Mesh({"batch": 1}, devices=physical).devices == ("CPU:0",)
    with pytest.raises(TypeError, match="Received: 3 of type int"):
        tf_mp.Mesh({"batch": 1}, devices=[3])


def _json_lines(output):
    found = {}
    for line in output.splitlines():
        prefix, _, rest = line.partition("] ")
        if rest.startswith("{"):
            found[int(prefix.lstrip("["))] = json.loads(rest)
    return found


def test_one_mesh_over_two_processes():
    run = launch("--virtual-devices", "2", "--", sys.executable, SCRIPT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen = _json_lines(run.stdout)
    assert sorted(seen) == [0, 1]
    for index, report in seen.items():
        assert report["process_id"] == index
        assert report["num_processes"] == 2
        assert [d.split("/task:")[1][0] for d in report["local_devices"]] == [
            str(index)
        ] * 2
        assert report["devices"] == seen[0]["devices"]
        # Rows of x live in different processes: the result needs both.
        np.testing.assert_allclose(report["result"], report["expected"], rtol=1e-6)


ORDER_SCRIPT = os.path.join(os.path.dirname(__file__), "setup_order_script.py")


def test_configure_virtual_devices_then_initialize_makes_a_two_process_mesh():
    run = launch(
        "--num-processes", "2", "--", sys.executable, ORDER_SCRIPT, "configure_first"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _json_lines(run.stdout) == {0: {"local_devices": 2}, 1: {"local_devices": 2}}


def test_configure_after_initialize_names_initialize_as_the_starter():
    run = launch(
        "--num-processes", "2", "--", sys.executable, ORDER_SCRIPT, "initialize_first"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    errors = [report["error"] for report in _json_lines(run.stdout).values()]
    assert len(errors) == 2
    for error in errors:
        assert "`tf_mp.initialize()` started them" in error
        assert "configure_virtual_devices(2)` before it" in error


FIT_SCRIPT = os.path.join(os.path.dirname(__file__), "multi_process_fit_script.py")


# Each case also checks the rows `distribute_dataset` gives each process.
CASES = {
    "2x2:per-process": "each process reads its rows (distribute_dataset)",
    "1x4:global": "the model axis across the processes",
    "4x1:global": "the batch axis across the processes, 2 devices each",
}
# Slow: 2x2 also splits the batch axis across the processes.
SLOW_CASES = ("4x1:global",)
DISTILLER_CASE = "2x2:distiller"
SEARCH_CASE = "2x2:search"


@functools.cache
def _single_device_run():
    return equivalence.run("bert", "adam")


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory, runs_slow):
    """The cases, run once by 2 processes of 2 virtual CPUs each (one launch:
    each launch pays TensorFlow's start-up in both processes)."""
    directory = tmp_path_factory.mktemp("two_processes")
    cases = [case for case in CASES if runs_slow or case not in SLOW_CASES]
    run = launch(
        "--virtual-devices",
        "2",
        "--",
        sys.executable,
        FIT_SCRIPT,
        ",".join([*cases, DISTILLER_CASE, SEARCH_CASE]),
        str(directory),
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reports = {}
    for line in run.stdout.splitlines():
        prefix, _, rest = line.partition("] ")
        if rest.startswith("{"):
            report = json.loads(rest)
            reports[report["case"], int(prefix.lstrip("["))] = report
    return reports, directory


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[pytest.mark.slow] * (c in SLOW_CASES)) for c in CASES],
)
def test_fit_on_two_processes_matches_one_device(
    virtual_devices, make_mesh, two_process_runs, case
):
    reports, directory = two_process_runs
    expected = _single_device_run()
    assert expected["history"]["loss"][1] != expected["history"]["loss"][0]
    batch = int(case.split("x")[0])
    # A process reads the rows of the batch coordinates its devices hold.
    rows = 16 * max(1, batch // 2) // batch
    for process in (0, 1):
        report = reports[case, process]
        # Forward, gradients, the fit history and the final weights, in each
        # process; `predict` returns the whole batch everywhere.
        equivalence.assert_same_run(report, expected)
        assert report["rows_read"] == rows
        # The same rows through Keras's API (`tf_mp.enable_keras_distribution`).
        assert report["keras_rows_read"] == rows

    # One complete file, no temporary left beside it; it loads on one device
    # and on a single-process mesh of another shape.
    weights = directory / f"{case}.weights.h5"
    assert not [p for p in os.listdir(directory) if p.startswith(".tmp")]
    trained = reports[case, 0]["trained_predictions"]
    make_mesh((1, 2))  # Skips without the devices.
    for model in _models_to_load():
        model.load_weights(weights)
        np.testing.assert_allclose(
            model.predict(expected["x"], verbose=0), trained, rtol=1e-5, atol=1e-6
        )


@functools.cache
def _models_to_load():
    """A BERT classifier on one device and one on a 1x2 mesh, which every
    case's saved weights are loaded into (each `predict` is traced once)."""
    mesh = tf_mp.Mesh({"batch": 1, "model": 2})
    with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
        sharded = tiny_models.bert_classifier()
    return tiny_models.bert_classifier(), sharded


def test_distiller_with_a_sharded_teacher_on_two_processes(two_process_runs):
    from tests.distillation import distributed_distiller_test as recipe

    reports, _ = two_process_runs
    history, weights = recipe._reference(recipe._teacher(), **recipe.KWARGS)
    for process in (0, 1):
        report = reports[DISTILLER_CASE, process]
        recipe.assert_same_distillation(
            (report["history"], report["weights"]), (history, weights)
        )


def test_student_search_on_two_processes(two_process_runs, tmp_path):
    from tests.parallel import search_case

    reports, directory = two_process_runs
    trials = [reports[SEARCH_CASE, process]["trials"] for process in (0, 1)]
    # Both processes ran the same trials and agreed on the latency figures
    # (process 0's); the scores are those of the same search on one device
    # (which a search on a one-process mesh equals: `hypermodel_test.py`).
    assert trials[0] == trials[1]
    expected = search_case.run_search(None, tmp_path)
    assert [t["status"] for t in trials[0]] == ["COMPLETED"] * 2
    for got, want in zip(trials[0], expected):
        assert got["hyperparameters"] == want["hyperparameters"]
        np.testing.assert_allclose(got["val_accuracy"], want["val_accuracy"], atol=1e-6)
    # Only process 0 wrote the search directory.
    assert os.path.isdir(directory / SEARCH_CASE / "search")


KILL_SCRIPT = os.path.join(os.path.dirname(__file__), "multi_process_kill_script.py")
EXIT_SCRIPT = os.path.join(os.path.dirname(__file__), "multi_process_exit_script.py")


def _start_two_processes(script, **env):
    """`script` as processes 0 and 1 of one cluster, without the launcher."""
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    return [
        subprocess.Popen(
            [sys.executable, script],
            env={
                **os.environ,
                **env,
                "PYTHONPATH": launching.REPO,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                processes.JOB_ADDRESSES: addresses,
                processes.PROCESS_ID: str(index),
                processes.VIRTUAL_DEVICES: "2",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]


def _kill_all(workers):
    for worker in workers:
        worker.kill()
        worker.wait()


def test_a_killed_process_stops_the_survivor_with_a_clear_error():
    workers = _start_two_processes(KILL_SCRIPT)
    try:
        assert workers[1].wait(timeout=240) == -signal.SIGKILL
        killed_at = time.monotonic()
        _, errors = workers[0].communicate(timeout=90)
        assert time.monotonic() - killed_at < 60
        assert workers[0].returncode != 0
        assert "Lost contact with process 1 of the mesh" in errors, errors[-3000:]
    finally:
        _kill_all(workers)


def test_a_process_that_finished_waits_at_exit_for_the_others(tmp_path):
    """Process 1, paused for 1.5 s every 0.3 s, is often still reading process
    0's part of the last gather when process 0 is done: had process 0 left
    then, process 1 would fail, "Connection refused" at process 0's address
    (3 runs in 3 before processes waited at exit; `tf-mp train` on two
    processes failed so, in a relayout while saving, under CI's load)."""
    pid_file = str(tmp_path / "pid")
    workers = _start_two_processes(EXIT_SCRIPT, TF_MP_TEST_PID_FILE=pid_file)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(pid_file + "1"):
            assert workers[1].poll() is None, workers[1].communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.1)  # Written.
        with open(pid_file + "1") as f:
            paused = int(f.read())
        while workers[1].poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            os.kill(paused, signal.SIGSTOP)
            time.sleep(1.5)
            os.kill(paused, signal.SIGCONT)
        copied = []
        for index, worker in enumerate(workers):
            out, errors = worker.communicate(timeout=60)
            assert worker.returncode == 0, errors[-3000:]
            assert out.split()[:3] == ["process", str(index), "copied"]
            copied.append(out.split()[3])
        assert copied[0] == copied[1] != "0"
    finally:
        _kill_all(workers)
