"""DTensor flags tf_mp sets before DTensor creates its device."""

import os
import warnings

from tensorflow.dtensor.python import api as _dtensor_api

# DTensor's all-reduce combining pass reorders collectives across the
# read-modify-write of Adam's moments: a gradient all-reduced over the batch axis
# then feeds a stale read of `m` / `v`, and weights are left unchanged or updated
# as if v = 0. Measured on TF 2.21 / Keras 3.15: a Dense layer on a (2, 1) mesh
# missed its whole first Adam step with the pass on, and matched single-device
# exactly with it off. DTensor reads the flag once, when its device is created
# (the first DTensor call of the process, `is_dtensor` included), so it is set
# when this package is imported.
COMBINE_ALL_REDUCES = "DTENSOR_ENABLE_COMBINE_ALL_REDUCES_OPTIMIZATION"


def disable_all_reduce_combining():
    """Sets the flag off, or warns when it is too late or set on by the user."""
    preset = os.environ.get(COMBINE_ALL_REDUCES)
    device_exists = _dtensor_api._dtensor_singleton is not None
    if preset is None:
        os.environ[COMBINE_ALL_REDUCES] = "0"
    if preset is not None and preset.strip().lower() not in ("0", "false"):
        reason = f"{COMBINE_ALL_REDUCES}={preset} is set"
    elif device_exists and preset is None:
        reason = "DTensor was initialised before tf_mp was imported"
    else:
        return
    warnings.warn(
        f"{reason}, so DTensor's all-reduce combining is on. It reorders "
        "optimizer updates (Adam's moments are read before they are written): "
        "training on a batch-sharded mesh can silently differ from single-device. "
        f"Import tf_mp before any DTensor call, and leave {COMBINE_ALL_REDUCES} "
        "unset or 0.",
        stacklevel=3,
    )
