"""`tf-mp distill --transfer-data / --augment`: the teacher labels extra rows
once; bad transfer options exit 2 with one line."""

import json

import pytest

from tf_mp.cli.main import main

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


def test_transfer_rows_and_augmented_copies_are_scored_once(teacher, tmp_path):
    model, data = teacher
    transfer = tmp_path / "transfer.txt"
    transfer.write_text(TRANSFER)
    output = tmp_path / "distilled"
    status = main(
        [
            "distill", "--teacher", str(model), "--data", str(data),
            "--seq-len", "16", "--transfer-data", str(transfer), "--augment", "2",
            "--epochs", "1", "--lr-schedule", "linear", "--batch-size", "8",
            "--cache-dir", str(tmp_path / "cache"),
            "--output", str(output),
        ]
    )  # fmt: skip
    assert status == 0
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    labelled = metrics["train_examples"]  # 90% of the rows; 10% validate.
    assert metrics["augmented_rows"] == 2 * labelled
    assert metrics["transfer_rows"] == 10 + 2 * labelled
    assert metrics["teacher_scored_rows"] == labelled + 10 + 2 * labelled
    with open(model.parent / "metrics.json") as f:
        fine_tuning = json.load(f)["train_seconds"]
    assert metrics["teacher_fine_tuning_seconds"] == fine_tuning
    (saved,) = (tmp_path / "cache").iterdir()  # The outputs, kept on disk.
    assert (saved / "done").exists()


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
    teacher, tmp_path, capsys, extra, message
):
    model, data = teacher
    files = {"{empty}": tmp_path / "empty.txt", "{table}": tmp_path / "t.tsv"}
    files["{empty}"].write_text("\n")
    files["{table}"].write_text("sentence\tlabel\nfine\t1\n")
    extra = [str(files.get(a, a)) for a in extra]
    for name, path in files.items():
        message = message.replace(name, str(path))
    argv = ["distill", "--teacher", str(model), "--data", str(data), *extra]
    status = main([*argv, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[0].startswith("tf-mp distill: error: ") and message in err[0], err
