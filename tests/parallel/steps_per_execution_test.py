"""`steps_per_execution` on a mesh: several steps per function call, same training.

Up to `MAX_STEPS_PER_CALL` steps run in one call, in a `tf.while_loop` whose
state is the values of the variables, so each step reads the previous step's
new weights, optimizer slots, metric state and random-number state as data.
The referee is the same model trained on one device with the same
`steps_per_execution` by Keras's own trainer. (Keras 3.15's TensorFlow
trainer, when the steps per execution do not divide an epoch's batches, runs
whole executions across the epoch boundary: with 16 batches and 3 steps per
execution, 2 epochs see 18 and 14 batches. tf_mp follows Keras there too.)
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.python.eager import context

import tf_mp
from tests import tiny_models
from tf_mp.parallel import state
from tf_mp.parallel.dtensor import loop_names
from tf_mp.parallel.dtensor import steps
from tf_mp.parallel.dtensor.batches import distribute_stacked_batches

BATCH = 2  # 16 batches an epoch: more than MAX_STEPS_PER_CALL.


def _fit(model, steps_per_execution, epochs=2, samples=None, batch_size=BATCH):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss=tiny_models.loss(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )
    x, y = _data_for(model)
    x = {k: v[:samples] for k, v in x.items()} if isinstance(x, dict) else x[:samples]
    y = y[:samples]
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0
    )
    evaluation = model.evaluate(
        x, y, batch_size=batch_size, verbose=0, return_dict=True
    )
    return history.history, evaluation, model.get_weights()


def _data_for(model):
    return tiny_models.mlp_data() if model.name == "mlp" else tiny_models.bert_data()


def _on_mesh(build, mesh):
    layout_map = (
        tiny_models.mlp_layout_map
        if build in (tiny_models.mlp, _mlp_with_dropout)
        else tf_mp.bert_layout_map
    )
    with tf_mp.ModelParallel(mesh, layout_map(mesh)).scope():
        return build()


def test_more_steps_per_execution_than_one_call_runs():
    assert tiny_models.NUM_SAMPLES // BATCH > steps.MAX_STEPS_PER_CALL


def _assert_same_training(got, want):
    """`_fit`'s (history, evaluation, weights) against the referee's."""
    history, evaluation, weights = got
    want_history, want_eval, want_weights = want
    for key, values in want_history.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-5, err_msg=key)
    for key, value in want_eval.items():
        np.testing.assert_allclose(evaluation[key], value, rtol=1e-5, err_msg=key)
    for got_weight, want_weight in zip(weights, want_weights):
        np.testing.assert_allclose(got_weight, want_weight, rtol=1e-4, atol=1e-5)


@functools.cache
def _keras_on_one_device(build, steps_per_execution):
    return _fit(build(), steps_per_execution)


# Every mesh of issue 21; 10 steps per execution run as calls of 8 and 2
# steps, 3 do not divide the epoch's 16 batches. Each call length is a trace
# (8, 2 and 6 steps for `fit`, again for `evaluate`), so the MLP
# (model-parallel layers too) takes those cases, and BERT runs 4 steps per call.
# On (1, 2) the batch axis has one device: the stacked batches are still laid
# out on it (unsharded, a step's `tf.gather` of its batch failed DTensor's rule).
@pytest.mark.parametrize(
    "build, mesh_shape, steps_per_execution",
    [
        (tiny_models.mlp, (1, 2), 3),
        (tiny_models.mlp, (2, 1), 10),
        # Slow: BERT on 2x2 in the loop is also the dropout case below.
        pytest.param(tiny_models.bert_classifier, (2, 2), 4, marks=pytest.mark.slow),
        (tiny_models.bert_classifier, (1, 2), 4),
    ],
    ids=["mlp-1x2-3", "mlp-2x1-10", "bert-2x2-4", "bert-1x2-4"],
)
def test_fit_matches_keras_on_one_device(
    make_mesh, build, mesh_shape, steps_per_execution
):
    want_history, want_eval, want_weights = _keras_on_one_device(
        build, steps_per_execution
    )
    model = _on_mesh(build, make_mesh(mesh_shape))
    history, evaluation, weights = _fit(model, steps_per_execution)
    assert set(history) == set(want_history)
    _assert_same_training(
        (history, evaluation, weights), (want_history, want_eval, want_weights)
    )


def _mlp_with_dropout():
    """The tiny MLP with dropout on its sharded (column-parallel) and its
    replicated (row-parallel) activations."""
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(16, activation="tanh", name="middle"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(4, name="logits"),
        ],
        name="mlp",
    )


@pytest.mark.parametrize(
    "build",
    [
        _mlp_with_dropout,
        # Slow: the same rule, through keras-hub's dropout layers (~60 s).
        pytest.param(tiny_models.partitioned_bert_with_dropout, marks=pytest.mark.slow),
    ],
    ids=["mlp", "bert"],
)
def test_dropout_masks_do_not_depend_on_steps_per_execution(make_mesh, build):
    """Each unrolled step draws from the seed state the previous step left, as
    separate calls do: with dropout on, 2 steps per call train exactly as 1."""
    mesh = make_mesh((2, 2))
    one = _fit(_on_mesh(build, mesh), 1)
    two = _fit(_on_mesh(build, mesh), 2)
    for key, values in one[0].items():
        np.testing.assert_allclose(two[0][key], values, rtol=1e-6, err_msg=key)
    for got, want in zip(two[2], one[2]):
        # One graph for two steps rounds a few near-zero weights differently.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ten_steps_per_execution_are_two_calls(make_mesh, monkeypatch):
    """Ten steps per execution run as two calls of the traced steps (8 batches,
    then 2), and the epoch's last 6 batches as one. Counted where the engine
    calls them (`_call_on_mesh`), so its recovery from a clash of loop names
    (`loop_names.call_replacing_stale_functions`) still sees the traced
    functions themselves."""
    mesh = make_mesh((2, 1))
    model = _on_mesh(tiny_models.mlp, mesh)
    model.compile(optimizer="adam", loss=tiny_models.loss(), steps_per_execution=10)
    _, on_batches, on_stacked_batches, _ = model.make_train_function().args
    calls = []
    call_on_mesh = steps._call_on_mesh

    def counting(function, distribution, *args):
        if function is on_stacked_batches:
            calls.append(args[1])  # (stacked batches, their number)
        elif function is on_batches:
            calls.append(len(args[0]))  # (a list of batches)
        return call_on_mesh(function, distribution, *args)

    monkeypatch.setattr(steps, "_call_on_mesh", counting)
    x, y = tiny_models.mlp_data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert calls == [8, 2, 6]


def test_a_last_batch_of_another_size_is_placed_on_its_own(make_mesh):
    """30 rows in batches of 4: the chunk with the last batch (2 rows) cannot be
    stacked; its batches are placed one by one, and training still matches."""
    want = _fit(tiny_models.mlp(), 8, epochs=1, samples=30, batch_size=4)
    model = _on_mesh(tiny_models.mlp, make_mesh((2, 1)))
    got = _fit(model, 8, epochs=1, samples=30, batch_size=4)
    for key, values in want[0].items():
        np.testing.assert_allclose(got[0][key], values, rtol=1e-5, err_msg=key)
    for got_weight, want_weight in zip(got[2], want[2]):
        np.testing.assert_allclose(got_weight, want_weight, rtol=1e-4, atol=1e-5)


def test_the_steps_of_a_call_are_one_loop_whatever_their_number(make_mesh):
    """k steps per call trace one `while` loop, not k copies of the step: the
    traced function is the same size for 4 steps as for 8 (unrolled, DTensor's
    compile time grew faster than k: 13 s for 1 step of a tiny BERT on 2x2,
    202 s for 8)."""
    model = _on_mesh(tiny_models.mlp, make_mesh((2, 1)))
    model.compile(optimizer="adam", loss=tiny_models.loss(), steps_per_execution=8)
    x, y = tiny_models.mlp_data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    _, _, on_stacked_batches, distribution = model.make_train_function().args

    def op_types(steps_per_call):
        chunk = [
            (x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH])
            for i in range(steps_per_call)
        ]
        stacked = distribute_stacked_batches(chunk, distribution)
        with state.step_context(distribution):
            function = on_stacked_batches.get_concrete_function(stacked, steps_per_call)
        return [op.type for op in function.graph.get_operations()]

    eight, four = op_types(8), op_types(4)
    assert "StatelessWhile" in eight or "While" in eight
    assert len(eight) == len(four)

    # Keras's own switch: unrolled steps, one copy of the step per batch.
    model.unrolled_steps_per_execution = 8
    model.make_train_function(force=True)
    _, _, on_stacked_batches, distribution = model.train_function.args
    unrolled = op_types(8)
    assert "StatelessWhile" not in unrolled and "While" not in unrolled
    assert len(unrolled) > len(eight)


def test_no_loop_name_with_digits_appended_is_another_loop_name():
    """DTensor registers a loop it expands again under its name with a digit
    appended (`tf_mp_steps_4` also as `tf_mp_steps_41_body`). With names that
    ended in their number, loop 3 plus "3" was loop 33's name, and a full CI
    run (2026-12-06) stopped on "Cannot add function 'tf_mp_steps_33_body'
    because a different function with the same name already exists"."""
    names = [loop_names.unique_loop_name("tf_mp_steps") for _ in range(120)]
    taken = set(names)
    assert len(taken) == len(names)
    for name in names:
        for digits in ("1", "2", "3", "11", "21"):
            assert name + digits not in taken, name


