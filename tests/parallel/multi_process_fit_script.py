"""Run by `processes_test.py` under `tf-mp launch`: the equivalence run of a tiny
BERT classifier on meshes over all processes. Prints one JSON line per case.

Usage: multi_process_fit_script.py CASES DIRECTORY. CASES is comma-separated
`BATCHxMODEL:INPUTS`, INPUTS `global` (every process passes the whole batches)
or `per-process` (a dataset through `distribute_dataset`), e.g.
`2x2:global,4x1:per-process`; or `BATCHxMODEL:distiller`, the sharded-teacher
distillation of `tests/distillation/distributed_distiller_test.py`; or
`BATCHxMODEL:search`, the student search of `search_case.py` (its directory
under DIRECTORY/CASE). Each case's trained weights are saved (every
process calls `save_weights`) to DIRECTORY/CASE.weights.h5.
"""

import json
import os
import sys

import numpy as np

import tf_mp

tf_mp.initialize()

import tensorflow as tf  # noqa: E402 (after initialize)

from tests import tiny_models  # noqa: E402
from tests.parallel import equivalence  # noqa: E402


def lists(values):
    return [np.asarray(v).tolist() for v in values]


def run_case(case, directory):
    shape, inputs = case.split(":")
    batch, model = (int(n) for n in shape.split("x"))
    mesh = tf_mp.Mesh({"batch": batch, "model": model})
    if inputs == "distiller":
        return distil(case, mesh)
    if inputs == "search":
        from tests.parallel import search_case

        trials = search_case.run_search(mesh, os.path.join(directory, case))
        return {
            "case": case,
            "process_id": tf_mp.parallel.process_id(),
            "trials": trials,
        }
    result = equivalence.run(
        "bert", "adam", mesh, per_process_dataset=inputs == "per-process"
    )
    trained = result["model"].predict(result["x"], verbose=0)
    result["model"].save_weights(os.path.join(directory, f"{case}.weights.h5"))
    # How many rows of each 16-row batch this process reads from a distributed
    # dataset.
    x, _ = tiny_models.bert_data()
    batches = tf.data.Dataset.from_tensor_slices(x["token_ids"]).batch(
        16, drop_remainder=True
    )
    local = tf_mp.ModelParallel(mesh).distribute_dataset(batches)
    return {
        "case": case,
        "process_id": tf_mp.parallel.process_id(),
        "predictions": np.asarray(result["predictions"]).tolist(),
        "gradients": lists(result["gradients"]),
        "history": {k: [float(v) for v in vs] for k, vs in result["history"].items()},
        "weights": lists(result["weights"]),
        "trained_predictions": trained.tolist(),
        "rows_read": int(next(iter(local)).shape[0]),
        "keras_rows_read": keras_rows_read(mesh, batches),
    }


def keras_rows_read(mesh, batches):
    """The rows of a batch this process reads through Keras's own
    `Distribution.distribute_dataset`, with tf_mp's bridge on."""
    import keras

    tf_mp.enable_keras_distribution()
    try:
        device_mesh = keras.distribution.DeviceMesh(
            tuple(mesh.shape.values()),
            list(mesh.shape),
            [f"cpu:{i}" for i in range(mesh.size)],
        )
        distribution = keras.distribution.ModelParallel(
            layout_map=keras.distribution.LayoutMap(device_mesh)
        )
        return int(next(iter(distribution.distribute_dataset(batches))).shape[0])
    finally:
        tf_mp.disable_keras_distribution()


def distil(case, mesh):
    from tests.distillation import distributed_distiller_test as recipe

    teacher = recipe._teacher()
    with tf_mp.ModelParallel(mesh).scope():
        distiller = tf_mp.Distiller(
            recipe._sharded_copy(teacher), recipe._student(), **recipe.KWARGS
        )
    history, weights = recipe._train(distiller)
    return {
        "case": case,
        "process_id": tf_mp.parallel.process_id(),
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "weights": lists(weights),
    }


for case in sys.argv[1].split(","):
    print(json.dumps(run_case(case, sys.argv[2])), flush=True)
