"""Run by `processes_test.py` as 2 processes, process 1 paused again and again
from outside: both copy a partitioned model off the mesh (gathers, as saving
does) and exit right after, so process 0 can finish while process 1 is still
gathering."""

import os

import tf_mp

tf_mp.initialize()

from tests import tiny_models  # noqa: E402 (after initialize)

with open(
    os.environ["TF_MP_TEST_PID_FILE"] + str(tf_mp.parallel.process_id()), "w"
) as f:
    f.write(str(os.getpid()))
mesh = tf_mp.Mesh({"batch": 2, "model": 2})
with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
    model = tiny_models.partitioned_bert_with_dropout()
for _ in range(3):
    weights = tf_mp.models.unpartition(model).get_weights()
print(f"process {tf_mp.parallel.process_id()} copied {len(weights)}", flush=True)
