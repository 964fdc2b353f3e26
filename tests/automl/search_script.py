"""A tiny `search_student` run in its own process (resume and distributed tests).

    python -m tests.automl.search_script DIRECTORY MAX_TRIALS [EPOCHS]

Prints one JSON line: the trial ids, statuses and scores the search saw.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(directory, max_trials, epochs=1):
    import tf_mp
    from tests.distillation import tiny_bert

    teacher = tiny_bert.classifier(seed=0)
    result = tf_mp.automl.search_student(
        teacher,
        tiny_bert.data(64, seed=0),
        tiny_bert.data(32, seed=1),
        tuner="random",
        max_trials=max_trials,
        epochs=epochs,
        batch_size=16,
        directory=directory,
        project_name="search",
        seed=3,
    )
    print(
        json.dumps(
            {
                "trials": {
                    t["trial_id"]: [t["status"], t.get("val_accuracy")]
                    for t in result.trials
                },
                "teacher_runs": result.teacher_runs,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(a) for a in sys.argv[3:]))
