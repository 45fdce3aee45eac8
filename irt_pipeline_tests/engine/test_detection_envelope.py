"""The detection envelope (detection_envelope.py): the bound that issue 10's upper-asymptote
rate is read against. It must be a real bound (the likelihood-ratio test it describes has the
stated power, by simulation) and it must say what the README says of the planted items."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline_tests.engine.detection_envelope import GRID, envelope_power, pseudo_true_3pl, three_pl
from irt_pipeline_tests.engine.planted import true_curve


def test_a_3pl_item_is_detected_at_the_false_alarm_rate_only():
    power = envelope_power(three_pl(1.2, 0.3, 0.2), 1350, [0.01, 0.05])
    assert power == pytest.approx([0.01, 0.05], abs=0.002)


def test_the_pseudo_true_3pl_of_a_low_ceiling_is_flatter():
    a, b, c = 1.4, -0.5, 0.15
    curve, (a0, _, _) = pseudo_true_3pl(true_curve("upper", a, b, c, GRID), start=(a, b, c))
    assert 0.3 * a < a0 < 0.8 * a
    bulk = np.abs(GRID) < 2
    assert np.max(np.abs(curve - true_curve("upper", a, b, c, GRID))[bulk]) < 0.08


def test_gross_misfits_are_detectable():
    for kind in ("miskey", "nonmonotone"):
        assert envelope_power(true_curve(kind, 1.0, 0.0, 0.2, GRID), 1350, 0.01) > 0.99


def test_the_envelope_is_the_power_of_the_known_ability_likelihood_ratio_test():
    """Simulate the Neyman-Pearson test itself: students of known ability, the log likelihood
    ratio of the true curve against its pseudo-true 3PL; its critical value from the null
    simulation, its power from the alternative's. The normal approximation must match."""
    rng = np.random.default_rng(3)
    a, b, c, n, reps = 1.3, -0.4, 0.15, 1350, 3000
    curve = true_curve("upper", a, b, c, GRID)
    null, _ = pseudo_true_3pl(curve, start=(a, b, c))
    weights = np.exp(-GRID**2 / 2)
    nodes = rng.choice(GRID.size, size=(2, reps, n), p=weights / weights.sum())
    log_hit, log_miss = np.log(curve / null), np.log((1 - curve) / (1 - null))
    llr = []
    for h, p in enumerate((null, curve)):
        x = rng.random((reps, n)) < p[nodes[h]]
        llr.append(np.where(x, log_hit[nodes[h]], log_miss[nodes[h]]).sum(axis=1))
    for alpha in (0.01, 0.05):
        simulated = np.mean(llr[1] > np.quantile(llr[0], 1 - alpha))
        assert envelope_power(curve, n, alpha, start=(a, b, c)) == pytest.approx(simulated, abs=0.04)


def test_no_test_can_flag_most_planted_ceilings_at_the_issues_bank_size():
    """Issue 10's bank: 3,000 students, 45% of cells, about 1,350 responses per item. Items
    drawn like planted.py's upper-asymptote items: even at a 3% false-alarm rate (the issue's
    cap for all reasons together) no test can flag half of them on average; it could at
    20,000 responses."""
    rng = np.random.default_rng(11)
    small, large = [], []
    for _ in range(25):
        a, b, c = np.clip(rng.lognormal(0, 0.3), 0.5, 2.5), rng.normal(), rng.uniform(0.05, 0.25)
        curve = true_curve("upper", a, b, c, GRID)
        small.append(envelope_power(curve, 1350, 0.03, start=(a, b, c)))
        large.append(envelope_power(curve, 20_000, 0.03, start=(a, b, c)))
    assert 0.1 < np.mean(small) < 0.4
    assert np.mean(large) > 0.6
