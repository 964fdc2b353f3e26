"""Host memory of loading a preset onto a mesh: straight onto it, against
loading on one device and then `partition`.

Saves a random keras-hub preset (`--model bert_base`: BERT-base-shaped, 110M
parameters; `--model llama_1b`: Llama-shaped, 16 layers of hidden 2048, about
0.94B), then loads it in a fresh process per way, and reports each way's peak
resident memory (VmHWM) above the process's resident memory just before
loading, in bytes and as a multiple of the model's float32 bytes:

* `one_device`: `from_preset`;
* `tf_mp_scope`: `from_preset` inside a `tf_mp.ModelParallel` scope on
  `batch=1, model=4` with `tf_mp.models.backbone_layout_map` (variables
  created on the mesh, filled from the file);
* `keras_distribution`: `from_preset` under Keras's `ModelParallel` with
  keras-hub's own `get_layout_map` (BERT has none: tf_mp's map as Keras
  rules), through `tf_mp.enable_keras_distribution()`;
* `partition`: `from_preset` on one device, then `tf_mp.models.partition`.

On logical CPU devices every shard lives in this process, so the mesh copy
itself is the devices' bytes (`device_bytes`: the model's bytes plus one more
copy of each replicated weight per further device); the target is a peak of at
most 1.25x. Inside a scope (and under Keras's distribution) keras-hub's
`load_backbone` creates the variables without running their initializers
(`tf_mp/parallel/dtensor/preset_loading.py`). Prints one JSON line.

    python benchmarks/bench_load.py --model bert_base
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
WAYS = ("one_device", "tf_mp_scope", "keras_distribution", "partition")
RULES = "tf_mp_layout_rules.json"  # tf_mp's map for the saved backbone.
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=("bert_base", "llama_1b"), default="bert_base"
    )
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def _memory():
    """`(resident, peak resident)` bytes of this process."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def _backbone(name):
    import keras_hub

    if name == "bert_base":
        return keras_hub.models.BertBackbone(
            vocabulary_size=30522,
            num_layers=12,
            num_heads=12,
            hidden_dim=768,
            intermediate_dim=3072,
            max_sequence_length=512,
        )
    return keras_hub.models.LlamaBackbone(
        vocabulary_size=32000,
        num_layers=16,
        num_query_heads=16,
        num_key_value_heads=16,
        hidden_dim=2048,
        intermediate_dim=5504,
    )


def _layout_maps(cls, mesh, rules):
    """`(tf_mp LayoutMap, keras LayoutMap)`: tf_mp's map for the family
    (`rules`, made from the saved backbone), and keras-hub's `get_layout_map`
    where the family has one (Llama), else tf_mp's rules as Keras's."""
    import keras

    import tf_mp

    device_mesh = keras.distribution.DeviceMesh(
        (1, 4), ("batch", "model"), [f"cpu:{i}" for i in range(4)]
    )
    tf_mp_map = tf_mp.LayoutMap(mesh)
    for key, axes in rules.items():
        tf_mp_map[key] = tuple(axes)
    if hasattr(cls, "get_layout_map"):
        return tf_mp_map, cls.get_layout_map(device_mesh)
    # Keras matches a rule to the whole path (`re.fullmatch`), tf_mp anywhere
    # in it (`re.search`).
    keras_map = keras.distribution.LayoutMap(device_mesh)
    for key, axes in rules.items():
        keras_map[f".*(?:{key})"] = tuple(axes)
    return tf_mp_map, keras_map


def _load(way, preset):
    import keras
    import keras_hub

    import tf_mp

    tf_mp.configure_virtual_devices(4)
    mesh = tf_mp.Mesh({"batch": 1, "model": 4})
    with open(os.path.join(preset, "config.json")) as f:
        cls = keras.saving.get_registered_object(json.load(f)["registered_name"])
    with open(os.path.join(preset, RULES)) as f:
        rules = json.load(f)
    tf_mp_map, keras_map = _layout_maps(cls, mesh, rules)
    before, _ = _memory()
    if way == "one_device":
        model = keras_hub.models.Backbone.from_preset(preset)
    elif way == "tf_mp_scope":
        with tf_mp.ModelParallel(mesh, tf_mp_map).scope():
            model = keras_hub.models.Backbone.from_preset(preset)
    elif way == "keras_distribution":
        tf_mp.enable_keras_distribution()
        with keras.distribution.ModelParallel(layout_map=keras_map).scope():
            model = keras_hub.models.Backbone.from_preset(preset)
    else:
        model = tf_mp.models.partition(
            keras_hub.models.Backbone.from_preset(preset), mesh=mesh
        )
    after, peak = _memory()
    split = sum(
        1
        for w in model.weights
        if "model" in getattr(getattr(w.value, "layout", None), "sharding_specs", ())
    )
    return {
        "peak_rise": peak - before,
        "held": after - before,
        "split_weights": split,
        "device_bytes": _device_bytes(model),
    }


def _device_bytes(model):
    """What the devices hold together: each weight's bytes once per device
    that keeps a copy (a replicated weight once per device of the mesh)."""
    total = 0
    for weight in model.weights:
        nbytes = int(np.prod(weight.shape)) * np.dtype(weight.dtype).itemsize
        layout = getattr(weight.value, "layout", None)
        if layout is None:
            total += nbytes
            continue
        shards = 1
        for axis in layout.sharding_specs:
            if axis != "unsharded":
                shards *= layout.mesh.dim_size(axis)
        total += nbytes * layout.mesh.size // shards
    return total


def main():
    args = parse_args()
    sys.path.insert(0, ROOT)
    if args.child:
        print(json.dumps(_load(*args.child)))
        return
    import tf_mp

    tf_mp.configure_virtual_devices(4)
    preset = tempfile.mkdtemp(prefix=f"bench_load_{args.model}_")
    backbone = _backbone(args.model)
    model_bytes = int(sum(w.numpy().nbytes for w in backbone.weights))
    backbone.save_to_preset(preset)
    layout_map = tf_mp.models.backbone_layout_map(
        backbone, tf_mp.Mesh({"batch": 1, "model": 4})
    )
    with open(os.path.join(preset, RULES), "w") as f:
        json.dump({key: list(layout_map[key]) for key in layout_map}, f)
    del backbone
    results = {"model": args.model, "model_bytes": model_bytes, "ways": {}}
    for way in args.ways.split(","):
        run = subprocess.run(
            [sys.executable, __file__, "--child", way, preset],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            results["ways"][way] = {"error": run.stderr.strip().splitlines()[-1]}
            continue
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        measured["peak_rise_x"] = round(measured["peak_rise"] / model_bytes, 2)
        # Against what the devices must hold (on virtual CPUs, all of it here).
        measured["peak_rise_x_device_bytes"] = round(
            measured["peak_rise"] / measured["device_bytes"], 2
        )
        results["ways"][way] = measured
    print(json.dumps(results))


if __name__ == "__main__":
    main()
