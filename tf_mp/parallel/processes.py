"""Several processes, one mesh: `initialize`, as `keras.distribution.initialize`.

Same arguments, meanings and environment variables as Keras's, so a launch
script written for Keras on JAX works unchanged; the engine is DTensor's
multi-client mode (`dtensor/processes.py`).
"""

import atexit
import os
import shutil
import tempfile

import tensorflow as tf

from tf_mp.parallel import devices as devices_lib
from tf_mp.parallel.dtensor import processes as _engine

JOB_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
# Set by `tf-mp launch --virtual-devices N`: split each process's CPU first.
VIRTUAL_DEVICES = "TF_MP_VIRTUAL_DEVICES"
# Multi-host TPU slices on GKE set these in every host's container.
TPU_WORKER_HOSTNAMES = "TPU_WORKER_HOSTNAMES"
TPU_WORKER_ID = "TPU_WORKER_ID"
# The port of TensorFlow's cluster server on each TPU host.
TPU_PORT = "TF_MP_TPU_PORT"
DEFAULT_TPU_PORT = 9870


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Joins this process to a cluster of processes that share one mesh.

    Call it at the top of the script in every process, before anything runs
    a TensorFlow op; afterwards `tf_mp.Mesh(...)` spans the devices of all
    processes. Arguments left `None` are read from Keras's environment
    variables `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`
    (what `tf-mp launch` sets). Where none of these is set, on a multi-host
    TPU slice whose hosts are listed in `TPU_WORKER_HOSTNAMES` with this
    host's index in `TPU_WORKER_ID` (as GKE sets them), the processes are the
    slice's hosts, each serving on port `TF_MP_TPU_PORT` (default 9870).
    With one process (or nothing set) it changes nothing, so the same script
    runs alone too.

    If `TF_MP_VIRTUAL_DEVICES=N` is set, each process first splits its CPU
    into N logical devices (`tf_mp.configure_virtual_devices(N)`).

    Args:
        job_addresses: str, comma-separated `host:port` addresses of all the
            processes, in process order (or a list of them). Unlike on JAX,
            where the coordinator's address is enough, TensorFlow needs every
            process's address: each process serves TensorFlow's cluster gRPC
            on its port. That server listens on all network interfaces and
            has no authentication: use addresses on a private network.
        num_processes: int, the number of processes. Defaults to the number
            of addresses.
        process_id: int in `[0, num_processes)`, this process's position in
            `job_addresses`. Process 0 leads the cluster.

    Example, two processes on one machine (or run `tf-mp launch`):

    ```python
    # In process 0; process 1 passes process_id=1.
    tf_mp.initialize("127.0.0.1:9870,127.0.0.1:9871", 2, 0)
    mesh = tf_mp.Mesh({"batch": 2, "model": 2})  # 2 devices of each process
    ```
    """
    addresses, count, index = _resolve(job_addresses, num_processes, process_id)
    virtual = _int_from_env(VIRTUAL_DEVICES, None)
    if virtual is not None:
        devices_lib.configure_virtual_devices(virtual)
    if count == 1:
        return
    started = _engine.started()
    if started is not None:
        if started[:2] == (addresses, index):
            return
        raise ValueError(
            "`tf_mp.initialize` already joined this process to "
            f"job_addresses={','.join(started[0])!r} as process_id={started[1]}; "
            "it cannot join another cluster. Received: "
            f"job_addresses={','.join(addresses)!r}, process_id={index}"
        )
    _engine.start(addresses, index, _accelerator_type())


def num_processes():
    """The number of processes sharing meshes (1 unless `initialize` joined a
    cluster)."""
    return _engine.num_processes()


def process_id():
    """This process's index among them (0 in a single process)."""
    return _engine.process_id()


def leaving_after_an_error():
    """Call it when this process is about to exit after an error it handled.

    At exit, a process of a cluster waits until every process has finished
    (so that none leaves while another still reads its part of a
    collective); after an error the others may be waiting for this one
    instead, so it leaves at once. An uncaught exception does this by itself.
    """
    _engine.leaving_after_an_error()


def from_process_0(values):
    """`values` (a list of floats) as process 0 measured them, in every
    process: for decisions all processes must take alike (a student rejected
    for its latency). Every process must call it, in the same order."""
    return _engine.from_process_0(values)


