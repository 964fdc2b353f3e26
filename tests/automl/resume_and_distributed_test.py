"""A killed search resumes without losing trials; Keras Tuner's chief/worker
mode runs `search_student` unchanged. Both in subprocesses, bounded in time."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(directory, max_trials, epochs=1, **env):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.automl.search_script",
            str(directory),
            str(max_trials),
            str(epochs),
        ],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _completed(directory):
    done = {}
    for path in glob.glob(os.path.join(directory, "search", "trial_*", "trial.json")):
        try:
            with open(path) as f:
                trial = json.load(f)
        except (OSError, ValueError):  # Being written.
            continue
        if trial["status"] == "COMPLETED":
            done[trial["trial_id"]] = trial["score"]
    return done


def test_a_killed_search_resumes_and_keeps_its_completed_trials(tmp_path):
    process = _start(tmp_path, max_trials=3, epochs=2)
    deadline = time.monotonic() + 240
    while not _completed(tmp_path):
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no trial completed in 240 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _completed(tmp_path)
    assert 1 <= len(before) < 3

    result = _finish(_start(tmp_path, max_trials=3, epochs=2), timeout=300)
    trials = result["trials"]
    assert len(trials) == 3
    assert all(status == "COMPLETED" for status, _ in trials.values())
    for trial_id, score in before.items():  # Kept, not re-run.
        assert trials[trial_id][1] == score


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_on_localhost(tmp_path):
    env = {
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(_free_port()),
    }
    chief = _start(tmp_path, 3, KERASTUNER_TUNER_ID="chief", **env)
    workers = [
        _start(tmp_path, 3, KERASTUNER_TUNER_ID=f"tuner{i}", **env) for i in range(2)
    ]
    try:
        ran = [_finish(worker, timeout=300) for worker in workers]
        result = _finish(chief, timeout=60)
    finally:
        for process in [chief, *workers]:
            if process.poll() is None:
                process.kill()
    assert sorted(result["trials"]) == ["0", "1", "2"]
    assert all(status == "COMPLETED" for status, _ in result["trials"].values())
    by_workers = {}
    for worker in ran:
        by_workers.update(worker["trials"])
        assert worker["teacher_runs"] == 1  # Each worker caches its teacher once.
    assert by_workers == result["trials"]
    assert result["teacher_runs"] == 0  # The chief only serves the oracle.
