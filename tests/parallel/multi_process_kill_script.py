"""Run by `processes_test.py` as 2 processes (without the launcher, which would
stop the survivor itself): process 1 is SIGKILLed during `fit`."""

import os
import signal
import threading

import tf_mp

tf_mp.initialize()

from tests import tiny_models  # noqa: E402 (after initialize)

mesh = tf_mp.Mesh({"batch": 2, "model": 2})
with tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh)).scope():
    model = tiny_models.bert_classifier()
x, y = tiny_models.bert_data()
model.compile(optimizer="adam", loss=tiny_models.loss())
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
print("trained one epoch", flush=True)
if tf_mp.parallel.process_id() == 1:
    threading.Timer(2, os.kill, (os.getpid(), signal.SIGKILL)).start()
model.fit(x, y, batch_size=16, epochs=100_000, verbose=0)
