"""tf_mp: model parallelism, distillation and AutoML for BERT-style Keras 3 models on
TensorFlow.

Submodules and names load on first use (PEP 562), so `import tf_mp` does not
start TensorFlow: `tf_mp.configure_virtual_devices` and the `tf-mp` command can
act before it initialises.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "automl",
    "cli",
    "data",
    "distillation",
    "layers",
    "models",
    "parallel",
    "planning",
)
_NAMES = {
    "auto_parallel": "tf_mp.parallel",
    "Distiller": "tf_mp.distillation",
    "bert_layout_map": "tf_mp.models.bert_layout_map",
    "LayoutMap": "tf_mp.parallel",
    "Mesh": "tf_mp.parallel",
    "ModelParallel": "tf_mp.parallel",
    "Plan": "tf_mp.planning",
    "ShardReport": "tf_mp.parallel",
    "configure_virtual_devices": "tf_mp.parallel",
    "disable_keras_distribution": "tf_mp.parallel",
    "enable_keras_distribution": "tf_mp.parallel",
    "gather": "tf_mp.parallel",
    "initialize": "tf_mp.parallel",
    "list_devices": "tf_mp.parallel",
    "plan": "tf_mp.planning",
    "shard_report": "tf_mp.parallel",
}

# Modules that moved; `tf_mp.tpu.tpu_strategy(...)` keeps working.
_MOVED = {"tpu": "tf_mp.parallel.tpu"}

__all__ = [*_SUBMODULES, *_MOVED, *_NAMES]


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"tf_mp.{name}")
    elif name in _MOVED:
        module = importlib.import_module(_MOVED[name])
    elif name in _NAMES:
        module = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'tf_mp' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__():
    return sorted(set(globals()) | set(__all__))
