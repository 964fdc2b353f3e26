"""tf_mp's state lives in one module, and nothing process-wide happens without
an explicit call."""

import ast
import os
import subprocess
import sys

from tests.import_graph_test import _modules

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_only_the_state_module_rebinds_module_globals():
    rebinding = {}
    for name, path in _modules().items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        names = [n for node in ast.walk(tree) if isinstance(node, ast.Global)
                 for n in node.names]  # fmt: skip
        if names:
            rebinding[name] = sorted(names)
    assert rebinding == {"tf_mp.parallel.state": ["_current"]}


def test_import_and_keras_off_mesh_set_nothing_process_wide():
    script = """
import keras
import tf_mp
from keras.src.backend.tensorflow import core
from tf_mp.parallel import state

tf_mp.configure_virtual_devices(2)
original = core.Variable._initialize
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile("adam", "mse")
model.fit(keras.ops.ones((4, 3)), keras.ops.ones((4, 2)), verbose=0)
assert state.process() == state.Process(), state.process()
assert core.Variable._initialize is original
assert not tf_mp.parallel.keras_distribution_enabled()
mesh = tf_mp.Mesh({"batch": 1, "model": 2})
with tf_mp.ModelParallel(mesh, tf_mp.LayoutMap(mesh)).scope():
    pass
assert state.process().patched and core.Variable._initialize is not original
print("ok")
"""
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and run.stdout.split() == ["ok"], run.stderr[-3000:]
