"""DTensor flags tf_mp sets before DTensor creates its device."""

import os
import sys
import warnings

# DTensor's all-reduce combining pass merges independent all-reduces (on a
# batch-split mesh, one per gradient) into one. Separate, a tiny BERT's ~45
# gradient all-reduces cost more than its whole single-device step on CPU
# (`benchmarks/bench_collectives.py`).
# The pass used to reorder optimizer updates (the "Adam trap", see
# `pending_writes.py`); tf_mp's steps and Keras's optimizers now defer their writes
# to mesh variables, which makes it safe, so it is on, as in DTensor's default.
# `TF_MP_GROUP_ALL_REDUCES=0` turns it off. DTensor reads its flag once, when
# its device is created (the first DTensor call of the process), so it is set
# when this package is imported; a value the user set for DTensor's own flag
# is kept.
COMBINE_ALL_REDUCES = "DTENSOR_ENABLE_COMBINE_ALL_REDUCES_OPTIMIZATION"
# DTensor moves a mesh axis from one tensor dimension to another (a relayout
# from `(..., "model", None)` to `(..., None, "model")`) with one all-to-all.
# On TensorFlow 2.21 that all-to-all returns wrong values for many tensors of
# rank 4 or more, with no error (32 of the 86 such moves of rank-2 to rank-5
# tensors tried on a 1x2 CPU mesh; every rank-2 and rank-3 move was right); an
# all-gather then a local slice, its other lowering, is right in all of them.
# Off unless the user set DTensor's flag (`tests/parallel/traps_test.py`).
ALL_TO_ALL_RELAYOUT = "DTENSOR_USE_ALL_TO_ALL_RELAYOUT"
GROUP_ALL_REDUCES = "TF_MP_GROUP_ALL_REDUCES"


def configure_all_reduce_grouping():
    """Sets DTensor's combining flag from `TF_MP_GROUP_ALL_REDUCES` (default on)."""
    wanted = os.environ.get(GROUP_ALL_REDUCES, "1").strip().lower()
    if wanted not in ("0", "1", "true", "false"):
        raise ValueError(
            f"{GROUP_ALL_REDUCES} must be 0 or 1. Received: "
            f"{GROUP_ALL_REDUCES}={os.environ[GROUP_ALL_REDUCES]!r}"
        )
    if COMBINE_ALL_REDUCES not in os.environ:
        on = wanted in ("1", "true")
        os.environ[COMBINE_ALL_REDUCES] = "1" if on else "0"


def configure_relayouts():
    """Turns off DTensor's all-to-all relayouts unless the user set the flag.

    DTensor reads it when its device is created: if that happened before
    tf_mp was imported, the flag comes too late, and a warning says so.
    """
    if ALL_TO_ALL_RELAYOUT in os.environ:
        return
    os.environ[ALL_TO_ALL_RELAYOUT] = "0"
    api = sys.modules.get("tensorflow.dtensor.python.api")
    if getattr(api, "_dtensor_singleton", None) is not None:
        warnings.warn(
            "DTensor was used before tf_mp was imported, so it keeps its "
            "all-to-all relayouts, which return wrong values for some tensors "
            "of rank 4 or more on TensorFlow 2.21. Import tf_mp first, or set "
            f"{ALL_TO_ALL_RELAYOUT}=0 before TensorFlow starts.",
            stacklevel=2,
        )


def all_reduces_grouped():
    """Whether DTensor combines all-reduces in this process (as it reads the flag:
    anything but "0" is on)."""
    return os.environ.get(COMBINE_ALL_REDUCES, "1").strip() != "0"
