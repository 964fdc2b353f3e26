"""`tf-mp distill` and `tf-mp tune` with `--transfer-data / --augment`: the
teacher labels extra rows once; bad transfer options exit 2 with one line."""

import json

import pytest

from tf_mp.cli.commands import main

ROWS = 24
TRAIN = "sentence\tlabel\n" + "".join(
    f"{'a good' if i % 2 else 'a bad'} film number {i}\t{i % 2}\n" for i in range(ROWS)
)
TRANSFER = "".join(f"another film {i} was fine\n" for i in range(10))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny teacher fine-tuned by `tf-mp train` (its metrics.json beside it)."""
    directory = tmp_path_factory.mktemp("teacher")
    data = directory / "train.tsv"
    data.write_text(TRAIN)
    argv = ["train", "--preset", "tiny", "--data", str(data), "--epochs", "1"]
    argv += ["--seq-len", "16", "--batch-size", "8"]
    assert main([*argv, "--output", str(directory / "out")]) == 0
    return directory / "out" / "model", data


def _run_with_transfer_rows(command, teacher, tmp_path, *extra):
    """Runs `command` with 10 transfer texts and 2 copies per labelled row;
    returns its output directory."""
    model, data = teacher
    transfer = tmp_path / "transfer.txt"
    transfer.write_text(TRANSFER)
    output = tmp_path / command
    status = main(
        [
            command, "--teacher", str(model), "--data", str(data),
            "--seq-len", "16", "--transfer-data", str(transfer), "--augment", "2",
            "--batch-size", "8", "--output", str(output), *extra,
        ]
    )  # fmt: skip
    assert status == 0
    return output


def test_transfer_rows_and_augmented_copies_are_scored_once(teacher, tmp_path):
    model, _ = teacher
    extra = ["--epochs", "2"]
    output = _run_with_transfer_rows(
        "distill", teacher, tmp_path, *extra, "--cache-dir", str(tmp_path / "cache")
    )
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    labelled = metrics["train_examples"]  # 90% of the rows; 10% validate.
    assert metrics["augmented_rows"] == 2 * labelled
    assert metrics["transfer_rows"] == 10 + 2 * labelled
    rows = labelled + 10 + 2 * labelled
    assert metrics["teacher_scored_rows"] == rows
    # The default schedule decays to 0 over exactly the steps run: batches of
    # 8 over every row, labelled and transfer, for 2 epochs.
    assert metrics["lr_schedule"] == "linear"
    assert metrics["train_steps"] == metrics["lr_decay_steps"] == 2 * -(-rows // 8)
    assert metrics["final_learning_rate"] == 0.0
    with open(model.parent / "metrics.json") as f:
        fine_tuning = json.load(f)["train_seconds"]
    assert metrics["teacher_fine_tuning_seconds"] == fine_tuning
    (saved,) = (tmp_path / "cache").iterdir()  # The outputs, kept on disk.
    assert (saved / "done").exists()


def test_a_search_chooses_between_no_transfer_rows_and_each_set(teacher, tmp_path):
    extra = ["--tuner", "random", "--trials", "1", "--init", "teacher"]
    output = _run_with_transfer_rows("tune", teacher, tmp_path, *extra)
    with open(output / "trials.json") as f:
        trials = json.load(f)
    chosen = {t["hyperparameters"]["transfer"] for t in trials["trials"]}
    assert chosen <= {"none", "transfer", "augmented"} and chosen
    labelled, validation = ROWS - ROWS // 10, ROWS // 10  # tf-mp's 90/10 split.
    assert trials["teacher_scored_rows"] == labelled + 10 + 2 * labelled + validation
    assert trials["teacher_runs"] == 1


@pytest.mark.parametrize("command", ["distill", "tune"])
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--augment", "0"], "--augment must be >= 1. Received: --augment 0"),
        (["--augment", "-3"], "--augment must be >= 1. Received: --augment -3"),
        (["--transfer-data", "{empty}"], "--transfer-data {empty}: No texts"),
        (
            ["--transfer-data", "{table}", "--transfer-text-column", "review"],
            "--transfer-data {table}: Unknown column: --transfer-text-column 'review'",
        ),
        (["--transfer-data", "./missing.txt"], "No such data file"),
    ],
)
def test_bad_transfer_options_exit_2_with_one_line(
    teacher, tmp_path, capsys, command, extra, message
):
    model, data = teacher
    files = {"{empty}": tmp_path / "empty.txt", "{table}": tmp_path / "t.tsv"}
    files["{empty}"].write_text("\n")
    files["{table}"].write_text("sentence\tlabel\nfine\t1\n")
    extra = [str(files.get(a, a)) for a in extra]
    for name, path in files.items():
        message = message.replace(name, str(path))
    argv = [command, "--teacher", str(model), "--data", str(data), *extra]
    status = main([*argv, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[0].startswith(f"tf-mp {command}: error: ") and message in err[0], err
