"""Run by `processes_test.py` under `tf-mp launch`: one mesh over two processes.

Prints one JSON line: what this process sees of the mesh, and a sharded
computation's result, which must be the same in every process.
"""

import json

import numpy as np
import tensorflow as tf
from tensorflow.experimental import dtensor

import tf_mp

tf_mp.initialize()
mesh = tf_mp.Mesh({"batch": 2, "model": 2})
x = np.arange(32, dtype="float32").reshape(8, 4)
w = np.arange(16, dtype="float32").reshape(4, 4) / 10


@tf.function
def forward(x, w):
    # Rows split over "batch" (across the processes), columns of w over "model".
    x = dtensor.relayout(
        x, dtensor.Layout(["batch", dtensor.UNSHARDED], mesh.dtensor_mesh)
    )
    w = dtensor.relayout(
        w, dtensor.Layout([dtensor.UNSHARDED, "model"], mesh.dtensor_mesh)
    )
    y = tf.matmul(x, w)
    return dtensor.relayout(y, dtensor.Layout.replicated(mesh.dtensor_mesh, 2))


replicated = dtensor.Layout.replicated(mesh.dtensor_mesh, 2)
y = forward(dtensor.copy_to_mesh(x, replicated), dtensor.copy_to_mesh(w, replicated))
print(
    json.dumps(
        {
            "process_id": tf_mp.parallel.process_id(),
            "num_processes": mesh.num_processes,
            "local_devices": list(mesh.local_devices),
            "devices": list(mesh.devices),
            "result": np.asarray(dtensor.unpack(y)[0]).tolist(),
            "expected": (x @ w).tolist(),
        }
    ),
    flush=True,
)
