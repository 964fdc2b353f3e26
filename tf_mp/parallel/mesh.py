"""`Mesh`: a named grid of devices."""

import math

import tensorflow as tf

from tf_mp.parallel import devices as devices_lib
from tf_mp.parallel import dtensor as _engine


class Mesh:
    """A grid of devices with named axes, backed by a DTensor mesh.

    Args:
        shape: dict `{axis_name: size}` or a sequence of `(axis_name, size)`
            pairs, in mesh order. E.g. `{"batch": 2, "model": 4}`.
        devices: optional list of device names (`"CPU:0"` or full TensorFlow
            names). Its length must equal the product of the shape. Defaults to
            the first `prod(shape)` logical devices of `device_type`.
        device_type: optional `"TPU"`, `"GPU"` or `"CPU"`. Defaults to the
            first of those that is present.

    Example:

    ```python
    tf_mp.configure_virtual_devices(8)
    mesh = tf_mp.Mesh({"batch": 2, "model": 4})
    mesh.shape   # {"batch": 2, "model": 4}
    ```
    """

    def __init__(self, shape, devices=None, device_type=None):
        pairs = list(shape.items()) if isinstance(shape, dict) else list(shape)
        if not pairs:
            raise ValueError(
                f"`shape` must name at least one axis. Received: {shape!r}"
            )
        for pair in pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    "`shape` must be a dict or a sequence of (axis_name, size) "
                    f"pairs. Received: shape={shape!r}"
                )
            name, size = pair
            if not isinstance(name, str) or not name:
                raise TypeError(
                    f"Axis names must be non-empty strings. Received: {name!r}"
                )
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(
                    f"Axis sizes must be positive ints. Received: {name}={size!r}"
                )
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"Axis names must be unique. Received: {names}")
        self._axis_names = tuple(names)
        self._sizes = tuple(size for _, size in pairs)
        self._size = math.prod(self._sizes)

        if devices is None:
            self._device_type = (
                device_type or devices_lib.default_device_type()
            ).upper()
            available = devices_lib.list_devices(self._device_type)
            if len(available) < self._size:
                raise ValueError(
                    f"A mesh of shape {self.shape} needs {self._size} devices, but "
                    f"only {len(available)} {self._device_type} device(s) are "
                    "available. Split a device with "
                    f"`tf_mp.configure_virtual_devices({self._size})` before "
                    "TensorFlow starts, or use a smaller mesh."
                )
            devices = available[: self._size]
        else:
            specs = [_device_spec(d) for d in devices]
            devices = [f"{s.device_type}:{s.device_index}" for s in specs]
            if len(devices) != self._size:
                raise ValueError(
                    f"The product of the mesh shape ({self._size} for {self.shape}) "
                    f"must equal the number of devices. Received: {len(devices)} "
                    f"devices {devices}"
                )
            self._device_type = (device_type or specs[0].device_type).upper()
        self._devices = tuple(devices)
        self._dtensor_mesh = _engine.create_mesh(
            self._axis_names, self._sizes, self._devices, self._device_type
        )

    @classmethod
    def from_keras(cls, device_mesh):
        """Converts a `keras.distribution.DeviceMesh`."""
        return cls(
            list(zip(device_mesh.axis_names, device_mesh.shape)),
            devices=[str(d) for d in device_mesh.devices.flatten()],
        )

    @property
    def axis_names(self):
        return self._axis_names

    @property
    def shape(self):
        """`{axis_name: size}` in mesh order."""
        return dict(zip(self._axis_names, self._sizes))

    @property
    def size(self):
        return self._size

    @property
    def devices(self):
        return self._devices

    @property
    def device_type(self):
        return self._device_type

    @property
    def dtensor_mesh(self):
        return self._dtensor_mesh

    def __eq__(self, other):
        return isinstance(other, Mesh) and self._dtensor_mesh == other._dtensor_mesh

    def __hash__(self):
        return hash((self._axis_names, self._sizes, self._devices))

    def __repr__(self):
        return f"Mesh({self.shape}, device_type={self._device_type!r})"


def as_mesh(mesh):
    """Accepts a `tf_mp.Mesh` or a `keras.distribution.DeviceMesh`."""
    if isinstance(mesh, Mesh):
        return mesh
    if hasattr(mesh, "axis_names") and hasattr(mesh, "devices"):
        return Mesh.from_keras(mesh)
    raise TypeError(
        "Expected a `tf_mp.Mesh` or `keras.distribution.DeviceMesh`. "
        f"Received: {mesh!r} of type {type(mesh).__name__}"
    )


def _device_spec(device):
    spec = tf.DeviceSpec.from_string(str(device))
    if spec.device_type is None or spec.device_index is None:
        raise ValueError(
            f"Device names look like 'CPU:0' or 'GPU:1'. Received: {device!r}"
        )
    return spec
