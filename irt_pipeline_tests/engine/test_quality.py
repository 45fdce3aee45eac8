"""Item quality: planted bad items are caught for the right reason, clean banks stay quiet.

Each diagnostic is tested by planting what it must catch (planted.py) and by its false-alarm
rate on banks simulated from the model; the statistics themselves against brute force.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from irt_pipeline.engine import calibrate_3pl, item_fit
from irt_pipeline.engine.quality import (
    QualityThresholds,
    assess_items,
    benjamini_hochberg,
    flag_reasons,
    item_rest_correlation,
)
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline_tests.engine.planted import planted_bank
from irt_pipeline_tests.engine.simulate import sparse


def _assess(responses):
    result = calibrate_3pl(responses)
    return result, assess_items(responses, item_fit(responses, result), at_bound=result.at_bound)


@pytest.mark.parametrize("seed", [1, 2])
def test_miskeyed_random_and_guttman_items_are_flagged_for_the_right_reason(seed):
    """Issue 10's bank: 100 items, 3,000 students, 45% of cells; 4 miskeyed, 4 random, 4 Guttman.
    Before, only the Guttman items were flagged (mean squares of the others 1.01-1.07)."""
    bank = planted_bank(seed)
    _, quality = _assess(bank.responses)
    reasons = dict(enumerate(quality.reasons))
    for j in np.flatnonzero(bank.kinds == "miskey"):
        assert "possible_miskey" in reasons[j], (j, reasons[j], quality.item_rest[j])
    for j in np.flatnonzero(bank.kinds == "random"):
        assert "low_discrimination" in reasons[j] and "possible_miskey" not in reasons[j], (j, reasons[j])
    for j in np.flatnonzero(bank.kinds == "guttman"):
        assert {"infit", "outfit", "at_bound"} & set(reasons[j]), (j, reasons[j])
    clean = bank.kinds == "ok"
    assert quality.is_flagged[clean].mean() <= 0.03


def test_product_shaped_model_banks_flag_at_most_3_percent():
    """Sparse forms of 40-140 items per student, every item from the model: all reasons together."""
    flagged = []
    for seed, (n_items, per_student) in enumerate([(200, 40), (300, 140)]):
        rng = np.random.default_rng(300 + seed)
        a = np.clip(rng.lognormal(0, 0.3, n_items), 0.5, 2.5)
        b, c = rng.normal(0, 1, n_items), rng.uniform(0.05, 0.25, n_items)
        responses = sparse(a, b, c, 4000, per_student, seed=seed).responses
        _, quality = _assess(responses)
        flagged.append(quality.is_flagged)
    assert np.concatenate(flagged).mean() <= 0.03


def test_q1_p_values_are_close_to_uniform_under_the_model():
    """Pooled over model-true sparse banks, the Q1 p-values fall below 0.05 and 0.2 about as
    often as they should (with the df of the estimated parameters ignored, i.e. G groups, 5% would
    read about 1%; with G - 3, about 9%)."""
    p_values = []
    for seed in range(3):
        rng = np.random.default_rng(400 + seed)
        a = np.clip(rng.lognormal(0, 0.3, 150), 0.5, 2.5)
        b, c = rng.normal(0, 1, 150), rng.uniform(0.05, 0.25, 150)
        responses = sparse(a, b, c, 4000, 60, seed=seed).responses
        _, quality = _assess(responses)
        p_values.append(quality.grouped.p_value)
    p = np.concatenate(p_values)
    assert not np.isnan(p).any()
    assert 0.02 <= np.mean(p < 0.05) <= 0.08
    assert 0.13 <= np.mean(p < 0.2) <= 0.27
    assert 0.4 <= np.mean(p < 0.5) <= 0.6


def test_item_rest_correlation_matches_a_direct_computation_on_sparse_forms():
    bank = planted_bank(7, n_items=30, n_students=400, share=0.5)
    x = bank.responses
    expected = []
    answered, score = (~np.isnan(x)).sum(1), np.nansum(x, 1)
    for j in range(x.shape[1]):
        rows = ~np.isnan(x[:, j]) & (answered > 1)
        rest = (score[rows] - x[rows, j]) / (answered[rows] - 1)
        expected.append(np.corrcoef(x[rows, j], rest)[0, 1])
    signed = sp.csr_matrix(np.where(np.isnan(x), 0.0, np.where(x == 1, 1.0, -1.0)))
    np.testing.assert_allclose(item_rest_correlation(prepare_responses(signed)), expected, rtol=1e-9)
    np.testing.assert_allclose(item_rest_correlation(prepare_responses(x)), expected, rtol=1e-9)


def test_benjamini_hochberg_matches_the_step_up_definition():
    p = np.array([0.01, 0.04, 0.03, 0.20, np.nan, 0.005])
    adjusted = benjamini_hochberg(p)
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.2 (m = 5): p * m / rank, then the running minimum from the top
    assert np.isnan(adjusted[4])
    np.testing.assert_allclose(adjusted[[5, 0, 2, 1, 3]], [0.025, 0.025, 0.05, 0.05, 0.2])


def test_reasons_follow_the_thresholds():
    """Each reason from its own statistic and threshold; is_flagged = any reason."""
    bank = planted_bank(3)
    result, quality = _assess(bank.responses)
    fit = item_fit(bank.responses, result)
    counts = prepare_responses(bank.responses).response_counts
    lenient = QualityThresholds(mnsq_lower=0.01, mnsq_upper=50, miskey_item_rest=-1.0,
                                low_discrimination_item_rest=-1.0, misfit_fdr=1e-300)
    assert not any(flag_reasons(fit, quality.item_rest, quality.grouped, counts, lenient))
    at_bound = np.zeros((result.n_items, 3), bool)
    at_bound[5, 2] = True
    reasons = flag_reasons(fit, quality.item_rest, quality.grouped, counts, lenient, at_bound=at_bound)
    assert [j for j, r in enumerate(reasons) if r] == [5] and reasons[5] == ("at_bound",)
    strict = QualityThresholds(low_discrimination_item_rest=0.99)
    reasons = flag_reasons(fit, quality.item_rest, quality.grouped, counts, strict)
    assert all("low_discrimination" in r or "possible_miskey" in r for r in reasons)
    assert pd.Series([bool(r) for r in quality.reasons]).equals(pd.Series(quality.is_flagged))
