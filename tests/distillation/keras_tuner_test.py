"""A `Distiller` is built on construction, so Keras Tuner can size and reload it."""

import keras_tuner
import numpy as np

import tf_mp
from tests.distillation import tiny_bert


def test_keras_tuner_counts_and_reloads_the_best_distiller(tmp_path):
    teacher = tiny_bert.classifier(seed=0)

    def build(hp):
        student = tiny_bert.classifier(
            num_layers=hp.Choice("layers", [1, 2]), hidden=8, heads=2, ff=16, seed=1
        )
        distiller = tf_mp.Distiller(teacher, student, hidden_weight=1.0)
        return tiny_bert.compile_distiller(distiller)

    x, y = tiny_bert.data(16)
    tuner = keras_tuner.RandomSearch(
        build,
        objective="val_loss",
        max_trials=2,
        directory=str(tmp_path),
        project_name="distill",
        max_model_size=10**6,
    )
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=8, verbose=0)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, tf_mp.Distiller)
    # Sized for real (teacher + student), not 0 as for an unbuilt model.
    assert best.count_params() > teacher.count_params()
    results = best.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    np.testing.assert_allclose(results["loss"], trials[0].score, rtol=1e-5)