def test_a_function_of_an_earlier_step_under_a_loop_s_name_is_replaced(make_mesh):
    """The eager context already holds a different function under the name
    DTensor gives this call's loop (as full test runs met, in orders one
    module does not reproduce): the earlier one is dropped, the call runs,
    and training still equals Keras on one device."""
    want = _keras_on_one_device(tiny_models.mlp, 3)
    taken = tf.function(lambda x: x * 2.0).get_concrete_function(
        tf.TensorSpec([None], tf.float32)
    )
    next_loop = state.process().loops + 1
    for n in range(next_loop, next_loop + 4):
        for part in ("body", "cond"):
            stale = function_pb2.FunctionDef()
            stale.CopyFrom(taken.function_def)
            stale.signature.name = f"tf_mp_steps_{n}_loop_{part}"
            context.context().add_function_def(stale)
    got = _fit(_on_mesh(tiny_models.mlp, make_mesh((1, 2))), 3)
    _assert_same_training(got, want)


def test_a_step_that_writes_another_variable_runs_unrolled(make_mesh):
    """A custom `train_step` that writes a mesh variable the model does not
    track (not part of the loop's state): its steps run unrolled, and every
    write lands."""
    mesh = make_mesh((2, 1))
    with tf_mp.ModelParallel(mesh, tiny_models.mlp_layout_map(mesh)).scope():
        counter = keras.Variable(0.0, trainable=False)
        base = tiny_models.mlp()

        class Counting(keras.Model):
            def train_step(self, data):
                counter.assign_add(1.0)
                return super().train_step(data)

        model = Counting(base.inputs, base.outputs)
    model.compile(optimizer="adam", loss=tiny_models.loss(), steps_per_execution=8)
    x, y = tiny_models.mlp_data()
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert float(counter.numpy()) == 2 * tiny_models.NUM_SAMPLES // BATCH
    assert int(model.optimizer.iterations.numpy()) == 2 * (
        tiny_models.NUM_SAMPLES // BATCH
    )


