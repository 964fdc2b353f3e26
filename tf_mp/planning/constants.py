"""The cost model's machine constants, measured once per machine and device set.

* `flops_per_s`: what one device computes per second while all of them run a
  float32 matmul at once (virtual CPUs share the cores, so this is what each
  gets when all work);
* `latency_s`: one all-reduce of 16 floats over all the devices;
* `bytes_per_s`: the bandwidth a ring all-reduce of 4 MiB reaches, past that
  latency.

They are kept in `$TF_MP_CACHE_DIR` (default `~/.cache/tf_mp`)
`/plan_constants.json`, one entry per device type, count and TensorFlow
version, written atomically (two processes measuring at once: the last
writer's entry stands, and a lost one is measured again).
"""

import json
import os

import tensorflow as tf

from tf_mp.parallel import timing
from tf_mp.parallel.mesh import Mesh
from tf_mp.utils.files import write_json

MATMUL_SIZE = 256
SMALL, LARGE = 16, 1 << 20  # Float32 elements of the two timed all-reduces.
KEYS = ("flops_per_s", "latency_s", "bytes_per_s")


def cache_path():
    root = os.environ.get("TF_MP_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tf_mp"
    )
    return os.path.join(root, "plan_constants.json")


def machine_constants(devices, device_type, refresh=False):
    """`{flops_per_s, latency_s, bytes_per_s}` of `devices` (names), measured
    the first time and read from the cache after."""
    key = f"{device_type}:{len(devices)}:tf{tf.__version__}"
    path = cache_path()
    cached = _read(path)
    if not refresh and key in cached:
        return cached[key]
    constants = _measure(devices)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, {**_read(path), key: constants})
    return constants


def check_constants(constants):
    """`constants` given by a caller, checked."""
    if not isinstance(constants, dict) or set(KEYS) - set(constants):
        raise ValueError(
            f"`constants` must be a dict with the keys {KEYS}. "
            f"Received: constants={constants!r}"
        )
    for name in KEYS:
        value = constants[name]
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(
                f"`constants[{name!r}]` must be a number >= 0. Received: {value!r}"
            )
    return {name: float(constants[name]) for name in KEYS}


def _read(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def _measure(devices):
    mesh = Mesh({"devices": len(devices)}, devices=list(devices))
    seconds = timing.matmul_seconds(mesh, MATMUL_SIZE)
    constants = {"flops_per_s": 2 * MATMUL_SIZE**3 / seconds}
    if len(devices) == 1:
        return {**constants, "latency_s": 0.0, "bytes_per_s": 1e30}
    small = timing.all_reduce_seconds(mesh, SMALL)
    large = timing.all_reduce_seconds(mesh, LARGE)
    n = len(devices)
    ring = 2 * (n - 1) / n
    return {
        **constants,
        "latency_s": small,
        "bytes_per_s": 4 * LARGE * ring / max(large - small, 1e-9),
    }
