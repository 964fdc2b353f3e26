"""Run by `processes_test.py` as each process of a 2-process launch: the two
set-up calls in the order `sys.argv[1]` names, then a mesh over both."""

import json
import sys

import tf_mp

if sys.argv[1] == "configure_first":
    tf_mp.configure_virtual_devices(2)
    tf_mp.initialize()
else:
    tf_mp.initialize()
    try:
        tf_mp.configure_virtual_devices(2)
    except RuntimeError as error:
        print(json.dumps({"error": str(error)}))
        sys.exit(0)
mesh = tf_mp.Mesh({"batch": 2, "model": 2})
print(json.dumps({"local_devices": len(mesh.dtensor_mesh.local_devices())}))
