"""The cost model, calibrated on the user's own model by the candidates timed.

The machine constants come from one large matmul and one all-reduce called on
their own. A real train step runs many small ops, which reach a lower rate
than the large matmul, and its collectives run inside one compiled function,
without a call's overhead. So the analytical time can rank a candidate with
more compute and fewer collectives first, and be wrong on this machine.

Calibration times a spread of candidates, not only the cost model's best: its
best, the one with the least compute per device and the one with the least
communication. It fits `measured = a x compute_s + b x communication_s` to
them (least squares, `a, b >= 0`), then spends the rest of the measurement
budget on the candidates the calibrated time ranks first.
"""

import numpy as np


def spread(ranked, count):
    """Indices into `ranked` to time first: the cost model's best, the least
    compute per device, the least communication; at most `count`."""
    picks = [
        0,
        min(range(len(ranked)), key=lambda i: (ranked[i].compute_s, i)),
        min(range(len(ranked)), key=lambda i: (ranked[i].communication_s, i)),
    ]
    return list(dict.fromkeys(picks))[:count]


def fit(measured):
    """`(a, b)` with `a x compute_s + b x communication_s` closest to the
    measured step times of `measured` (figures), both `>= 0`; `None` when
    fewer than two candidates differ in what they compute or move."""
    if len(measured) < 2:
        return None
    features = np.array([[f.compute_s, f.communication_s] for f in measured])
    times = np.array([f.measured_step_s for f in measured])
    if np.linalg.matrix_rank(features) < 2:
        return None
    (a, b), *_ = np.linalg.lstsq(features, times, rcond=None)
    if a >= 0 and b >= 0:
        return float(a), float(b)
    # The best fit with one factor at 0 (a non-negative least-squares corner).
    corners = []
    for column in (0, 1):
        x = features[:, column]
        scale = float(x @ times / (x @ x)) if x @ x > 0 else 0.0
        residual = float(np.sum((times - scale * x) ** 2))
        corners.append((residual, (scale, 0.0) if column == 0 else (0.0, scale)))
    return min(corners)[1]


def calibrate(ranked, factors):
    """Sets each candidate's `calibrated_step_s` from `factors` `(a, b)`."""
    a, b = factors
    for figures in ranked:
        figures.calibrated_step_s = a * figures.compute_s + b * figures.communication_s


def next_to_measure(ranked):
    """The index of the unmeasured candidate with the least calibrated time,
    or `None` when it cannot beat the fastest measured one."""
    measured = [f.measured_step_s for f in ranked if f.measured_step_s is not None]
    waiting = [
        i
        for i, f in enumerate(ranked)
        if f.measured_step_s is None and f.calibrated_step_s is not None
    ]
    if not waiting:
        return None
    best = min(waiting, key=lambda i: (ranked[i].calibrated_step_s, i))
    if measured and ranked[best].calibrated_step_s >= min(measured):
        return None
    return best
