"""Degenerate input never crashes, never returns NaN or an out-of-bound value, and says why."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline.engine import calibrate_3pl, item_fit
from irt_pipeline_tests.engine.simulate import dense


def _bank_with_degenerate_items() -> np.ndarray:
    rng = np.random.default_rng(21)
    a, b, c = rng.uniform(0.8, 2, 12), rng.normal(0, 1, 12), rng.uniform(0.1, 0.25, 12)
    responses = dense(a, b, c, 400, seed=22).responses
    responses[:, 0] = 1.0                 # all correct
    responses[:, 1] = 0.0                 # all incorrect
    responses[:, 2] = np.nan              # nobody answered
    responses[1:, 3] = np.nan             # answered by one student, correctly
    responses[0, 3] = 1.0
    responses[5, :] = np.nan              # a student with one response
    responses[5, 6] = 1.0
    return responses


EXPECTED_STATUS = ["all_correct", "all_incorrect", "no_responses", "all_correct"] + ["ok"] * 8


def _ses(result) -> np.ndarray:
    return np.column_stack([result.a_se, result.b_se, result.c_se])


def assert_standard_errors_honest(result) -> None:
    """Finite SEs are > 0; a SE is NaN (NULL) only at a bound or for an item that is not "ok"."""
    ses = _ses(result)
    assert np.all(ses[np.isfinite(ses)] > 0) and not np.isinf(ses).any()
    may_be_nan = result.at_bound | (result.item_status != "ok")[:, None]
    assert not np.any(np.isnan(ses) & ~may_be_nan), (ses, result.item_status)


@pytest.mark.parametrize("priors", ["default", None])
def test_degenerate_items_are_finite_in_bounds_and_reported(priors):
    responses = _bank_with_degenerate_items()
    kwargs = {} if priors == "default" else {"priors": None}
    result = calibrate_3pl(responses, **kwargs)
    # plain ML on 400 students: some healthy slopes run to the bound (status "heywood")
    assert [s if s != "heywood" else "ok" for s in result.item_status] == EXPECTED_STATUS
    assert list(result.response_counts[:4]) == [399, 399, 0, 1]
    for name in ("a", "b", "c"):
        values = getattr(result, name)
        assert np.all(np.isfinite(values)), name
    assert np.all((0.2 <= result.a) & (result.a <= 3.0))
    assert np.all((0.0 <= result.c) & (result.c <= 0.35))
    assert np.all((-6.0 <= result.b) & (result.b <= 6.0))
    assert_standard_errors_honest(result)
    assert np.isnan(_ses(result)[2]).all()              # nobody answered: no SE at all
    assert np.isfinite(result.log_likelihood)
    # the healthy items are still estimated sensibly next to the degenerate ones
    assert np.nanmedian(result.b_se[4:]) < 1.0


def test_fit_of_degenerate_items():
    responses = _bank_with_degenerate_items()
    result = calibrate_3pl(responses)
    fit = item_fit(responses, result)
    assert np.isnan(fit.infit_mnsq[2]) and np.isnan(fit.outfit_mnsq[2])   # no responses, no fit
    assert not fit.flagged()[2]
    others = np.r_[0:2, 3:12]
    assert np.all(np.isfinite(fit.infit_mnsq[others])) and np.all(np.isfinite(fit.outfit_mnsq[others]))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1)])
def test_tiny_matrices(shape):
    responses = np.ones(shape)
    responses[0, 0] = 0.0
    result = calibrate_3pl(responses)
    assert np.all(np.isfinite(result.b))
    assert_standard_errors_honest(result)


def test_many_items_few_students():
    """50,000 items answered by 20 students: runs, stays in bounds (chunked, no 3-D arrays)."""
    rng = np.random.default_rng(5)
    responses = (rng.random((20, 50_000)) < 0.6).astype(float)
    result = calibrate_3pl(responses, max_iterations=3)
    assert result.a.shape == (50_000,)
    assert np.all(np.isfinite(result.c_se)) and np.all((0 <= result.c) & (result.c <= 0.35))
