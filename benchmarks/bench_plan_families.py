"""The plan against the hand maps, family by family.

For each of the fourteen keras-hub families `tf_mp.models.partition` supports,
a small random-weight backbone (2 layers, hidden 64, 4 heads, 2 key/value heads
where the family has grouped-query attention, feed-forward 128, vocabulary
1000) is planned for batch 8, sequence 32, Adam, on a 2x2 mesh of virtual
CPUs by the cost model (`measure=0`), with the memory objective and with the
step-time objective. Beside it: the hand map (`backbone_layout_map`) costed by
the same model, and, where the family has one, keras-hub's own
`get_layout_map()` (exact per-device weight bytes only: it splits weights over
both mesh axes, which the cost model's Megatron count does not cover).
Prints one JSON line.

    python benchmarks/bench_plan_families.py
"""

import json

FAMILIES = {
    # name: (backbone class name, extra config)
    "bert": ("BertBackbone", {"max_sequence_length": 32}),
    "roberta": ("RobertaBackbone", {"max_sequence_length": 32}),
    "xlm_roberta": ("XLMRobertaBackbone", {"max_sequence_length": 32}),
    "distil_bert": ("DistilBertBackbone", {"max_sequence_length": 32}),
    "electra": ("ElectraBackbone", {"max_sequence_length": 32, "embedding_dim": 32}),
    "albert": (
        "AlbertBackbone",
        {"max_sequence_length": 32, "embedding_dim": 32, "num_groups": 1},
    ),
    "gpt2": ("GPT2Backbone", {"max_sequence_length": 32}),
    "gemma": ("GemmaBackbone", {"head_dim": 16}),
    "gemma3": ("Gemma3Backbone", {"head_dim": 16, "image_size": 16}),
    "llama": ("LlamaBackbone", {}),
    "mistral": ("MistralBackbone", {}),
    "qwen": ("QwenBackbone", {}),
    "qwen3": ("Qwen3Backbone", {"head_dim": 16}),
    "phi3": ("Phi3Backbone", {}),
}
DECODERS = ("gemma", "gemma3", "llama", "mistral", "qwen", "qwen3", "phi3")
WORKLOAD = {
    "batch_size": 8,
    "sequence_length": 32,
    "slots": 2,
    "activation_itemsize": 4,
}
MESH = (2, 2)
# Measured by `bench_plan.py` on the 2-core machine of benchmarks/README.md.
CONSTANTS = {"flops_per_s": 5.76e9, "latency_s": 2.76e-3, "bytes_per_s": 3.9e8}


def backbone(name):
    import keras
    import keras_hub

    class_name, extra = FAMILIES[name]
    config = dict(num_layers=2, hidden_dim=64, intermediate_dim=128, **extra)
    vocabulary = "vocab_size" if name == "electra" else "vocabulary_size"
    config[vocabulary] = 1000
    if name in DECODERS:
        config.update(num_query_heads=4, num_key_value_heads=2)
    else:
        config.update(num_heads=4)
    keras.utils.set_random_seed(0)
    return getattr(keras_hub.models, class_name)(**config)


def main():
    import tf_mp

    tf_mp.configure_virtual_devices(4)
    from tf_mp.planning import referee

    constants = CONSTANTS
    mesh = tf_mp.Mesh({"batch": MESH[0], "model": MESH[1]})
    rows = {}
    for name in FAMILIES:
        model = backbone(name)
        row = {}
        for objective in ("memory", "step_time"):
            plan = tf_mp.plan(
                model,
                devices=[MESH],
                batch_size=WORKLOAD["batch_size"],
                sequence_length=WORKLOAD["sequence_length"],
                objective=objective,
                measure=0,
                constants=constants,
            )
            row[f"plan_{objective}"] = _figures(plan.best)
        hand = tf_mp.models.backbone_layout_map(model, mesh)
        row["hand_map"] = _figures(
            referee.megatron_map_figures(model, hand, WORKLOAD, constants).to_dict()
        )
        keras_map = _keras_hub_map(model, mesh)
        if keras_map is not None:
            row["keras_hub_weight_bytes"] = referee.weight_bytes_per_device(
                model, keras_map
            )
        rows[name] = row
    print(json.dumps({"benchmark": "plan_families", "mesh": "2x2", "rows": rows}))


def _keras_hub_map(model, mesh):
    import keras

    import tf_mp

    if not hasattr(type(model), "get_layout_map"):
        return None
    device_mesh = keras.distribution.DeviceMesh(
        (MESH[0], MESH[1]),
        ["batch", "model"],
        keras.distribution.list_devices()[: MESH[0] * MESH[1]],
    )
    try:
        keras_map = type(model).get_layout_map(
            device_mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch"
        )
    except (TypeError, NotImplementedError, ValueError):
        return None
    return tf_mp.LayoutMap.from_keras(keras_map, mesh)


def _figures(figures):
    return {
        "weight_bytes": figures["weight_bytes"],
        "bytes_per_device": figures["bytes_per_device"],
        "collectives": sum(v["count"] for v in figures["collectives"].values()),
        "collective_bytes": sum(v["bytes"] for v in figures["collectives"].values()),
        "step_s": round(figures["step_s"], 5),
    }


if __name__ == "__main__":
    main()
