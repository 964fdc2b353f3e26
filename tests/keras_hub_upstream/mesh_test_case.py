"""keras-hub's `TestCase`, run off-mesh or with every test inside a mesh scope.

keras-hub's upstream tests adapted in this folder construct tf_mp's classes
where they construct keras-hub's, and run three times: with no mesh, and with
the whole test (setUp included) inside `ModelParallel(...).scope()` on meshes
(1, 2) and (2, 2) of logical CPUs. Everything they build is then sharded, called
eagerly, fit and saved as keras-hub's own suite does it.

The (1, 2) classes are `slow`: (2, 2) runs the same tests with the model axis
split the same two ways, plus the batch axis, and the equivalence matrix checks
(1, 2) itself (`tests/parallel/model_parallel_equivalence_test.py`). Where a
module says so (`slow_off_mesh`), the run with no mesh is slow too:
`tests/models/partition_test.py` checks every family's partitioned model off a
mesh against the original.
"""

import math

import pytest
import tensorflow as tf
from keras_hub.src.tests.test_case import TestCase

import tf_mp

MESH_SHAPES = ((1, 2), (2, 2))
SLOW_MESH_SHAPES = ((1, 2),)


class MeshTestCase(TestCase):
    """`mesh_shape = None`: no mesh; `(batch, model)`: a mesh scope."""

    mesh_shape = None

    def layout_map(self, mesh):
        """The layout map of the scope; `None` lets tf_mp layers shard
        themselves and replicates the rest."""
        return None

    def setUp(self):
        super().setUp()
        if self.mesh_shape is None:
            return
        needed = math.prod(self.mesh_shape)
        available = len(tf.config.list_logical_devices("CPU"))
        if available < needed:
            self.skipTest(f"needs {needed} logical CPU devices, {available} exist")
        mesh = tf_mp.Mesh(dict(zip(("batch", "model"), self.mesh_shape)))
        scope = tf_mp.ModelParallel(mesh, self.layout_map(mesh)).scope()
        scope.__enter__()
        self.addCleanup(scope.__exit__, None, None, None)

    def skip_on_mesh(self, reason):
        if self.mesh_shape is not None:
            self.skipTest(f"on a mesh: {reason}")


def on_meshes(test_class, namespace, shapes=MESH_SHAPES, slow_off_mesh=False):
    """Adds `<Name>Mesh1x2` and `<Name>Mesh2x2` subclasses of `test_class`
    (or one per shape of `shapes`) to a test module's `namespace` (pytest
    collects them there). With `slow_off_mesh`, the class of the same name that
    replaces `test_class` there (the run with no mesh) is marked `slow`."""
    if slow_off_mesh:
        off_mesh = type(test_class.__name__, (test_class,), {})
        namespace[test_class.__name__] = pytest.mark.slow(off_mesh)
    for shape in shapes:
        suffix = "Mesh" + "x".join(map(str, shape))
        name = test_class.__name__.replace("Test", suffix + "Test")
        test_case = type(name, (test_class,), {"mesh_shape": shape})
        if shape in SLOW_MESH_SHAPES:
            test_case = pytest.mark.slow(test_case)
        namespace[name] = test_case
