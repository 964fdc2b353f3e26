"""Every patch tf_mp makes to Keras, keras-hub and TensorFlow, in one table.

Installed together, once, by an explicit call: the first
`ModelParallel.scope()` (`variable_scope`) or `enable_keras_distribution()`
(`hold`). They stay until the process ends, because mesh variables and the
models holding them outlive every scope. Each replacement acts only where
tf_mp's state says so (`state.py`: a scope is open, a step is traced, a
weight is on a mesh) and is the original everywhere else; `import tf_mp`
alone patches nothing.

What is patched -> by what: why.

- Keras `Variable._initialize` (TF backend) -> `_initialize_on_mesh`: variables
  made in a scope go on its mesh, with their layout.
- Keras `Variable._convert_to_tensor` (TF backend) -> `host_writes.convert_on_mesh`: a
  NumPy array converted for a weight on a mesh is placed shard by shard.
- Keras `TensorFlowTrainer.__init__` -> `_attach_on_init`: a model made in a
  scope gets its steps on the mesh (`steps.attach_model`: its `fit`,
  `evaluate`, `predict`, `save`, `generate` are per-instance).
- Keras `global_seed_generator` -> `_off_mesh_global_seed_generator`: Keras's
  process-wide seed state stays off the mesh.
- Keras `Layer.__call__` -> `eager.mesh_aware_call`: eager calls of a model on
  a mesh.
- Keras `BaseOptimizer.apply` -> `_optimizer_apply`: optimizer writes to mesh
  variables are deferred (`pending_writes.py`).
- Keras `core.cond` (TF backend) -> `_functional_cond`: `ops.cond` on pending
  writes.
- Keras TF `random.*` draws, `dropout`, `categorical` ->
  `randomness.REPLACEMENTS`: draws at the global shape: masks and samples equal
  one device.
- Keras `core.slice_update`, `math.top_k` (TF backend) ->
  `generation.slice_update`, `.top_k`: ops DTensor can lay out in `generate`.
- Keras `numpy.matmul`, `numpy.einsum`, `nn.one_hot`, `numpy.divide` (TF
  backend) -> `op_rewrites`: int8 products as int32; `one_hot` as a
  comparison; a sparse gradient divided without a `cond`.
- `enable_lora` of `Dense`, `EinsumDense`, `BaseConv`, `Embedding` ->
  `lora.enable_lora_on_mesh`: LoRA matrices laid out like their kernel.
- `quantize` of the layers in `quantization.QUANTIZED` ->
  `quantization.quantize_on_mesh`: int8 kernels and scales laid out like the
  float kernel.
- `load_own_variables` of the Keras layers in `weight_files.ASSIGNING` ->
  `weight_files.reading_by_shard`: on a mesh, each shard of a weight is read
  from the weights file by itself.
- keras-hub `KerasPresetLoader.load_backbone`, `.load_task` ->
  `preset_loading.deferring`: presets load straight onto the mesh.

Two more, with their own lifetimes, installed from here too or documented
here: Keras's TensorFlow `distribution_lib` functions and
`Distribution.distribute_dataset` (`keras_backend.py`), from
`enable_keras_distribution()` to `disable_keras_distribution()`
(`install_bridge` / `remove_bridge`); and, only while a generation step is
traced, Keras's `core.while_loop` and `tf.Tensor.__getitem__`
(`generation._generation_trace`).
"""

import dataclasses
import importlib

import tensorflow as tf

from tf_mp.parallel import state
from tf_mp.parallel.dtensor import eager
from tf_mp.parallel.dtensor import generation
from tf_mp.parallel.dtensor import host_writes
from tf_mp.parallel.dtensor import keras_backend
from tf_mp.parallel.dtensor import lora
from tf_mp.parallel.dtensor import op_rewrites
from tf_mp.parallel.dtensor import pending_writes as writes_lib
from tf_mp.parallel.dtensor import preset_loading
from tf_mp.parallel.dtensor import quantization
from tf_mp.parallel.dtensor import randomness
from tf_mp.parallel.dtensor import steps
from tf_mp.parallel.dtensor import variables
from tf_mp.parallel.dtensor import weight_files

_HOST = "/device:CPU:0"


@dataclasses.dataclass(frozen=True)
class Patch:
    """`owner.name` (owner: a module path, or a module path and a class
    name) replaced by `make(original)`."""

    module: str
    owner: str | None
    name: str
    make: object

    def target(self):
        target = importlib.import_module(self.module)
        return getattr(target, self.owner) if self.owner else target


def _initialize_on_mesh(original):
    def initialize(self, value):
        distribution = state.scope_distribution()
        if distribution is None or isinstance(value, tf.Variable):
            return original(self, value)
        deferred = state.get().deferred
        if deferred is not None and callable(value):
            with tf.init_scope():
                layout = variables.resolve_layout(distribution, self, self._shape)
                empty = deferred.create(self, value, layout)
                self._value = variables.new_mesh_variable(
                    self, empty, layout, distribution
                )
            return None
        # Keras's optimizer creates slots under `colocate_vars_with(parameter)`,
        # which eagerly means "on the DTensor device": compute on the host.
        with tf.init_scope(), tf.device(_HOST):
            if callable(value):
                value = value()
            value = tf.convert_to_tensor(value, dtype=self._dtype)
            layout = variables.resolve_layout(distribution, self, value.shape)
            self._value = variables.new_mesh_variable(self, value, layout, distribution)
        return None

    return initialize


