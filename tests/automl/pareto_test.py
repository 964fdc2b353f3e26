import pytest

from tf_mp.automl import pareto_front


def _ids(rows):
    return [row["id"] for row in rows]


def test_front_of_a_hand_made_table():
    rows = [
        {"id": "a", "acc": 0.90, "params": 100, "ms": 5.0},  # most accurate
        {"id": "b", "acc": 0.85, "params": 50, "ms": 4.0},  # smaller and faster
        {"id": "c", "acc": 0.85, "params": 60, "ms": 4.0},  # dominated by b
        {"id": "d", "acc": 0.80, "params": 40, "ms": 6.0},  # smallest
        {"id": "e", "acc": 0.70, "params": 70, "ms": 3.0},  # fastest
        {"id": "f", "acc": 0.70, "params": 70, "ms": 3.5},  # dominated by e
        {"id": "g", "acc": 0.90, "params": 100, "ms": 5.0},  # ties a: kept
        {"id": "h", "acc": None, "params": 10, "ms": 1.0},  # failed: left out
    ]
    front = pareto_front(rows, maximize=["acc"], minimize=["params", "ms"])
    assert _ids(front) == ["a", "b", "d", "e", "g"]


def test_front_in_two_objectives_is_the_staircase():
    rows = [
        {"id": i, "acc": a, "params": p}
        for i, (a, p) in enumerate(
            [(0.5, 10), (0.6, 20), (0.55, 30), (0.7, 40), (0.65, 50), (0.7, 45)]
        )
    ]
    front = pareto_front(rows, maximize=["acc"], minimize=["params"])
    assert _ids(front) == [0, 1, 3]


def test_minimizing_only_and_nan_rows():
    rows = [
        {"id": 0, "loss": 0.3, "ms": 2.0},
        {"id": 1, "loss": float("nan"), "ms": 1.0},
        {"id": 2, "loss": 0.2, "ms": 3.0},
        {"id": 3, "loss": 0.4, "ms": 2.5},
    ]
    assert _ids(pareto_front(rows, minimize=["loss", "ms"])) == [0, 2]


def test_needs_an_objective():
    with pytest.raises(ValueError, match="at least one objective"):
        pareto_front([{"a": 1}])
