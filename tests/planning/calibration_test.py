"""The cost model calibrated by measured candidates (`tf_mp.planning`'s
`calibration.py`), on made-up figures and on a planned model."""

import numpy as np

import tf_mp
from tests.planning import models
from tf_mp.planning import calibration
from tf_mp.planning.costs import Figures


def _figures(compute_s, communication_s, measured_s=None):
    return Figures(
        mesh=(2, 2),
        choices={},
        fsdp=False,
        axes=[],
        weight_bytes=0,
        gradient_bytes=0,
        slot_bytes=0,
        activation_bytes=0,
        collectives={},
        compute_s=compute_s,
        communication_s=communication_s,
        measured_step_s=measured_s,
    )


def test_the_spread_is_the_best_the_least_compute_and_the_least_communication():
    ranked = [_figures(2.0, 1.0), _figures(3.0, 0.5), _figures(1.0, 4.0)]
    assert calibration.spread(ranked, 3) == [0, 2, 1]
    assert calibration.spread(ranked, 2) == [0, 2]
    # The best is also the least communication: two to time.
    ranked = [_figures(2.0, 0.0), _figures(1.0, 4.0), _figures(3.0, 0.0)]
    assert calibration.spread(ranked, 3) == [0, 1]


def test_the_fit_recovers_the_factors_of_the_measured_times():
    a, b = 2.5, 0.3
    measured = [
        _figures(c, m, a * c + b * m) for c, m in ((1.0, 4.0), (2.0, 1.0), (3.0, 0.0))
    ]
    np.testing.assert_allclose(calibration.fit(measured), (a, b), rtol=1e-9)


def test_no_fit_without_two_candidates_that_differ():
    assert calibration.fit([_figures(1.0, 1.0, 3.0)]) is None
    same_mix = [_figures(1.0, 2.0, 3.0), _figures(2.0, 4.0, 7.0)]
    assert calibration.fit(same_mix) is None


def test_a_factor_the_times_make_negative_is_held_at_zero():
    # More communication, less time: least squares wants b < 0.
    measured = [_figures(1.0, 0.0, 2.0), _figures(2.0, 3.0, 3.0)]
    a, b = calibration.fit(measured)
    assert b == 0.0 and a > 0
    np.testing.assert_allclose(a, (1 * 2 + 2 * 3) / (1 + 4))


def test_the_next_candidate_is_the_calibrated_fastest_if_it_can_win():
    ranked = [_figures(1.0, 0.0, 5.0), _figures(0.5, 1.0), _figures(0.8, 2.0)]
    calibration.calibrate(ranked, (2.0, 1.0))
    assert [f.calibrated_step_s for f in ranked] == [2.0, 2.0, 3.6]
    assert calibration.next_to_measure(ranked) == 1
    ranked[0].measured_step_s = 1.5
    assert calibration.next_to_measure(ranked) is None


def test_a_planned_model_times_a_split_and_a_whole_candidate(make_mesh):
    make_mesh((2, 2))  # Skips without the devices.
    plan = tf_mp.plan(
        models.transformer(),
        devices=[(2, 2)],
        batch_size=models.BATCH,
        constants=models.CONSTANTS,
        measure=3,
    )
    timed = [c for c in plan.candidates if c["measured_step_s"] is not None]
    assert 2 <= len(timed) <= 3
    # Timed first, fastest first: the plan is the fastest measured.
    assert plan.candidates[: len(timed)] == timed
    assert [c["measured_step_s"] for c in timed] == sorted(
        c["measured_step_s"] for c in timed
    )
    # The spread: the least compute per device (model-axis splits) and the
    # least communication (everything replicated over the model axis).
    split = [c for c in timed if set(c["choices"].values()) - {"replicated"}]
    assert split and len(split) < len(timed)
    factors = plan.settings["calibration"]
    assert factors["compute"] >= 0 and factors["communication"] >= 0
    for c in plan.candidates:
        expected = (
            factors["compute"] * c["compute_s"]
            + factors["communication"] * c["communication_s"]
        )
        np.testing.assert_allclose(c["calibrated_step_s"], expected, rtol=1e-9)
    rest = [c["calibrated_step_s"] for c in plan.candidates[len(timed) :]]
    assert rest == sorted(rest)
    printed = []
    plan.summary(print_fn=printed.append)
    assert "calibrated s" in printed[0]
