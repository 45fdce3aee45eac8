"""Linking to the bank scale (engine/linking.py): Stocking-Lord, the drift screen, transform_result.

Noise-free parameters are linked back to their A, B within 1e-6; planted drifts are flagged and
steady anchors are not; the screen ends at a fixed point; too few anchors and a screen that
would drop more than half fail with a LinkingError that names the count and the way out; and a
result moved to the bank scale has the same likelihood and fit, with EAPs moved by A theta + B.
The two-cohort acceptance study is in test_two_cohorts.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline.engine import calibrate_3pl, item_fit
from irt_pipeline.engine.abilities import eap_abilities
from irt_pipeline.engine.estep import expected_counts
from irt_pipeline.engine.linking import (
    ItemSet,
    LinkingError,
    drift_screen,
    irf_displacement,
    link_to_bank,
    mean_sigma,
    robust_z,
    stocking_lord,
    transform_parameters,
    transform_result,
)
from irt_pipeline.engine.quadrature import normal_grid
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline_tests.engine.simulate import dense

GRID = normal_grid(61)


def bank_items(n: int, seed: int) -> ItemSet:
    rng = np.random.default_rng(seed)
    return ItemSet.of(rng.uniform(0.5, 2.5, n), rng.normal(0, 1, n), rng.uniform(0.05, 0.3, n))


def on_run_scale(bank: ItemSet, A: float, B: float) -> ItemSet:
    """The same items as a run whose scale is theta_run = (theta_bank - B) / A would see them."""
    return ItemSet.of(bank.a * A, (bank.b - B) / A, bank.c)


@pytest.mark.parametrize("A,B", [(1.0, 0.0), (1.07, 0.35), (0.4, -1.2), (2.5, 0.8), (0.7, 2.0), (4.0, -3.0)])
def test_noise_free_parameters_are_linked_back_to_their_A_and_B(A, B):
    bank = bank_items(40, seed=1)
    link = link_to_bank(on_run_scale(bank, A, B), bank, *GRID)
    assert abs(link.A - A) < 1e-6 and abs(link.B - B) < 1e-6
    assert link.n_used == 40 and link.n_drifted == 0 and link.rounds == 1
    np.testing.assert_allclose(link.b_drift, 0.0, atol=1e-6)
    np.testing.assert_allclose(link.displacement, 0.0, atol=1e-6)
    assert link.criterion < 1e-12


def test_stocking_lord_alone_and_its_mean_sigma_start():
    bank = bank_items(25, seed=2)
    run = on_run_scale(bank, 1.6, -0.4)
    assert mean_sigma(run.b, bank.b) == pytest.approx((1.6, -0.4), abs=1e-12)  # exact for noise-free b
    A, B, F = stocking_lord(run, bank)  # default grid
    assert (A, B) == pytest.approx((1.6, -0.4), abs=1e-6) and F < 1e-12
    with pytest.raises(ValueError, match="same, non-empty"):
        stocking_lord(run.subset(np.arange(25) < 3), bank)


def planted(seed: int = 3, n: int = 60, drifted=(4, 17, 30, 41, 55), shift=1.0, noise=0.04):
    """A bank, a run of the same items seen at A = 1.2, B = 0.3 with small estimation noise in
    a, b and c, and `drifted` items `shift` logits easier for the run."""
    rng = np.random.default_rng(seed)
    bank = bank_items(n, seed)
    b_new = bank.b + rng.normal(0, noise, n)
    b_new[list(drifted)] -= shift
    truth = ItemSet.of(bank.a * np.exp(rng.normal(0, noise, n)), b_new,
                       np.clip(bank.c + rng.normal(0, noise / 4, n), 0, 0.35))
    return bank, on_run_scale(truth, 1.2, 0.3), np.isin(np.arange(n), drifted)


def test_the_drift_screen_flags_planted_drifts_and_not_steady_anchors():
    bank, run, is_drifted = planted()
    link = link_to_bank(run, bank, *GRID)
    assert np.array_equal(link.drifted, is_drifted)
    assert np.array_equal(link.used, ~is_drifted)
    assert link.A == pytest.approx(1.2, abs=0.03) and link.B == pytest.approx(0.3, abs=0.03)
    # b_drift is the plain linked b minus the bank b: about +-1 for the drifted, small otherwise
    linked_b = link.A * run.b + link.B
    np.testing.assert_allclose(link.b_drift, linked_b - bank.b)
    assert np.all(np.abs(link.b_drift[is_drifted] + 1.0) < 0.2)
    assert np.all(np.abs(link.b_drift[~is_drifted]) < 0.2)
    # without the screen the drifted anchors pull the link (they look easier: B goes up)
    unscreened = link_to_bank(run, bank, *GRID, z_cut=np.inf)
    assert unscreened.n_drifted == 0
    assert unscreened.B > 0.3 + 0.05 and abs(link.B - 0.3) < 0.03


def test_the_screen_ends_at_a_fixed_point():
    bank, run, _ = planted(seed=5)
    link = link_to_bank(run, bank, *GRID)
    assert link.rounds >= 2
    # the link is Stocking-Lord over exactly the kept anchors ...
    A, B, F = stocking_lord(run.subset(link.used), bank.subset(link.used), *GRID)
    assert (A, B) == pytest.approx((link.A, link.B), abs=1e-9) and F == pytest.approx(link.criterion)
    # ... and screening again at that link flags exactly the dropped ones
    linked = ItemSet(*transform_parameters(run.a, run.b, run.c, A, B))
    delta = irf_displacement(linked, bank, A * GRID[0] + B, GRID[1])
    np.testing.assert_allclose(delta, link.displacement, atol=1e-9)
    assert np.array_equal(drift_screen(delta), link.drifted)
    np.testing.assert_allclose(link.robust_z, robust_z(delta))


def test_robust_z_is_huynh_meyer():
    d = np.array([0.0, 0.1, -0.1, 0.05, -0.05, 0.02, 1.0])
    q1, q3 = np.percentile(d, [25, 75])
    np.testing.assert_allclose(robust_z(d), (d - np.median(d)) / (0.74 * (q3 - q1)))
    assert list(drift_screen(d)) == [False] * 6 + [True]
    assert not drift_screen(d, floor=1.5).any()            # the floor in logits
    same = np.zeros(8)
    same[3] = 0.4
    assert list(np.isinf(robust_z(same))) == [False] * 3 + [True] + [False] * 4  # IQR 0


def test_displacement_is_the_b_shift_when_only_b_moves():
    bank = bank_items(30, seed=7)
    shift = np.linspace(-2.0, 2.0, 30)
    moved = ItemSet.of(bank.a, bank.b + shift, bank.c)
    np.testing.assert_allclose(irf_displacement(moved, bank, *GRID), shift, atol=1e-9)
    # a flatter curve at the same b does not move the item where the students are (b = 0 items)
    centred = ItemSet.of(np.full(3, 1.5), np.zeros(3), np.zeros(3))
    flatter = ItemSet.of(np.full(3, 0.7), np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(irf_displacement(flatter, centred, *GRID), 0.0, atol=1e-9)


def test_too_few_anchors_is_a_linking_error_naming_the_count():
    bank = bank_items(4, seed=8)
    with pytest.raises(LinkingError, match=r"only 4 item\(s\).*at least 5 anchor.*linking: none"):
        link_to_bank(on_run_scale(bank, 1.1, 0.2), bank, *GRID)
    with pytest.raises(LinkingError, match="only 0 item"):
        link_to_bank(ItemSet.of([], [], []), ItemSet.of([], [], []), *GRID)


def test_a_screen_that_would_leave_fewer_than_five_is_a_linking_error():
    bank = bank_items(6, seed=9)
    run = on_run_scale(ItemSet.of(bank.a, bank.b + [0, 0, 0, 0, 1.5, -1.5], bank.c), 1.0, 0.0)
    with pytest.raises(LinkingError, match=r"flagged 2 of the 6 anchor items.*leaving 4.*linking: none"):
        link_to_bank(run, bank, *GRID)


def test_a_screen_that_would_drop_more_than_half_is_a_linking_error():
    """Four steady anchors and six that moved every which way: with a strict z the screen would
    keep only the four, and a link on four of ten anchors is no link."""
    bank = bank_items(10, seed=10)
    moved = bank.b + np.array([0, 0, 0, 0, 1.0, -1.3, 1.6, -1.9, 2.2, -2.5])
    run = on_run_scale(ItemSet.of(bank.a, moved, bank.c), 0.9, 0.1)
    with pytest.raises(LinkingError, match=r"flagged (6|7|8|9|10) of the 10 anchor items.*at least half.*linking: none"):
        link_to_bank(run, bank, *GRID, z_cut=0.5, min_anchors=3)
    assert link_to_bank(run, bank, *GRID).n_drifted <= 5  # the default z keeps the link


def test_mismatched_anchor_sets_are_a_value_error():
    bank = bank_items(8, seed=11)
    with pytest.raises(ValueError, match="8 anchor candidates but the bank values 7"):
        link_to_bank(bank, bank.subset(np.arange(8) < 7), *GRID)


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(21)
    a, b, c = rng.uniform(0.6, 2.2, 20), rng.normal(0, 1, 20), rng.uniform(0.05, 0.3, 20)
    responses = dense(a, b, c, 800, seed=22).responses
    responses[rng.random(responses.shape) < 0.3] = np.nan
    return responses, calibrate_3pl(responses)


@pytest.mark.parametrize("A,B", [(1.7, -0.6), (0.45, 1.3)])
def test_transform_result_keeps_likelihood_and_fit_and_moves_abilities_exactly(calibrated, A, B):
    responses, result = calibrated
    linked = transform_result(result, A, B)
    np.testing.assert_allclose(linked.a, result.a / A)
    np.testing.assert_allclose(linked.b, A * result.b + B)
    np.testing.assert_array_equal(linked.c, result.c)
    np.testing.assert_allclose(linked.a_se, result.a_se / A)
    np.testing.assert_allclose(linked.b_se, A * result.b_se)
    np.testing.assert_array_equal(linked.c_se, result.c_se)
    np.testing.assert_allclose(linked.nodes, A * result.nodes + B)
    np.testing.assert_array_equal(linked.weights, result.weights)
    data = prepare_responses(responses)
    before = expected_counts(data, result.a, result.b, result.c, result.nodes, result.weights)
    after = expected_counts(data, linked.a, linked.b, linked.c, linked.nodes, linked.weights)
    assert after.log_likelihood == pytest.approx(before.log_likelihood, rel=1e-12)
    assert after.log_likelihood == pytest.approx(result.log_likelihood, rel=1e-9)
    assert linked.log_likelihood == result.log_likelihood
    fit, linked_fit = item_fit(responses, result), item_fit(responses, linked)
    np.testing.assert_allclose(linked_fit.infit_mnsq, fit.infit_mnsq, rtol=1e-9)
    np.testing.assert_allclose(linked_fit.outfit_mnsq, fit.outfit_mnsq, rtol=1e-9)
    run_scale, bank_scale = eap_abilities(responses, result), eap_abilities(responses, linked)
    np.testing.assert_allclose(bank_scale.theta, A * run_scale.theta + B, atol=1e-10)
    np.testing.assert_allclose(bank_scale.theta_se, A * run_scale.theta_se, atol=1e-10)


def test_transform_result_clips_slopes_to_the_bounds_only_when_asked(calibrated):
    _, result = calibrated
    free = transform_result(result, 0.5, 0.1)          # a / 0.5: the steeper items leave [0.2, 3]
    clipped = transform_result(result, 0.5, 0.1, a_bounds=(0.2, 3.0))
    assert (free.a > 3.0).any() and (free.a <= 3.0).any()
    np.testing.assert_allclose(clipped.a, np.clip(free.a, 0.2, 3.0))
    np.testing.assert_array_equal(clipped.b, free.b)