def test_mixed_float16_loss_scaling_in_the_loop_matches_one_step_a_call(make_mesh):
    """With `mixed_float16`, Keras's `LossScaleOptimizer` updates its loss scale
    in a `cond` inside each looped step: 4 steps per call train as 1 per call
    (which runs no loop)."""
    mesh = make_mesh((1, 2))
    keras.config.set_dtype_policy("mixed_float16")
    try:
        results = []
        for steps_per_execution in (1, 4):
            model = _on_mesh(tiny_models.mlp, mesh)
            results.append(_fit(model, steps_per_execution))
            optimizer = model.optimizer
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            # The loss scale, its step counter, Adam's slots, `iterations`.
            results[-1] += ([v.numpy() for v in optimizer.variables],)
    finally:
        keras.config.set_dtype_policy("float32")
    (*one, one_state), (*four, four_state) = results
    _assert_same_training(four, one)
    assert len(four_state) == len(one_state)
    for got, want in zip(four_state, one_state):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_distillers_steps_run_in_the_loop_on_a_mesh(make_mesh):
    """The Distiller's loss trackers are loop state like the metrics: its
    `steps_per_execution` steps are not unrolled, and 4 steps a call on 2x2
    train as the unsharded distiller does one step a call."""
    from tests.distillation import distributed_distiller_test as distilling

    teacher = distilling._teacher()
    history, weights = distilling._reference(teacher, **distilling.KWARGS)
    with tf_mp.ModelParallel(make_mesh((2, 2))).scope():
        sharded = distilling._sharded_copy(teacher)
        distiller = tf_mp.Distiller(sharded, distilling._student(), **distilling.KWARGS)
    sharded = distilling._train(distiller, steps_per_execution=4)
    assert not steps._unrolled(distiller)
    assert int(distiller.optimizer.iterations.numpy()) == 8
    distilling.assert_same_distillation(sharded, (history, weights))
