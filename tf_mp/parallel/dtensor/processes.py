"""DTensor's multi-client mode: one mesh over the devices of several processes.

Each process (a DTensor "client") runs a TensorFlow gRPC server on its own
address from `job_addresses`; DTensor's coordination service, led by process 0,
tells every process which devices the others have. TensorFlow's cluster gRPC
server listens on all interfaces whatever host the address names, and it has
no authentication: its ports belong on a private network.
"""

import atexit
import contextlib
import os
import re
import sys

import numpy as np
import tensorflow as tf
from tensorflow.experimental import dtensor
from tensorflow.python.eager import context

from tf_mp.parallel import state

JOB_NAME = "worker"
# How long a process that finished waits at exit for the others to finish.
EXIT_TIMEOUT_MS = 30 * 60 * 1000


def start(job_addresses, process_id, device_type):
    """Joins the cluster of `job_addresses` as `process_id` (before TensorFlow
    initialises its devices)."""
    settings = dict(
        DTENSOR_JOBS=",".join(job_addresses),
        DTENSOR_CLIENT_ID=str(process_id),
        DTENSOR_NUM_CLIENTS=str(len(job_addresses)),
        DTENSOR_JOB_NAME=JOB_NAME,
    )
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        dtensor.initialize_accelerator_system(device_type)
    except ValueError as error:
        # DTensor reads these at every call (device names use the job name).
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if "already been initialized" in str(error):
            raise RuntimeError(
                "TensorFlow has already initialised its devices in this process, "
                "so it cannot join a cluster any more: something ran a "
                "TensorFlow op, listed TensorFlow's logical devices or made a "
                "`tf_mp.Mesh` first. Call `tf_mp.initialize()` before that, at "
                "the top of your script (after `tf_mp.configure_virtual_devices`"
                ", which starts nothing). "
                f"(TensorFlow: {error})"
            ) from None
        raise
    state.process().cluster = (tuple(job_addresses), process_id, device_type)
    atexit.register(_wait_for_the_others_at_exit)


def started():
    """`(job_addresses, process_id, device_type)` after `start`, else `None`."""
    return state.process().cluster


def num_processes():
    cluster = state.process().cluster
    return len(cluster[0]) if cluster else 1


def process_id():
    cluster = state.process().cluster
    return cluster[1] if cluster else 0


def create_global_mesh(axis_names, sizes, local_device_names, device_type):
    """A mesh over `local_device_names` of every process (the same count in
    each), laid out in process order: process p holds the p-th block of the
    flattened mesh."""
    return dtensor.create_distributed_mesh(
        list(zip(axis_names, sizes)),
        local_devices=list(local_device_names),
        device_type=device_type,
    )


def spans_processes(mesh):
    """Whether a `dtensor.Mesh` has devices in other processes too."""
    return len(mesh.local_device_ids()) < mesh.size


def barrier(mesh):
    """Returns once every process of `mesh` got here (an all-gather over the
    mesh, which each process joins); at once if the mesh is all local."""
    if not spans_processes(mesh):
        return
    shape = [mesh.dim_size(name) for name in mesh.dim_names]
    one_per_device = dtensor.call_with_layout(
        tf.ones, dtensor.Layout(list(mesh.dim_names), mesh), shape
    )
    gathered = dtensor.relayout(
        one_per_device, dtensor.Layout.replicated(mesh, len(shape))
    )
    dtensor.unpack(gathered)[0].numpy()


def leaving_after_an_error():
    """This process is about to exit after an error: it does not wait for the
    others at exit (they may be waiting for it in a collective)."""
    state.process().failed = True


def _wait_for_the_others_at_exit():
    """Registered by `start`: a process leaves only once every process has
    finished its work. A collective can end in one process while another
    still reads that process's part of it (each pulls the parts it needs), so
    a process that exited right after the last collective of a program (a
    relayout when saving) failed the others' with "Connection refused".
    After an uncaught exception or `leaving_after_an_error` it does not
    wait; an error here (another process already gone) changes nothing, this
    process's work being done."""
    if state.process().failed or getattr(sys, "last_value", None) is not None:
        return
    try:
        context.context().wait_at_barrier("tf_mp_exit", EXIT_TIMEOUT_MS)
    except tf.errors.OpError:
        pass


@contextlib.contextmanager
def reporting_lost_processes():
    """Turns TensorFlow's error for a collective whose peer vanished into one
    that names the lost process (TensorFlow names only its task)."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if state.process().cluster is None:
            raise
        tasks = sorted(
            {
                int(t)
                for t in re.findall(
                    rf"/job:{JOB_NAME}/replica:0/task:(\d+)", str(error)
                )
            }
            - {process_id()}
        )
        who = f"process {', '.join(map(str, tasks))}" if tasks else "another process"
        raise RuntimeError(
            f"Lost contact with {who} of the mesh "
            f"({num_processes()} processes, this is process {process_id()}): it "
            "stopped or its host is unreachable, so the steps that need it cannot "
            "finish. Restart all processes (from the last checkpoint). "
            f"TensorFlow: {str(error).splitlines()[0]}"
        ) from error


def from_process_0(values):
    """`values` (floats) as process 0 has them, in every process: a sum over a
    mesh of one CPU per process, to which only process 0 contributes."""
    process = state.process()
    if process.cluster is None:
        return [float(v) for v in values]
    if process.exchange_mesh is None:
        process.exchange_mesh = dtensor.create_distributed_mesh(
            [("process", num_processes())], local_devices=["CPU:0"], device_type="CPU"
        )
    mesh = process.exchange_mesh
    row = np.zeros([1, len(values)], "float64")
    if process_id() == 0:
        row[0] = values
    rows = dtensor.pack(
        [tf.constant(row)], dtensor.Layout(["process", dtensor.UNSHARDED], mesh)
    )

    @tf.function
    def total(rows):
        return dtensor.relayout(
            tf.reduce_sum(rows, axis=0), dtensor.Layout.replicated(mesh, 1)
        )

    return [float(v) for v in dtensor.unpack(total(rows))[0].numpy()]
