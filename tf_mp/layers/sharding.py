"""How tf_mp layers declare and check their own sharding."""

from tf_mp.parallel import _dtensor_bridge

declare_axes = _dtensor_bridge.declare_axes
constrain = _dtensor_bridge.constrain


def check_divisible(layer, argument, value, axis):
    """Raises if `value` cannot be split over mesh axis `axis` of the open scope."""
    shape = _dtensor_bridge.active_mesh_shape()
    if not shape or axis not in shape or value % shape[axis] == 0:
        return
    raise ValueError(
        f"{type(layer).__name__} '{layer.name}': `{argument}` must be divisible by "
        f"the size of mesh axis '{axis}' ({shape[axis]}). Received: "
        f"{argument}={value}"
    )
