"""`tf-mp`: the demo end to end in a subprocess; each subcommand's bad input
exits with status 2 and one clear line."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from tests.cli.isolated import run_cli
from tf_mp.cli import main

cli_main = importlib.import_module("tf_mp.cli.commands")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs_the_whole_job(tmp_path):
    output = tmp_path / "demo"
    process = subprocess.run(
        [sys.executable, "-m", "tf_mp", "demo", "--output", str(output)],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "demo summary" in process.stdout
    for path in (
        "teacher/model/config.json",
        "teacher/model/task.json",
        "teacher/history.json",
        "teacher/training_curves.png",
        "student/student/config.json",
        "student/teacher_vs_student.png",
        "search/trials.json",
        "search/pareto.png",
        "search/best_student/config.json",
    ):
        assert (output / path).exists(), path
    # Training curves for TensorBoard, by default beside the other outputs.
    for logs in ("teacher/logs/train", "teacher/logs/validation", "student/logs"):
        assert any(p.name.startswith("events.") for p in (output / logs).rglob("*"))
    with open(output / "teacher" / "metrics.json") as f:
        teacher = json.load(f)
    with open(output / "student" / "metrics.json") as f:
        distilled = json.load(f)
    with open(output / "search" / "trials.json") as f:
        search = json.load(f)
    student = distilled["student"]
    assert teacher["mesh"] == "batch=2,model=2"
    # The shipped corpus is easy: a trained model is far above chance (0.5).
    assert teacher["validation_accuracy"] >= 0.85
    assert student["accuracy"] >= 0.8
    # The student is block 0 of the teacher's 2.
    assert (
        2 * student["encoder parameters"]
        == (distilled["teacher"]["encoder parameters"])
    )
    assert len(search["trials"]) == 3
    # Each trial's rate decays linearly to 0, as the distillation stage's does.
    assert {t["hyperparameters"]["lr_schedule"] for t in search["trials"]} == {"linear"}
    # The teacher scored the training rows once (the cache).
    assert distilled["teacher_scored_rows"] == distilled["train_examples"]
    # Its learning rate decayed to 0 over the 4 epochs of batches of 16.
    steps = 4 * -(-distilled["train_examples"] // 16)
    assert distilled["train_steps"] == distilled["lr_decay_steps"] == steps
    assert distilled["final_learning_rate"] == 0.0
    # The search starts its students from the teacher's blocks: its best is
    # near the teacher, far above chance (0.5) on the shipped corpus.
    completed = [t for t in search["trials"] if t["status"] == "COMPLETED"]
    assert search["best_trial"]["val_accuracy"] == max(
        t["val_accuracy"] for t in completed
    )
    assert search["best_trial"]["val_accuracy"] >= 0.85
    assert search["best_trial"]["val_accuracy"] >= teacher["validation_accuracy"] - 0.1

    # The saved teacher (trained on the mesh) reloads, tokenizer included, and
    # scores what the run reported.
    import keras_hub
    import numpy as np

    from tf_mp import data

    dev = data.load(data.EMBEDDED, "validation")
    model = keras_hub.models.TextClassifier.from_preset(str(output / "teacher/model"))
    logits = model.predict(np.array(dev.texts), batch_size=32, verbose=0)
    reloaded = float(np.mean(np.argmax(logits, -1) == dev.labels))
    assert round(reloaded, 4) == teacher["validation_accuracy"]


def _run(argv, capsys):
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return status, err


def _tsv(tmp_path, text, name="data.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "sentence\tlabel\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(20))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "tiny", "--data", "missing.tsv"], "No such data file"),
        (["train", "--preset", "tiny", "--data", "{empty}"], "The dataset is empty"),
        (
            ["train", "--preset", "tiny", "--data", "{good}", "--text-column", "body"],
            "Unknown column: text_column='body'",
        ),
        (
            ["train", "--preset", "tiny", "--data", "{good}", "--num-classes", "1"],
            r"Label 1 is out of range [0, 1)",
        ),
        (["train", "--preset", "no_such_bert", "--data", "{good}"], "Unknown preset"),
        (
            [
                "train",
                "--preset",
                "tiny",
                "--data",
                "{good}",
                "--mesh",
                "batch=4,model=4",
            ],
            "--mesh batch=4,model=4 does not fit the devices",
        ),
        (
            ["train", "--preset", "tiny", "--data", "{good}", "--mesh", "model:2"],
            "--mesh must look like",
        ),
        (
            ["train", "--preset", "tiny", "--data", "{good}", "--epochs", "0"],
            "--epochs",
        ),
        (
            ["train", "--preset", "tiny", "--data", "{good}", "--batch-size", "64"],
            "--batch-size 64 is more than the 18 training rows",
        ),
        (["distill", "--teacher", "nowhere", "--data", "{good}"], "no such directory"),
        (["tune", "--teacher", "nowhere", "--data", "{good}"], "no such directory"),
        (["devices", "--virtual-devices", "0"], "--virtual-devices must be >= 1"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    files = {
        "{good}": _tsv(tmp_path, GOOD),
        "{empty}": _tsv(tmp_path, "sentence\tlabel\n", "empty.tsv"),
    }
    argv = [files.get(a, a) for a in argv] + ["--output", str(tmp_path / "out")]
    if argv[0] == "devices":
        argv = argv[:-2]
    status, err = _run(argv, capsys)
    assert status == 2
    assert err[0].startswith(f"tf-mp {argv[0]}: error: ") and message in err[0]
    assert err[1:] == ["(run with --debug for the traceback)"]


def test_debug_shows_the_traceback(tmp_path, capsys):
    status = main(["train", "--preset", "tiny", "--data", "missing.tsv", "--debug"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback (most recent call last)" in err


def test_devices_lists_the_virtual_cpus_and_mesh_shapes(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "CPU" in out and "batch=2,model=4" in out and "batch=8,model=1" in out


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "x.tsv"])  # --preset missing
    assert info.value.code == 2
    assert "--preset" in capsys.readouterr().err


def test_a_single_file_holds_out_its_last_tenth_for_validation(tmp_path):
    import argparse

    from tf_mp.cli import common

    args = argparse.Namespace(
        data=_tsv(tmp_path, GOOD),
        validation_data=None,
        data_dir=None,
        text_column=None,
        label_column=None,
        limit=None,
        seq_len=8,
        batch_size=4,
    )
    train, validation = common.load_data(args)
    assert train.texts == [f"text {i}" for i in range(18)]
    assert validation.texts == ["text 18", "text 19"]
    assert list(validation.labels) == [0, 1] and validation.num_classes == 2


def _raised(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except (ValueError, TypeError) as error:
        return error
    raise AssertionError(f"{function} did not raise")


def test_only_tf_mp_argument_errors_are_shown_as_one_line():
    import numpy as np

    from tf_mp.utils.checks import check_number

    assert cli_main.is_input_error(_raised(check_number, "epochs", 0, low=1))
    assert cli_main.is_input_error(FileNotFoundError("no such file"))
    # Raised inside NumPy (or TensorFlow, Keras): a bug in tf_mp's use of it.
    assert not cli_main.is_input_error(_raised(np.reshape, np.zeros(3), (2,)))


def test_a_bug_shows_its_traceback(monkeypatch, capsys):
    import numpy as np

    from tf_mp.cli import devices

    def broken(args):
        np.reshape(np.zeros(3), (2,))

    monkeypatch.setattr(devices, "run", broken)
    with pytest.raises(ValueError, match="cannot reshape"):
        cli_main.main(["devices"])


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["train", "--preset", "tiny", "--data", "/nonexistent/file.tsv"],
            "tf-mp train: error: No such data file: /nonexistent/file.tsv",
        ),
        (
            ["tune", "--teacher", "nowhere", "--data", "tf_mp/sentiment"],
            "tf-mp tune: error: --teacher nowhere: no such directory",
        ),
        (
            ["distill", "--teacher", ".", "--data", "./no_such_dir"],
            "tf-mp distill: error: No such data file or directory: ./no_such_dir",
        ),
        (
            ["train", "--preset", "tiny", "--data", "x.tsv", "--batch-size", "0"],
            "tf-mp train: error: --batch-size must be >= 1. Received: --batch-size 0",
        ),
        (
            ["tune", "--teacher", ".", "--data", "tf_mp/sentiment", "--init", "zeros"],
            "tf-mp tune: error: --init takes teacher and/or random. Received: "
            "--init zeros",
        ),
        (
            ["tune", "--teacher", ".", "--data", "x.tsv", "--learning-rates", "1e-3,x"],
            "tf-mp tune: error: --learning-rates must be a comma-separated list. "
            "Received: --learning-rates 1e-3,x",
        ),
    ],
)
def test_bad_arguments_are_reported_before_tensorflow_is_imported(tmp_path, argv, line):
    status, imported, err = run_cli(argv, tmp_path)
    assert status == 2, err
    assert not imported
    assert err == [line, "(run with --debug for the traceback)"]


def test_main_stays_the_entry_point_once_the_commands_module_is_imported():
    # The commands lived in `tf_mp/cli/main.py` once: importing that module
    # replaced the package's `main` function by the module, so
    # `from tf_mp.cli import main` gave a module after any test (or user code)
    # had imported it, and the CLI tests failed in some orders.
    import tf_mp.cli

    importlib.import_module("tf_mp.cli.commands")
    assert callable(tf_mp.cli.main)
    assert tf_mp.cli.main(["devices"]) == 0
