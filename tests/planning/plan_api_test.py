"""`tf_mp.plan`'s API: structure found, budgets, errors, JSON, scope, Keras."""

import json

import keras
import pytest

import tf_mp
from tests.models import families
from tests.planning import models
from tf_mp.planning import costs
from tf_mp.planning.structure import model_groups


def _plan(model, **kwargs):
    kwargs.setdefault("batch_size", models.BATCH)
    kwargs.setdefault("measure", 0)
    kwargs.setdefault("constants", models.CONSTANTS)
    return tf_mp.plan(model, **kwargs)


def test_groups_are_read_from_the_structure():
    model = models.transformer()
    groups = model_groups(model)
    kinds = {g.name: g.kind for g in groups}
    assert kinds["embed"] == "embedding"
    assert kinds["mha"] == "attention"
    assert kinds["intermediate,output"] == "feedforward"
    attention = next(g for g in groups if g.kind == "attention")
    heads = dict(zip((w.path for w in attention.weights), attention.options["heads"]))
    assert heads["mha/query/kernel"] == 1  # (hidden, heads, head_dim)
    assert heads["mha/query/bias"] == 0
    assert heads["mha/attention_output/kernel"] == 0  # (heads, head_dim, hidden)
    assert heads["mha/attention_output/bias"] is None
    paths = [w.path for g in groups for w in g.weights]
    assert sorted(paths) == sorted(w.path for w in model.weights)


@pytest.mark.parametrize("family", families.FAMILIES)
def test_every_weight_is_in_exactly_one_group(family):
    # Gemma 3's and Qwen3's attention layers hold query/key norms beside their
    # projections: those were once left out of every group (and out of the
    # plan's bytes and weights).
    model = families.backbone(family)
    indices = sorted(w.index for g in model_groups(model) for w in g.weights)
    assert indices == list(range(len(model.weights)))
    plan = _plan(model, devices=[(1, 2)], sequence_length=8)
    assert [path for path, _, _ in plan.weights] == [w.path for w in model.weights]


def test_grouped_query_key_value_heads_stay_replicated_where_they_do_not_divide():
    model = models.gqa_attention()
    attention = next(g for g in model_groups(model) if g.kind == "attention")
    dims = dict(
        zip((w.path for w in attention.weights), attention.model_dims("heads", 4))
    )
    assert dims["gqa/query/kernel"] == 1
    assert dims["gqa/key/kernel"] is None  # Two key/value heads over 4 devices.
    assert (
        dict(
            zip((w.path for w in attention.weights), attention.model_dims("heads", 2))
        )["gqa/key/kernel"]
        == 1
    )


def test_figures_are_exact_for_weights_and_slots():
    model = models.mlp()
    plan = _plan(model, devices=[(1, 1)])
    total = sum(int(w.numpy().nbytes) for w in model.weights)
    assert plan.best["weight_bytes"] == total
    assert plan.best["gradient_bytes"] == total
    assert plan.best["slot_bytes"] == 2 * total  # Adam: two slots per weight.
    sgd = _plan(model, devices=[(1, 1)], optimizer="sgd")
    assert sgd.best["slot_bytes"] == 0


def _pair_collectives(model, sequence_length):
    groups = model_groups(model)
    pair = next(g for g in groups if g.kind == "feedforward")
    workload = {"batch_size": 8, "sequence_length": sequence_length, "slots": 2}
    workload["activation_itemsize"] = 4
    figures = costs.evaluate(
        groups, (1, 2), {pair.role: "megatron"}, False, workload, models.CONSTANTS
    )
    return figures.collectives


def test_a_megatron_pair_costs_one_all_reduce_each_way():
    # The transformer's feed-forward reads the attention block's output: its
    # 32 outputs summed forward, its 32 input gradients backward, per token.
    tokens = 8 * models.SEQ
    assert _pair_collectives(models.transformer(), models.SEQ) == {
        "all_reduce@model": {"count": 2, "bytes": tokens * (32 + 32) * 4}
    }
    # The MLP's pair reads the model's input, whose gradient no step needs.
    assert _pair_collectives(models.mlp(), 1) == {
        "all_reduce@model": {"count": 1, "bytes": 8 * 32 * 4}
    }
    # Subclassed: the order weights were made says nothing of the data flow.
    assert _pair_collectives(models.subclassed(), 1)["all_reduce@model"]["count"] == 2
    groups = model_groups(models.mlp())
    workload = {"batch_size": 8, "sequence_length": 1, "slots": 2}
    workload["activation_itemsize"] = 4
    data_parallel = costs.evaluate(
        groups, (2, 1), {}, False, workload, models.CONSTANTS
    )
    assert data_parallel.collectives["all_reduce@batch"]["count"] == 1


