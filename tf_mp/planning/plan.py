"""`Plan`: a chosen mesh and layout, with the figures that chose it, as data."""

import json

from tf_mp.parallel.layout_map import LayoutMap
from tf_mp.parallel.mesh import Mesh
from tf_mp.parallel.model_parallel import ModelParallel
from tf_mp.planning import placement
from tf_mp.planning.summary import summary_table
from tf_mp.utils.files import write_json

FORMAT = "tf_mp.plan/1"


class Plan:
    """A model-parallel layout found by `tf_mp.plan`.

    Attributes:
        mesh_shape: `{"batch": b, "model": m}`.
        weights: one `(path, shape, axes)` per model weight, in weight order.
        candidates: the ranked candidates, best first, each a dict of figures:
            `mesh`, `choices` (per group role), `fsdp`, per-device
            `weight_bytes`, `gradient_bytes`, `slot_bytes` (exact) and
            `activation_bytes` (estimated), `bytes_per_device`, `collectives`
            (`"op@axis"`: count and bytes per train step), `compute_s`,
            `communication_s`, `step_s` (the cost model's),
            `calibrated_step_s` (the cost model fitted to the measured
            candidates, where it could be), `measured_step_s` and
            `compiled_collectives` (counted in the compiled DTensor train
            step, where measured).
        settings: what it was planned for (`batch_size`, `sequence_length`,
            `optimizer` slots, `objective`, `memory_per_device`, `constants`,
            and `calibration`, the fitted factors of compute and
            communication time, where measured candidates allowed a fit).
    """

    def __init__(self, mesh_shape, weights, candidates, settings):
        self.mesh_shape = dict(mesh_shape)
        self.weights = [(p, tuple(s), tuple(a)) for p, s, a in weights]
        self.candidates = list(candidates)
        self.settings = dict(settings)

    @property
    def best(self):
        """The chosen candidate's figures."""
        return self.candidates[0]

    @property
    def bytes_per_device(self):
        return self.best["bytes_per_device"]

    @property
    def collectives(self):
        """The best candidate's collectives per train step, `"op@axes"` ->
        `{"count", "bytes"}` per device: counted in its compiled DTensor step
        where it was measured, else the cost model's."""
        compiled = self.best.get("compiled_collectives")
        return self.best["collectives"] if compiled is None else compiled

    def mesh(self, devices=None):
        """The `tf_mp.Mesh` of the plan (on `devices`, or the first local
        devices)."""
        return Mesh(self.mesh_shape, devices=devices)

    def split_weights(self):
        """`(key, axes)` per weight split over some mesh axis, the key matching
        that weight's path only (under both layout maps' matching rules)."""
        return [
            (placement.exact_key(path), axes)
            for path, _, axes in self.weights
            if any(a is not None for a in axes)
        ]

    def layout_map(self, mesh=None):
        """A `tf_mp.LayoutMap` with one exact-path key per split weight."""
        layout_map = LayoutMap(mesh if mesh is not None else self.mesh())
        for key, axes in self.split_weights():
            layout_map[key] = axes
        return layout_map

    def keras_layout_map(self, device_mesh=None):
        """The layout as a `keras.distribution.LayoutMap`, for Keras's own
        `keras.distribution.ModelParallel` (on TensorFlow, with
        `tf_mp.enable_keras_distribution()`)."""
        return placement.keras_layout_map(self, device_mesh)

    def distribution(self, mesh=None):
        """A `tf_mp.ModelParallel` on the plan's mesh and layout."""
        return ModelParallel(layout_map=self.layout_map(mesh))

    def scope(self, mesh=None):
        """`ModelParallel(...).scope()`: models built inside are laid out as
        planned, matched by weight path (build the same code in the same
        order: Keras names layers by a process-wide count). `apply` matches by
        position and needs no names."""
        return self.distribution(mesh).scope()

    def apply(self, model, mesh=None):
        """A copy of `model` on the plan's mesh, its weights laid out as
        planned and copied from `model`."""
        return placement.apply(self, model, self.distribution(mesh))

    def summary(self, print_fn=print, limit=10):
        """Prints the best `limit` candidates side by side."""
        print_fn(summary_table(self, limit))

    def to_dict(self):
        return {
            "format": FORMAT,
            "mesh_shape": self.mesh_shape,
            "weights": [
                {"path": p, "shape": list(s), "axes": list(a)}
                for p, s, a in self.weights
            ],
            "candidates": self.candidates,
            "settings": self.settings,
        }

    def save(self, path):
        """Writes the plan as JSON (layouts and figures, no code), atomically."""
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if data.get("format") != FORMAT:
            raise ValueError(
                f"{path!r} is not a tf_mp plan (format {FORMAT!r}). Received "
                f"format={data.get('format')!r}"
            )
        weights = [(w["path"], w["shape"], w["axes"]) for w in data["weights"]]
        return cls(data["mesh_shape"], weights, data["candidates"], data["settings"])

    def __repr__(self):
        best = self.best
        return (
            f"Plan(mesh={self.mesh_shape}, bytes_per_device="
            f"{best['bytes_per_device']:,}, step_s={best['step_s']:.4g})"
        )
