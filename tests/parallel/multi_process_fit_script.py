"""Run by `processes_test.py` under `tf-mp launch`: the equivalence run of a tiny
BERT classifier on a mesh over all processes. Prints one JSON line.

Usage: multi_process_fit_script.py BATCH MODEL [WEIGHTS_PATH]; with a path, the
trained model's weights are saved there (every process calls `save_weights`).
"""

import json
import sys

import numpy as np

import tf_mp

tf_mp.initialize()

from tests.parallel import equivalence  # noqa: E402 (after initialize)

batch, model = (int(n) for n in sys.argv[1:3])
mesh = tf_mp.Mesh({"batch": batch, "model": model})
result = equivalence.run("bert", "adam", mesh)
trained = result["model"].predict(result["x"], verbose=0)
if len(sys.argv) > 3:
    result["model"].save_weights(sys.argv[3])


def lists(values):
    return [np.asarray(v).tolist() for v in values]


print(
    json.dumps(
        {
            "process_id": tf_mp.parallel.process_id(),
            "predictions": np.asarray(result["predictions"]).tolist(),
            "gradients": lists(result["gradients"]),
            "history": {
                k: [float(v) for v in vs] for k, vs in result["history"].items()
            },
            "weights": lists(result["weights"]),
            "trained_predictions": trained.tolist(),
        }
    ),
    flush=True,
)
