"""Property-based tests of the engine (issue 5, point 4), with hypothesis.

For random small response matrices with missing cells (including empty rows and columns,
constant items and single students), with the default priors and with plain ML:
* estimates are finite and inside the bounds, standard errors finite and positive, the
  log-likelihood finite, and each item's status matches its column;
* the same input gives exactly the same output (twice in a row, and dense vs sparse input);
* item fit mean squares are finite and non-negative.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from irt_pipeline.engine import (
    BRIEF_BOUNDS,
    STATUS_ALL_CORRECT,
    STATUS_ALL_INCORRECT,
    STATUS_NO_RESPONSES,
    STATUS_OK,
    Priors,
    calibrate_3pl,
    item_fit,
)

MAX_ITERATIONS = 30
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no example database: every run draws afresh (hypothesis keeps only a
                    # self-ignored cache of constants in .hypothesis/)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RESULT_ARRAYS = ("a", "b", "c", "a_se", "b_se", "c_se", "response_counts", "log_likelihood_trace",
                 "max_change_trace")


@st.composite
def response_matrices(draw, max_students: int = 40, max_items: int = 6) -> np.ndarray:
    """students x items of 1.0, 0.0 and NaN, with a drawn share of missing cells and a drawn
    difficulty per item (so that constant and nearly constant items are common)."""
    n_students = draw(st.integers(1, max_students))
    n_items = draw(st.integers(1, max_items))
    missing = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    p_correct = draw(arrays(np.float64, n_items, elements=st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.7, 0.95, 1.0])))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    responses = (rng.random((n_students, n_items)) < p_correct).astype(float)
    responses[rng.random((n_students, n_items)) < missing] = np.nan
    if draw(st.booleans()):  # and sometimes hand-picked cells on top (patterns the RNG rarely makes)
        cells = draw(arrays(np.float64, (n_students, n_items), elements=st.sampled_from([0.0, 1.0, np.nan])))
        mask = draw(arrays(np.bool_, (n_students, n_items)))
        responses = np.where(mask, cells, responses)
    return responses


def signed_sparse(responses: np.ndarray) -> sp.csr_matrix:
    """The pipeline's encoding: +1 correct, -1 incorrect, absent not answered."""
    observed = ~np.isnan(responses)
    signed = np.where(observed, np.where(responses == 1.0, 1.0, -1.0), 0.0)
    return sp.csr_matrix(signed)


def expected_status(column: np.ndarray) -> str:
    observed = column[~np.isnan(column)]
    if observed.size == 0:
        return STATUS_NO_RESPONSES
    if observed.all():
        return STATUS_ALL_CORRECT
    if not observed.any():
        return STATUS_ALL_INCORRECT
    return STATUS_OK


# Statuses the standard errors add to an item whose data alone would make it "ok".
SE_STATUSES = ("heywood", "singular_information")


def assert_sound(result, responses: np.ndarray) -> None:
    n_items = responses.shape[1]
    for name in ("a", "b", "c", "a_se", "b_se", "c_se"):
        values = getattr(result, name)
        assert values.shape == (n_items,), name
    for name in ("a", "b", "c"):
        assert np.all(np.isfinite(getattr(result, name))), (name, getattr(result, name))
    # SEs: finite and > 0, or NaN (NULL) only at a bound or for an item that is not "ok"
    ses = np.column_stack([result.a_se, result.b_se, result.c_se])
    assert result.at_bound.shape == (n_items, 3)
    assert np.all(ses[np.isfinite(ses)] > 0), ses
    may_be_nan = result.at_bound | (result.item_status != STATUS_OK)[:, None]
    assert not np.any(np.isnan(ses) & ~may_be_nan), (ses, result.at_bound, result.item_status)
    assert not np.any(np.isinf(ses))
    bounds = BRIEF_BOUNDS
    assert np.all((bounds.a[0] <= result.a) & (result.a <= bounds.a[1])), result.a
    assert np.all((bounds.b[0] <= result.b) & (result.b <= bounds.b[1])), result.b
    assert np.all((bounds.c[0] <= result.c) & (result.c <= bounds.c[1])), result.c
    assert np.isfinite(result.log_likelihood)
    assert 1 <= result.iterations <= MAX_ITERATIONS
    expected = [expected_status(responses[:, j]) for j in range(n_items)]
    assert [STATUS_OK if s in SE_STATUSES else s for s in result.item_status] == expected
    assert list(result.response_counts) == list((~np.isnan(responses)).sum(axis=0))


def assert_identical(first, second) -> None:
    for name in RESULT_ARRAYS + ("at_bound",):
        assert np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True), name
    assert first.iterations == second.iterations and first.converged == second.converged
    assert first.log_likelihood == second.log_likelihood
    assert list(first.item_status) == list(second.item_status)


@PROPERTY_SETTINGS
@given(responses=response_matrices(), use_priors=st.booleans())
def test_estimates_and_standard_errors_are_finite_and_in_bounds(responses, use_priors):
    priors = Priors() if use_priors else None
    result = calibrate_3pl(responses, max_iterations=MAX_ITERATIONS, priors=priors)
    assert_sound(result, responses)
    fit = item_fit(responses, result)
    answered = ~np.isnan(responses).all(axis=0)
    for values in (fit.infit_mnsq, fit.outfit_mnsq):
        assert np.all(np.isfinite(values[answered])) and np.all(values[answered] >= 0)


@PROPERTY_SETTINGS
@given(responses=response_matrices(), use_priors=st.booleans())
def test_the_same_input_gives_the_same_output(responses, use_priors):
    priors = Priors() if use_priors else None
    first = calibrate_3pl(responses.copy(), max_iterations=MAX_ITERATIONS, priors=priors)
    second = calibrate_3pl(responses.copy(), max_iterations=MAX_ITERATIONS, priors=priors)
    assert_identical(first, second)
    # the pipeline's sparse encoding of the same responses: the same estimates
    sparse = calibrate_3pl(signed_sparse(responses), max_iterations=MAX_ITERATIONS, priors=priors)
    assert_sound(sparse, responses)
    assert sparse.iterations == first.iterations
    for name in ("a", "b", "c", "a_se", "b_se", "c_se"):
        np.testing.assert_allclose(getattr(sparse, name), getattr(first, name), rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("n_students", [1, 2])
def test_tiny_banks(n_students):
    """The smallest inputs the engine accepts, deterministic corners of the properties above."""
    responses = np.array([[1.0, 0.0, np.nan]] * n_students)
    result = calibrate_3pl(responses, max_iterations=MAX_ITERATIONS)
    assert_sound(result, responses)
