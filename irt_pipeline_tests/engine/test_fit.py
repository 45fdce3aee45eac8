"""Infit and outfit mean squares, and the 0.7-1.3 flag."""

from __future__ import annotations

import numpy as np

from irt_pipeline.engine import calibrate_3pl, flag_misfit, item_fit
from irt_pipeline.engine.fit import plugin_item_fit
from irt_pipeline_tests.engine.simulate import dense


def _bank_with_misfits():
    """40 model items plus two the bounded 3PL cannot follow: a Guttman item (correct exactly
    when theta > 0.2) and one far steeper than a = 3 allows. Both are too predictable, so their
    mean squares fall below 0.7.

    Note what mean squares cannot see under the 3PL: an item reversed in theta, or answered at
    random, gets a flat fitted curve at its proportion correct, and a flat curve gives mean
    squares of 1 (for P = 0.5, (x - P)^2 / (P (1 - P)) = 1 for every response).
    """
    rng = np.random.default_rng(41)
    a, b, c = rng.uniform(0.8, 2, 40), rng.normal(0, 1, 40), rng.uniform(0.1, 0.25, 40)
    sim = dense(a, b, c, 1500, seed=42)
    guttman = (sim.theta > 0.2).astype(float)
    steep = (rng.random(1500) < 1 / (1 + np.exp(-10 * (sim.theta + 0.5)))).astype(float)
    return np.column_stack([sim.responses, guttman, steep])


def test_model_items_fit_and_misfits_are_flagged():
    responses = _bank_with_misfits()
    result = calibrate_3pl(responses)
    fit = item_fit(responses, result)
    model_items = slice(0, 40)
    assert 0.9 < np.mean(fit.infit_mnsq[model_items]) < 1.1
    assert 0.85 < np.mean(fit.outfit_mnsq[model_items]) < 1.15
    flagged = fit.flagged()
    assert flagged[40] and flagged[41]
    assert flagged[model_items].sum() <= 2
    assert fit.outfit_mnsq[40] < 0.7 and fit.outfit_mnsq[41] < 0.7


def test_fit_formulas_on_a_hand_computed_case():
    """Predictive residuals: P~_ij is the probability of a correct answer under student i's
    posterior WITHOUT item j, computed here by brute force (the product over the other items);
    outfit = mean z~^2, infit = sum (x - P~)^2 / sum P~ (1 - P~)."""
    responses = _bank_with_misfits()[:300, :6]
    responses[::7, 2] = np.nan                                   # some holes
    result = calibrate_3pl(responses)
    fit = item_fit(responses, result)
    t, w = result.nodes, result.weights
    p = result.c[:, None] + (1 - result.c[:, None]) / (1 + np.exp(-result.a[:, None] * (t - result.b[:, None])))
    x = responses[:, :, None]                                   # students x items x 1
    f = np.where(np.isnan(x), 1.0, np.where(x == 1, p, 1 - p))  # students x items x nodes
    expected = np.empty(responses.shape)
    for j in range(responses.shape[1]):
        others = np.prod(np.delete(f, j, axis=1), axis=1) * w   # students x nodes
        expected[:, j] = others @ p[j] / others.sum(axis=1)
    observed = ~np.isnan(responses)
    resid2 = np.where(observed, (np.nan_to_num(responses) - expected) ** 2, 0.0)
    var = np.where(observed, expected * (1 - expected), 0.0)
    np.testing.assert_allclose(fit.outfit_mnsq, (resid2 / np.where(observed, var, 1)).sum(0) / observed.sum(0), rtol=1e-5)
    np.testing.assert_allclose(fit.infit_mnsq, resid2.sum(0) / var.sum(0), rtol=1e-5)


def test_plugin_fit_is_biased_low_on_short_tests_and_predictive_fit_is_not():
    """Why the flags use predictive mean squares: on a model-true 5-item test the plug-in
    statistic (R mirt's itemfit infit/outfit, EAP plugged in) falls well below 1, the
    predictive one does not."""
    rng = np.random.default_rng(45)
    a, b, c = rng.uniform(0.8, 2.0, 5), rng.normal(0, 0.8, 5), rng.uniform(0.1, 0.2, 5)
    responses = dense(a, b, c, 3000, seed=46).responses
    result = calibrate_3pl(responses)
    predictive, plugin = item_fit(responses, result), plugin_item_fit(responses, result)
    assert np.all(np.abs(predictive.outfit_mnsq - 1) < 0.08) and np.all(np.abs(predictive.infit_mnsq - 1) < 0.05)
    assert plugin.outfit_mnsq.mean() < 0.9 and plugin.infit_mnsq.mean() < 0.93


def test_plugin_fit_follows_the_textbook_formulas_at_given_abilities():
    """outfit = mean (x - P)^2 / (P (1 - P)), infit = sum (x - P)^2 / sum P (1 - P), P = P_j(theta_i)."""
    responses = _bank_with_misfits()[:200, :4]
    result = calibrate_3pl(responses)
    theta = np.linspace(-2, 2, 200)
    fit = plugin_item_fit(responses, result, theta=theta)
    p = result.c + (1 - result.c) / (1 + np.exp(-result.a * (theta[:, None] - result.b)))
    resid2, var = (responses - p) ** 2, p * (1 - p)
    np.testing.assert_allclose(fit.outfit_mnsq, (resid2 / var).mean(0), rtol=1e-9)
    np.testing.assert_allclose(fit.infit_mnsq, resid2.sum(0) / var.sum(0), rtol=1e-9)


def test_model_items_on_a_short_test_are_not_flagged():
    """A 20-item bank simulated from the model: mean squares near 1, nothing flagged."""
    rng = np.random.default_rng(43)
    a, b, c = rng.uniform(1.2, 2.2, 20), rng.normal(0, 1, 20), rng.uniform(0.1, 0.25, 20)
    responses = dense(a, b, c, 2000, seed=44).responses
    fit = item_fit(responses, calibrate_3pl(responses))
    assert 0.95 < fit.outfit_mnsq.mean() < 1.05 and 0.95 < fit.infit_mnsq.mean() < 1.05
    assert not fit.flagged().any()


def test_flag_boundaries_are_inclusive():
    infit = np.array([0.7, 1.3, 0.69, 1.31, 1.0, 1.0, np.nan])
    outfit = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 1.6, np.nan])
    assert list(flag_misfit(infit, outfit)) == [False, False, True, True, True, True, False]
    assert list(flag_misfit(infit, outfit, lower=0.4, upper=1.7)) == [False] * 7


def test_missing_cells_do_not_enter_the_fit():
    responses = _bank_with_misfits()[:, :10].copy()
    result = calibrate_3pl(responses)
    holes = responses.copy()
    holes[:500, 3] = np.nan
    fit_full, fit_holes = item_fit(responses, result), item_fit(holes, result)
    assert fit_holes.response_counts[3] == 1000
    assert fit_full.response_counts[3] == 1500
    assert fit_holes.outfit_mnsq[3] != fit_full.outfit_mnsq[3]