def own_directory(path):
    """`path` in process 0; in the others, a scratch directory removed at exit.

    With several processes running the same program, each writes what process
    0 writes (saving a model is a collective, so all must run it), and only
    process 0's files should land where the user looks.
    """
    if _engine.process_id() == 0:
        return path
    scratch = tempfile.mkdtemp(prefix=f"tf_mp_process{_engine.process_id()}_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def _resolve(job_addresses, num_processes, process_id):
    if job_addresses is None:
        job_addresses = os.environ.get(JOB_ADDRESSES) or None
    if num_processes is None:
        num_processes = _int_from_env(NUM_PROCESSES, None)
    if process_id is None:
        process_id = _int_from_env(PROCESS_ID, None)
    if job_addresses is None and num_processes is None:
        job_addresses, tpu_worker = _tpu_slice_addresses()
        if process_id is None:
            process_id = tpu_worker
    addresses = _parse_addresses(job_addresses)
    if num_processes is None:
        num_processes = len(addresses) if addresses else 1
    if isinstance(num_processes, bool) or not isinstance(num_processes, int):
        raise TypeError(
            f"`num_processes` must be an int. Received: num_processes={num_processes!r}"
        )
    if num_processes < 1:
        raise ValueError(
            f"`num_processes` must be >= 1. Received: num_processes={num_processes}"
        )
    if addresses and len(addresses) != num_processes:
        hint = ""
        if len(addresses) == 1:
            hint = (
                " On TensorFlow every process needs its own address (JAX needs "
                "only the coordinator's): list all of them, in process order."
            )
        raise ValueError(
            f"`job_addresses` has {len(addresses)} address(es) but "
            f"num_processes={num_processes}. Received: "
            f"job_addresses={','.join(addresses)!r}.{hint}"
        )
    if num_processes == 1:
        if process_id not in (None, 0):
            _raise_process_id(process_id, num_processes)
        return addresses, 1, 0
    if not addresses:
        raise ValueError(
            f"With num_processes={num_processes}, `job_addresses` must list the "
            "`host:port` of every process (or set "
            f"{JOB_ADDRESSES}). Received: job_addresses=None"
        )
    if process_id is None:
        raise ValueError(
            f"With num_processes={num_processes}, `process_id` must say which "
            f"process this is (or set {PROCESS_ID}). Received: process_id=None"
        )
    if (
        isinstance(process_id, bool)
        or not isinstance(process_id, int)
        or not 0 <= process_id < num_processes
    ):
        _raise_process_id(process_id, num_processes)
    return addresses, num_processes, process_id


def _tpu_slice_addresses():
    """`(job_addresses, process_id)` of a multi-host TPU slice from
    `TPU_WORKER_HOSTNAMES` / `TPU_WORKER_ID`, or `(None, None)`."""
    hosts = [
        host.strip()
        for host in os.environ.get(TPU_WORKER_HOSTNAMES, "").split(",")
        if host.strip()
    ]
    if len(hosts) < 2:
        return None, None
    port = _int_from_env(TPU_PORT, DEFAULT_TPU_PORT)
    return ",".join(f"{host}:{port}" for host in hosts), _int_from_env(
        TPU_WORKER_ID, None
    )


def _raise_process_id(process_id, num_processes):
    raise ValueError(
        f"`process_id` must be an int in [0, {num_processes}) (num_processes="
        f"{num_processes}). Received: process_id={process_id!r}"
    )


def _parse_addresses(job_addresses):
    if job_addresses is None:
        return ()
    items = (
        job_addresses.split(",") if isinstance(job_addresses, str) else job_addresses
    )
    addresses = tuple(str(item).strip() for item in items)
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                "`job_addresses` must be comma-separated `host:port` items, "
                f"one per process. Received: job_addresses={job_addresses!r} "
                f"(bad item {address!r})"
            )
    if len(set(addresses)) != len(addresses):
        raise ValueError(
            "`job_addresses` lists an address twice; each process needs its own "
            f"port. Received: job_addresses={job_addresses!r}"
        )
    return addresses


def _int_from_env(name, default):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"The environment variable {name} must be an int. Received: {name}={text!r}"
        ) from None


def _accelerator_type():
    # Physical devices: listing logical ones would initialise TensorFlow.
    for device_type in ("TPU", "GPU"):
        if tf.config.list_physical_devices(device_type):
            return device_type
    return "CPU"
