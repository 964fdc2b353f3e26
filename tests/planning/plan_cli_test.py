"""`tf-mp plan` and `tf-mp train --mesh auto`."""

import json

import pytest

import tf_mp
from tf_mp.cli.commands import main


@pytest.fixture(autouse=True)
def _constants_cache(tmp_path, monkeypatch):
    """Measured constants go to the test's own cache, not the user's."""
    monkeypatch.setenv("TF_MP_CACHE_DIR", str(tmp_path / "cache"))


def test_plan_prints_the_candidates_and_writes_plan_json(tmp_path, capsys):
    output = tmp_path / "out" / "plan.json"
    argv = ["plan", "--devices", "4", "--batch-size", "8", "--seq-len", "16"]
    assert main(argv + ["--measure", "1", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "MiB/device" in printed and f"Wrote {output}" in printed
    plan = tf_mp.Plan.load(str(output))
    assert plan.settings["devices"] == 4
    assert plan.best["measured_step_s"] > 0
    constants = json.loads((tmp_path / "cache" / "plan_constants.json").read_text())
    assert set(next(iter(constants.values()))) == {
        "flops_per_s",
        "latency_s",
        "bytes_per_s",
    }


def test_plan_reports_a_budget_nothing_fits_in_one_line(tmp_path, capsys):
    argv = ["plan", "--devices", "4", "--memory-per-device", "10KB", "--measure", "0"]
    assert main(argv + ["--output", str(tmp_path / "plan.json")]) == 2
    error = capsys.readouterr().err
    assert "memory_per_device='10KB'" in error
    assert "smallest per-device memory that fits" in error
    assert not (tmp_path / "plan.json").exists()


def test_train_mesh_auto_plans_then_trains(tmp_path, capsys):
    output = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--data", "tf_mp/sentiment", "--limit", "64"]
    argv += ["--batch-size", "8", "--seq-len", "16", "--epochs", "1"]
    argv += ["--mesh", "auto", "--virtual-devices", "8", "--output", str(output)]
    assert main(argv + ["--no-tensorboard"]) == 0
    plan = tf_mp.Plan.load(str(output / "plan.json"))
    metrics = json.loads((output / "metrics.json").read_text())
    mesh = plan.mesh_shape
    assert metrics["mesh"] == f"batch={mesh['batch']},model={mesh['model']}"
    assert 0.0 <= metrics["validation_accuracy"] <= 1.0