def _figures(model, mesh, split, fsdp, batch_size=models.BATCH):
    groups = model_groups(model)
    choices = {g.role: "megatron" for g in groups if split and "megatron" in g.options}
    workload = {"batch_size": batch_size, "sequence_length": 1, "slots": 2}
    workload["activation_itemsize"] = 4
    return costs.evaluate(groups, mesh, choices, fsdp, workload, models.CONSTANTS)


@pytest.mark.parametrize("force", ["model", "fsdp", "both"])
def test_a_memory_budget_forces_the_cheapest_layout_that_fits(force):
    model = models.wide_mlp()
    one_device = _plan(model, devices=[(1, 1)]).bytes_per_device
    mesh = {"model": (1, 4), "fsdp": (4, 1), "both": (2, 2)}[force]
    batch = 1 if force == "model" else models.BATCH  # No FSDP on a batch of 1.
    budget = int(one_device * 0.8)
    if force == "both":
        both = _figures(model, mesh, True, True).bytes_per_device
        model_only = _figures(model, mesh, True, False).bytes_per_device
        fsdp_only = _figures(model, mesh, False, True).bytes_per_device
        assert both < min(model_only, fsdp_only)
        budget = both
    plan = _plan(model, devices=[mesh], batch_size=batch, memory_per_device=budget)
    assert plan.bytes_per_device <= budget < one_device
    splits = [c for c in plan.best["choices"].values() if c != "replicated"]
    assert bool(splits) == (force in ("model", "both"))
    assert plan.best["fsdp"] == (force in ("fsdp", "both"))
    on_batch = any("batch" in axes for _, _, axes in plan.weights)
    assert on_batch == (force in ("fsdp", "both"))


def test_errors_name_the_argument_and_the_value():
    with pytest.raises(ValueError, match="must be built"):
        tf_mp.plan(models.Subclassed(), batch_size=8)
    with pytest.raises(ValueError, match=r"batch_size=8.*3x1"):
        _plan(models.mlp(), devices=[(3, 1)])
    with pytest.raises(ValueError, match="memory_per_device='2 parsecs'"):
        _plan(models.mlp(), memory_per_device="2 parsecs")
    with pytest.raises(ValueError, match="objective='speed'"):
        _plan(models.mlp(), objective="speed")
    with pytest.raises(ValueError, match="batch_size=3"):
        _plan(models.odd_mlp(), devices=8, batch_size=3)


def test_a_budget_nothing_fits_names_the_smallest_that_would():
    model = models.mlp()
    leanest = _plan(model, devices=8, objective="memory")
    with pytest.raises(ValueError) as error:
        _plan(model, devices=8, memory_per_device=1000)
    message = str(error.value)
    assert "memory_per_device=1000" in message
    assert (
        f"smallest per-device memory that fits is {leanest.bytes_per_device:,}"
        in message
    )
    assert "(batch x model) mesh" in message


def test_a_plan_round_trips_through_json(tmp_path):
    plan = _plan(models.transformer(), devices=4)
    path = plan.save(str(tmp_path / "plan.json"))
    loaded = tf_mp.Plan.load(path)
    assert loaded.to_dict() == json.loads(json.dumps(plan.to_dict()))
    assert loaded.layout_map().mesh.shape == plan.mesh_shape
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a tf_mp plan"):
        tf_mp.Plan.load(str(tmp_path / "other.json"))


def test_summary_lists_the_candidates_side_by_side():
    plan = _plan(models.transformer(), devices=4)
    lines = []
    plan.summary(print_fn=lines.append)
    table = lines[0].splitlines()
    assert "mesh" in table[1] and "MiB/device" in table[1]
    assert len(table) == 3 + min(10, len(plan.candidates))


def test_scope_lays_out_a_model_built_inside_it():
    plan = _plan(models.transformer(), devices=[(1, 4)], objective="memory")
    with plan.scope():
        model = models.transformer()
    report = tf_mp.shard_report(model)
    assert [row.axes for row in report.rows] == [axes for _, _, axes in plan.weights]
    assert report.bytes_per_device == plan.best["weight_bytes"]


