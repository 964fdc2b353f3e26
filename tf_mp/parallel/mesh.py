"""`Mesh`: a named grid of devices."""

import math

import tensorflow as tf

from tf_mp.parallel import devices as devices_lib
from tf_mp.parallel import dtensor as _engine
from tf_mp.parallel import processes as _processes


class Mesh:
    """A grid of devices with named axes, backed by a DTensor mesh.

    Args:
        shape: dict `{axis_name: size}` or a sequence of `(axis_name, size)`
            pairs, in mesh order. E.g. `{"batch": 2, "model": 4}`.
        devices: optional list of devices: names (`"CPU:0"`, full TensorFlow
            names, `keras.distribution.list_devices()` entries) or
            `tf.config.LogicalDevice` / `PhysicalDevice` objects. Its length
            must equal the product of the shape. Defaults to the first
            `prod(shape)` logical devices of `device_type`. After
            `tf_mp.initialize` joined several processes, the mesh spans the
            same number of devices in each, and `devices` names this
            process's own.
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
        pairs = _axis_pairs(shape)
        self._axis_names = tuple(name for name, _ in pairs)
        self._sizes = tuple(size for _, size in pairs)
        self._size = math.prod(self._sizes)

        processes = _processes.num_processes()
        if self._size % processes:
            raise ValueError(
                f"A mesh spans the devices of all {processes} processes, the same "
                f"number from each, so its size must be a multiple of {processes}. "
                f"Received: shape={self.shape} ({self._size} devices)"
            )
        specs = self._local_device_specs(devices, device_type, processes)
        local = [f"{s.device_type}:{s.device_index}" for s in specs]
        if processes > 1:
            self._dtensor_mesh = _engine.create_global_mesh(
                self._axis_names, self._sizes, local, self._device_type
            )
            self._local_devices = tuple(self._dtensor_mesh.local_devices())
            self._devices = tuple(
                tf.DeviceSpec.from_string(name).replace(task=task).to_string()
                for task in range(processes)
                for name in self._local_devices
            )
        else:
            self._devices = self._local_devices = tuple(local)
            self._dtensor_mesh = _engine.create_mesh(
                self._axis_names, self._sizes, self._devices, self._device_type
            )
        self._num_processes = processes

    def _local_device_specs(self, devices, device_type, processes):
        """This process's devices of the mesh (the first available ones of
        `device_type` when `devices` is None); sets `_device_type`."""
        local_size = self._size // processes
        if devices is None:
            self._device_type = (
                device_type or devices_lib.default_device_type()
            ).upper()
            available = devices_lib.list_devices(self._device_type, local=True)
            if len(available) < local_size:
                where = (
                    f" in each of the {processes} processes" if processes > 1 else ""
                )
                raise ValueError(
                    f"A mesh of shape {self.shape} needs {local_size} devices{where}, "
                    f"but only {len(available)} {self._device_type} device(s) are "
                    "available. Split a device with "
                    f"`tf_mp.configure_virtual_devices({local_size})` before "
                    "TensorFlow starts, or use a smaller mesh."
                )
            return [_device_spec(d) for d in available[:local_size]]
        specs = [_device_spec(d) for d in devices]
        if len(specs) != local_size:
            whose = (
                f" divided by the {processes} processes (`devices` names this "
                "process's own)"
                if processes > 1
                else ""
            )
            raise ValueError(
                f"The product of the mesh shape ({self._size} for {self.shape})"
                f"{whose} must equal the number of devices. Received: "
                f"{len(specs)} devices {[str(s) for s in specs]}"
            )
        self._device_type = (device_type or specs[0].device_type).upper()
        return specs

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
    def local_devices(self):
        """This process's devices of the mesh (all of them in one process)."""
        return self._local_devices

    @property
    def num_processes(self):
        """How many processes the mesh spans (`tf_mp.initialize`)."""
        return self._num_processes

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
    # `tf.config.LogicalDevice` / `PhysicalDevice` carry their name; Keras's
    # `list_devices()` gives "cpu:0".
    name = getattr(device, "name", device)
    if not isinstance(name, str):
        raise TypeError(
            "Devices are names such as 'CPU:0' or `tf.config.LogicalDevice` "
            f"objects. Received: {device!r} of type {type(device).__name__}"
        )
    if name.startswith("/physical_device:"):
        name = name[len("/physical_device:") :]
    try:
        spec = tf.DeviceSpec.from_string(name)
    except ValueError:
        spec = tf.DeviceSpec()
    if spec.device_type is None or spec.device_index is None:
        raise ValueError(
            f"Device names look like 'CPU:0' or 'GPU:1'. Received: {device!r}"
        )
    return spec


def _axis_pairs(shape):
    """`shape` (a dict or `(axis_name, size)` pairs) as checked pairs."""
    pairs = list(shape.items()) if isinstance(shape, dict) else list(shape)
    if not pairs:
        raise ValueError(f"`shape` must name at least one axis. Received: {shape!r}")
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(
                "`shape` must be a dict or a sequence of (axis_name, size) "
                f"pairs. Received: shape={shape!r}"
            )
        name, size = pair
        if not isinstance(name, str) or not name:
            raise TypeError(f"Axis names must be non-empty strings. Received: {name!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"Axis sizes must be positive ints. Received: {name}={size!r}"
            )
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"Axis names must be unique. Received: {names}")
    return pairs