def _attach_on_init(original):
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        distribution = state.scope_distribution()
        if distribution is not None:
            steps.attach_model(self, distribution)

    return init


def _off_mesh_global_seed_generator(original):
    def global_seed_generator():
        with state.off_mesh():
            return original()

    return global_seed_generator


def _optimizer_apply(original):
    """Keras's `BaseOptimizer.apply`, for an optimizer of mesh variables: its own
    variables (`iterations`, the learning rate, made when it was constructed,
    perhaps outside the scope) are moved onto the mesh, and its writes are
    deferred. Custom training loops (`optimizer.apply_gradients` in the user's
    own `tf.function`) then train as `fit` does: with `iterations` left on the
    host, DTensor ran its increment before Adam's bias correction read it (every
    weight off by 0.26 x the learning rate after one step)."""

    def apply(self, grads, trainable_variables=None):
        candidates = trainable_variables
        if candidates is None:
            candidates = getattr(self, "_trainable_variables", None) or []
        distribution = next(
            (
                v._tf_mp_distribution
                for v in candidates
                if getattr(v, "_tf_mp_distribution", None) is not None
            ),
            None,
        )
        if distribution is None:
            return original(self, grads, trainable_variables)
        for variable in self.variables:
            variables.adopt_variable(variable, distribution)
        return writes_lib.defer_writes(original)(self, grads, trainable_variables)

    return apply


def _functional_cond(original):
    def cond(pred, true_fn, false_fn):
        writes = writes_lib.pending_writes()
        if writes is None or tf.compat.v1.get_default_graph() is not writes.graph:
            return original(pred, true_fn, false_fn)
        return writes.cond(pred, true_fn, false_fn)

    return cond


def _replacing(function):
    return lambda original: function


def _layer_methods(classes, name, on_mesh):
    """`cls.name` of each layer class replaced by `on_mesh(cls, relayout)`."""
    return tuple(
        Patch(
            cls.__module__,
            cls.__name__,
            name,
            _replacing(on_mesh(cls, variables.relayout)),
        )
        for cls in classes
    )


_KERAS_TF = "keras.src.backend.tensorflow"
PATCHES = (
    Patch(f"{_KERAS_TF}.core", "Variable", "_initialize", _initialize_on_mesh),
    Patch(
        f"{_KERAS_TF}.core",
        "Variable",
        "_convert_to_tensor",
        host_writes.convert_on_mesh,
    ),
    Patch(f"{_KERAS_TF}.trainer", "TensorFlowTrainer", "__init__", _attach_on_init),
    Patch(
        "keras.src.random.seed_generator",
        None,
        "global_seed_generator",
        _off_mesh_global_seed_generator,
    ),
    Patch("keras.src.layers.layer", "Layer", "__call__", eager.mesh_aware_call_of),
    Patch(
        "keras.src.optimizers.base_optimizer",
        "BaseOptimizer",
        "apply",
        _optimizer_apply,
    ),
    Patch(f"{_KERAS_TF}.core", None, "cond", _functional_cond),
    *(
        Patch(f"{_KERAS_TF}.random", None, name, _replacing(function))
        for name, function in randomness.REPLACEMENTS.items()
    ),
    Patch(
        f"{_KERAS_TF}.core", None, "slice_update", _replacing(generation.slice_update)
    ),
    Patch(f"{_KERAS_TF}.math", None, "top_k", _replacing(generation.top_k)),
    Patch(f"{_KERAS_TF}.numpy", None, "matmul", _replacing(op_rewrites.matmul)),
    Patch(f"{_KERAS_TF}.numpy", None, "einsum", _replacing(op_rewrites.einsum)),
    Patch(f"{_KERAS_TF}.nn", None, "one_hot", _replacing(op_rewrites.one_hot)),
    Patch(f"{_KERAS_TF}.numpy", None, "divide", _replacing(op_rewrites.divide)),
    *_layer_methods(lora.ADAPTED, "enable_lora", lora.enable_lora_on_mesh),
    *_layer_methods(quantization.QUANTIZED, "quantize", quantization.quantize_on_mesh),
    *(
        Patch(module, owner, "load_own_variables", weight_files.reading_by_shard)
        for module, owner in weight_files.ASSIGNING
    ),
    *(
        Patch(
            "keras_hub.src.utils.preset_utils",
            "KerasPresetLoader",
            name,
            preset_loading.deferring,
        )
        for name in ("load_backbone", "load_task")
    ),
)


def install():
    """Installs every patch of `PATCHES` (idempotent; kept until the process
    ends)."""
    if state.process().patched:
        return
    for patch in PATCHES:
        target = patch.target()
        setattr(target, patch.name, patch.make(getattr(target, patch.name)))
    state.process().patched = True


def installed():
    """Whether `install` has run."""
    return state.process().patched


def variable_scope(distribution):
    """While open, new Keras variables and models are placed on `distribution`."""
    install()
    return state.changed(scope=distribution)


def hold(on):
    """`enable_keras_distribution()`'s patches: with `on`, every patch is
    installed (Keras's own distribution, once bridged, may be set at any
    time). `False` changes nothing: the patches act only where tf_mp's state
    says so."""
    if on:
        install()


def install_bridge(functions, translate):
    """Completes Keras's TensorFlow `distribution_lib` (`keras_backend.py`)."""
    keras_backend.install(functions, translate)


def remove_bridge():
    """Restores Keras's TensorFlow `distribution_lib`."""
    keras_backend.uninstall()