def test_keras_layout_map_carries_the_split_weights():
    plan = _plan(models.transformer(), devices=[(1, 4)], objective="memory")
    layout_map = plan.keras_layout_map()
    assert isinstance(layout_map, keras.distribution.LayoutMap)
    split = {p: a for p, _, a in plan.weights if any(a)}
    assert split
    for path, axes in split.items():
        assert tuple(layout_map[path].axes) == tuple(axes)


def test_the_best_candidates_are_measured():
    plan = _plan(models.mlp(), devices=[(2, 2), (4, 1)], measure=2)
    measured = [c["measured_step_s"] for c in plan.candidates[:2]]
    assert all(s is not None and s > 0 for s in measured)
    assert measured == sorted(measured)
    assert all(c["compiled_collectives"] is None for c in plan.candidates[2:])


def test_measured_collectives_are_those_of_the_compiled_step():
    """Counted in the DTensor step each measured candidate compiled (what
    `tests/layers/megatron_communication_test.py` checks against DTensor's
    MLIR dump), and reported by `plan.collectives`."""
    plan = _plan(models.mlp(), devices=[(1, 2)], objective="memory", measure=2)
    split, whole = plan.candidates[:2]
    assert set(split["choices"].values()) == {"megatron"}
    # The row-parallel `down`'s output (batch 8 x 32 float32), summed over
    # the model axis. Backward there is none: the column-parallel `up` reads
    # the model's input, whose gradient no step needs; the cost model agrees.
    assert split["compiled_collectives"] == {
        "all_reduce@model": {"count": 1, "bytes": 8 * 32 * 4}
    }
    assert split["collectives"] == split["compiled_collectives"]
    assert plan.collectives == split["compiled_collectives"]
    assert whole["compiled_collectives"] == {}
    data_parallel = _plan(models.mlp(), devices=[(2, 1)], measure=1)
    ((name, entry),) = data_parallel.collectives.items()
    # The gradients of every weight, grouped into one all-reduce.
    assert name == "all_reduce@batch" and entry["count"] == 1
    weights = sum(int(w.numpy().nbytes) for w in models.mlp().weights)
    assert entry["bytes"] >= weights


def test_an_untied_output_projection_splits_with_its_embedding():
    backbone = families.backbone("llama", num_layers=1, tie_word_embeddings=False)
    embedding = next(g for g in model_groups(backbone) if g.kind == "embedding")
    paths = [w.path.rsplit("/", 1)[-1] for w in embedding.weights]
    assert paths == ["embeddings", "reverse_embeddings"]
    assert embedding.options["vocabulary"] == (0, 1)  # (vocab, h), (h, vocab)
    assert embedding.options["hidden"] == (1, 0)


def test_square_gated_feed_forwards_pair_in_the_order_they_were_made():
    """Gemma's ffw_gating, ffw_gating_2 and ffw_linear are all square when
    hidden is half the intermediate size: shapes cannot say which is the row."""
    # Hidden 16, intermediate 32, head_dim 4.
    backbone = families.backbone("gemma", num_layers=1, intermediate_dim=32)
    feedforward = next(g for g in model_groups(backbone) if g.kind == "feedforward")
    dims = {
        w.path.split("/")[-2]: d
        for w, d in zip(feedforward.weights, feedforward.options["megatron"])
    }
    assert dims == {"ffw_gating": 1, "ffw_gating_2": 1, "ffw_linear": 0}


def test_a_pair_is_two_projections_of_one_layer():
    """A nested backbone's weights carry no prefix: its pooler and the task's
    head look like siblings by path, but the head does not read the pooler
    (paired, their split cost 10 more all-reduces and 5 all-gathers in the
    compiled step of BERT on 2x2)."""
    backbone = families.backbone("bert")
    inputs = {
        name: keras.Input((8,), dtype="int32", name=name) for name in backbone.input
    }
    pooled = keras.layers.GlobalAveragePooling1D()(backbone(inputs)["sequence_output"])
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(pooled))
    pairs = [g.name for g in model_groups(model) if g.kind == "feedforward"]
    assert pairs and all("transformer_layer" in name for name in pairs)
    alone = {g.name for g in model_groups(model) if g.kind == "weight"}
    assert {"pooled_dense/kernel", "logits/kernel"} <= alone
