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


def test_each_panel_draws_its_own_staircase():
    from tf_mp.automl.pareto import panel_front

    # Two trials of the same size: one step (the better), not a vertical line;
    # on latency both are on the front (the worse one is faster).
    rows = [
        {"id": "a", "acc": 0.80, "params": 66_900, "ms": 2.0},
        {"id": "b", "acc": 0.75, "params": 66_900, "ms": 1.5},
    ]
    assert _ids(panel_front(rows, "acc", "params")) == ["a"]
    assert _ids(panel_front(rows, "acc", "ms")) == ["b", "a"]
    assert _ids(panel_front(rows, "acc", "ms", maximize=False)) == ["b"]
    # Exact ties on both figures are one point.
    assert _ids(panel_front([rows[0], dict(rows[0], id="c")], "acc", "params")) == ["a"]


def test_plot_of_two_trials_writes_a_png(tmp_path):
    from tf_mp.automl.pareto import plot_front

    rows = [
        {"acc": 0.80, "params": 66_900, "ms": 2.0},
        {"acc": 0.75, "params": 66_900, "ms": 1.5},
    ]
    path = plot_front(
        rows,
        rows,
        str(tmp_path / "front.png"),
        "acc",
        "params",
        "ms",
        baseline={"acc": 0.85},
    )
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "value, text",
    [
        (66_900, "66.9k"),
        (4_950, "4,950"),
        (10_000, "10k"),
        (2_500_000, "2.5M"),
        (999_999, "1M"),
        (999_400, "999k"),
        (0.98751, "0.988"),
        (12.345, "12.3"),
        (250.4, "250"),
        (3.0, "3"),
        (0, "0"),
        (-0.25, "-0.25"),
    ],
)
def test_readable_numbers(value, text):
    from tf_mp.utils.figures import readable

    assert readable(value) == text
