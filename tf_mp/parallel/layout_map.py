"""`LayoutMap`: variable-path regexes -> mesh axes, as data."""

import collections.abc
import re

from tf_mp.parallel.mesh import as_mesh

OUTPUT_SUFFIX = "/output"


def is_output_key(key):
    """Whether a layout-map key names layer outputs (Keras's `/output` suffix)."""
    return key.rstrip("$").endswith(OUTPUT_SUFFIX)


class LayoutMap(collections.abc.MutableMapping):
    """Maps variable-path regexes to the mesh axis each dimension is split over.

    Keys are regular expressions matched with `re.search` against a variable's
    path (as Keras prints it, e.g. `"bert/transformer_layer_0/.../query/kernel"`).
    Values are tuples with one entry per dimension: a mesh axis name or `None`
    (not split). The first key, in insertion order, that matches a path wins;
    unmatched variables are replicated. Axis names, rank and divisibility are
    checked when a variable uses the entry, and errors name the variable.

    A key ending in `"/output"` gives the layout of a layer's output instead, as
    in `keras.distribution.LayoutMap`: it is matched against
    `"<layer path>/output"` (the layer path is the prefix of its variables'
    paths), and the output is laid out so while a step runs on the mesh. Use it
    where DTensor's own choice of an activation layout costs collectives, e.g.
    `layout_map["token_embedding/output"] = ("batch", None, None)`.

    Args:
        mesh: the `tf_mp.Mesh` (or `keras.distribution.DeviceMesh`) the axes
            refer to.

    Example:

    ```python
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"dense_1/kernel"] = (None, "model")   # column-parallel
    layout_map[r"dense_2/kernel"] = ("model", None)   # row-parallel
    ```
    """

    def __init__(self, mesh):
        self._mesh = as_mesh(mesh)
        self._axes = {}

    @classmethod
    def from_keras(cls, keras_layout_map, mesh=None):
        """Converts a `keras.distribution.LayoutMap` (e.g. a keras-hub
        `get_layout_map(...)` result)."""
        mesh = as_mesh(mesh if mesh is not None else keras_layout_map.device_mesh)
        layout_map = cls(mesh)
        for key in keras_layout_map:
            layout_map[key] = keras_layout_map[key]
        return layout_map

    @property
    def mesh(self):
        return self._mesh

    def __setitem__(self, key, axes):
        if not isinstance(key, str):
            raise TypeError(f"Keys must be regex strings. Received: {key!r}")
        try:
            re.compile(key)
        except re.error as error:
            raise ValueError(f"Invalid regex key {key!r}: {error}") from error
        self._axes[key] = self._normalize_axes(key, axes)

    def __getitem__(self, key):
        return self._axes[key]

    def __delitem__(self, key):
        del self._axes[key]

    def __iter__(self):
        return iter(self._axes)

    def __len__(self):
        return len(self._axes)

    def __repr__(self):
        return f"LayoutMap({self._mesh!r}, {dict(self._axes)!r})"

    def match(self, path):
        """`(regex, axes)` of the first variable entry matching `path`, or
        `(None, None)`. Output keys are left out."""
        for regex, axes in self._axes.items():
            if not is_output_key(regex) and re.search(regex, path):
                return regex, axes
        return None, None

    def output_axes(self, layer_path):
        """`(regex, axes)` of the first output key matching
        `"<layer_path>/output"`, or `(None, None)`."""
        path = f"{layer_path}{OUTPUT_SUFFIX}"
        for regex, axes in self._axes.items():
            if is_output_key(regex) and re.search(regex, path):
                return regex, axes
        return None, None

    def axes_for(self, path, shape, declared=None):
        """The validated axes tuple for a variable.

        Args:
            path: the variable's path.
            shape: its shape.
            declared: optional axes the variable's layer declares for it (tf_mp
                layers do); used when no key matches. Axes the mesh does not
                have are dropped from it (the layer then runs unsplit there).

        Returns:
            One mesh axis name or `None` per dimension; replicated when neither
            a key nor `declared` applies.
        """
        shape = tuple(int(d) for d in shape)
        regex, axes = self.match(path)
        if axes is None and declared is not None:
            axes = tuple(a if a in self._mesh.shape else None for a in declared)
            where = f"variable '{path}' (shape {shape}, declared by its layer)"
        elif axes is None:
            return (None,) * len(shape)
        else:
            where = f"variable '{path}' (shape {shape}, matched by {regex!r})"
        if len(axes) != len(shape):
            raise ValueError(
                f"The layout {axes} has rank {len(axes)}, but {where} has rank "
                f"{len(shape)}. Give one entry (an axis name or None) per dimension."
            )
        sizes = self._mesh.shape
        for dim, axis in enumerate(axes):
            if axis is None:
                continue
            if axis not in sizes:
                raise ValueError(
                    f"Unknown mesh axis {axis!r} in layout {axes} for {where}. "
                    f"The mesh has axes {self._mesh.axis_names}."
                )
            if shape[dim] % sizes[axis]:
                raise ValueError(
                    f"Dimension {dim} of {where} must be divisible by the size of "
                    f"mesh axis {axis!r} ({sizes[axis]}). Received: {shape[dim]}"
                )
        return axes

    def _normalize_axes(self, key, axes):
        axes = getattr(axes, "axes", axes)  # keras.distribution.TensorLayout
        if isinstance(axes, str) or not isinstance(axes, (tuple, list)):
            raise TypeError(
                f"The layout for {key!r} must be a tuple of mesh axis names or None, "
                f"one per dimension. Received: {axes!r}"
            )
        axes = tuple(axes)
        for axis in axes:
            if axis is not None and axis not in self._mesh.shape:
                raise ValueError(
                    f"Unknown mesh axis {axis!r} in the layout {axes} for {key!r}. "
                    f"The mesh has axes {self._mesh.axis_names}."
                )
        named = [a for a in axes if a is not None]
        if len(set(named)) != len(named):
            raise ValueError(
                f"A mesh axis may split only one dimension. Received: {key!r} -> {axes}"
            )
        return axes


def as_layout_map(layout_map, mesh):
    """Accepts a `tf_mp.LayoutMap`, a `keras.distribution.LayoutMap` or None."""
    if layout_map is None:
        return LayoutMap(mesh)
    if isinstance(layout_map, LayoutMap):
        if layout_map.mesh != mesh:
            raise ValueError(
                f"The layout map's mesh {layout_map.mesh!r} differs from the "
                f"distribution's mesh {mesh!r}."
            )
        return layout_map
    if hasattr(layout_map, "device_mesh"):
        return LayoutMap.from_keras(layout_map, mesh)
    raise TypeError(
        "`layout_map` must be a `tf_mp.LayoutMap` or `keras.distribution.LayoutMap`. "
        f"Received: {layout_map!r} of type {type(layout_map).__name__}"
    )
