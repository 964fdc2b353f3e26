"""`LayoutMap`: variable-path regexes -> mesh axes, as data."""

import collections.abc
import re

from tf_mp.parallel.mesh import as_mesh

OUTPUT_SUFFIX = "/output"
RULES = ("search", "keras")


def is_output_key(key):
    """Whether a layout-map key names layer outputs (Keras's `/output` suffix)."""
    return key.rstrip("$").endswith(OUTPUT_SUFFIX)


class LayoutMap(collections.abc.MutableMapping):
    """Maps variable-path regexes to the mesh axis each dimension is split over.

    Keys are regular expressions matched against a variable's path (as Keras
    prints it, e.g. `"bert/transformer_layer_0/.../query/kernel"`). Values are
    tuples with one entry per dimension: a mesh axis name or `None` (not
    split). Unmatched variables are replicated. Axis names, rank and
    divisibility are checked when a variable uses the entry, and errors name
    the variable.

    Two matching rules (`rules=`):

    * `"search"` (the default, tf_mp's own): the first key, in insertion
      order, that `re.search`es the path wins, so a general key after specific
      ones is a fallback.
    * `"keras"`: `keras.distribution.LayoutMap`'s rules. A key equal to the
      path wins; else the one key that `re.fullmatch`es it; a path that
      several keys match is a `ValueError`. Maps converted from Keras
      (`from_keras`, a `keras.distribution.LayoutMap` given to
      `ModelParallel`, Keras's own `ModelParallel` under
      `tf_mp.enable_keras_distribution()`) use these rules.

    A key ending in `"/output"` gives the layout of a layer's output instead, as
    in `keras.distribution.LayoutMap`: it is matched against
    `"<layer path>/output"` (the layer path is the prefix of its variables'
    paths), and the output is laid out so while a step runs on the mesh. Use it
    where DTensor's own choice of an activation layout costs collectives, e.g.
    `layout_map["token_embedding/output"] = ("batch", None, None)`.

    Args:
        mesh: the `tf_mp.Mesh` (or `keras.distribution.DeviceMesh`) the axes
            refer to.
        rules: `"search"` (default) or `"keras"`, how keys match paths (above).

    Example:

    ```python
    layout_map = tf_mp.LayoutMap(mesh)
    layout_map[r"dense_1/kernel"] = (None, "model")   # column-parallel
    layout_map[r"dense_2/kernel"] = ("model", None)   # row-parallel
    ```
    """

    def __init__(self, mesh, rules="search"):
        if rules not in RULES:
            raise ValueError(
                f"`rules` must be one of {RULES}. Received: rules={rules!r}"
            )
        self._mesh = as_mesh(mesh)
        self._rules = rules
        self._axes = {}

    @classmethod
    def from_keras(cls, keras_layout_map, mesh=None):
        """Converts a `keras.distribution.LayoutMap` (e.g. a keras-hub
        `get_layout_map(...)` result), keeping Keras's matching rules."""
        mesh = as_mesh(mesh if mesh is not None else keras_layout_map.device_mesh)
        layout_map = cls(mesh, rules="keras")
        for key in keras_layout_map:
            layout_map[key] = keras_layout_map[key]
        return layout_map

    @property
    def mesh(self):
        return self._mesh

    @property
    def rules(self):
        return self._rules

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
        rules = "" if self._rules == "search" else f", rules={self._rules!r}"
        return f"LayoutMap({self._mesh!r}, {dict(self._axes)!r}{rules})"

    def match(self, path):
        """`(regex, axes)` of the variable entry for `path`, or `(None, None)`.
        Output keys are left out."""
        return self._lookup(path, outputs=False)

    def output_axes(self, layer_path):
        """`(regex, axes)` of the output key for `"<layer_path>/output"`, or
        `(None, None)`."""
        return self._lookup(f"{layer_path}{OUTPUT_SUFFIX}", outputs=True)

    def _lookup(self, path, outputs):
        if self._rules == "keras":
            if path in self._axes:
                return path, self._axes[path]
            keys = [key for key in self._axes if re.fullmatch(key, path)]
            if len(keys) > 1:
                # Keras's own message (`keras.distribution.LayoutMap`).
                raise ValueError(
                    f"Path '{path}' matches multiple layout specification keys: "
                    f"{keys}. Please make sure each tensor/variable path only "
                    "matches at most one layout specification key in the LayoutMap."
                )
            return (keys[0], self._axes[keys[0]]) if keys else (None, None)
        for regex, axes in self._axes.items():
            if is_output_key(regex) == outputs and re.search(regex, path):
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
            return self.checked_axes(axes, path, shape, "declared by its layer")
        if axes is None:
            return (None,) * len(shape)
        return self.checked_axes(axes, path, shape, f"matched by {regex!r}")

    def checked_axes(self, axes, path, shape, source):
        """`axes` for the variable at `path`, checked against the mesh and
        `shape`; errors name the variable and `source` (where axes came from)."""
        shape = tuple(int(d) for d in shape)
        where = f"variable '{path}' (shape {shape}, {source})"
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
