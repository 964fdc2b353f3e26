"""A two-trial student search on a mesh, for the multi-process tests: run by
every process of a mesh, and by one process on one device as the reference."""

import tf_mp
from tests.distillation import tiny_bert
from tf_mp.automl import StudentHyperModel
from tf_mp.utils.scopes import optional_scope


def run_search(mesh, directory):
    """The trials' rows (hyperparameters, figures, score) of a seeded random
    search whose teacher and students live on `mesh` (or on one device)."""
    distribution = None
    if mesh is not None:
        distribution = tf_mp.ModelParallel(mesh, tf_mp.bert_layout_map(mesh))
    with optional_scope(distribution):
        teacher = tiny_bert.classifier(seed=0)
    result = tf_mp.automl.search_student(
        teacher,
        tiny_bert.data(64, seed=0),
        tiny_bert.data(32, seed=1),
        # The heads that divide a model axis of 2, on a mesh or not: one space.
        hypermodel=StudentHyperModel(
            teacher,
            tf_mp.automl.StudentSpace(num_heads=[2, 4]),
            distribution=distribution,
            seed=1,
        ),
        tuner="random",
        max_trials=2,
        # Never rejects: exercises the latency exchange between processes.
        budget=tf_mp.automl.Budget(max_latency_ms=1e6),
        batch_size=16,
        directory=str(directory),
        project_name="search",
        seed=1,
    )
    return [
        {
            "status": row["status"],
            "hyperparameters": row["hyperparameters"],
            "val_accuracy": row.get("val_accuracy"),
            "latency_ms_batch_1": row["latency_ms_batch_1"],
        }
        for row in result.trials
    ]
