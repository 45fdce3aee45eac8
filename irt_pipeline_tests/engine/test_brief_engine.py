"""The brief's eight `IRT3PLEngine` tests (section 10), on the brief's fixtures (section 9)."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline.engine import STATUS_ALL_CORRECT, STATUS_ALL_INCORRECT, calibrate_3pl
from irt_pipeline_tests.brief_fixtures import KNOWN_PARAMS, SMALL_RESPONSE_MATRIX
from irt_pipeline_tests.engine.simulate import dense

COPIES = 6


@pytest.fixture(scope="module")
def known():
    """The five KNOWN_PARAMS items, six copies each, answered by 4,000 simulated students."""
    a = np.tile([p["a"] for p in KNOWN_PARAMS], COPIES)
    b = np.tile([p["b"] for p in KNOWN_PARAMS], COPIES)
    c = np.tile([p["c"] for p in KNOWN_PARAMS], COPIES)
    sim = dense(a, b, c, n_students=4000, seed=7)
    return sim, calibrate_3pl(sim.responses)


def test_converges_on_known_parameters_within_tolerance(known):
    sim, result = known
    assert result.converged
    n = len(KNOWN_PARAMS)
    for name, tolerance in (("a", 0.15), ("b", 0.15), ("c", 0.05)):
        estimate = getattr(result, name).reshape(COPIES, n).mean(axis=0)
        truth = getattr(sim, name)[:n]
        assert np.all(np.abs(estimate - truth) < tolerance), (name, estimate, truth)
        # and every single estimate lies within 4 of its own standard errors of the truth
        z = np.abs(getattr(result, name) - getattr(sim, name)) / getattr(result, f"{name}_se")
        assert z.max() < 4.0, (name, z.max())


def test_respects_max_iterations_limit():
    result = calibrate_3pl(SMALL_RESPONSE_MATRIX, max_iterations=3, convergence_threshold=1e-12)
    assert result.iterations == 3
    assert len(result.log_likelihood_trace) == 3


def test_reports_convergence_false_when_max_iterations_exceeded():
    result = calibrate_3pl(SMALL_RESPONSE_MATRIX, max_iterations=2, convergence_threshold=1e-9)
    assert result.converged is False
    assert result.iterations == 2
    assert calibrate_3pl(SMALL_RESPONSE_MATRIX, max_iterations=500).converged is True


def test_computes_standard_errors_for_each_parameter(known):
    _, result = known
    for name in ("a_se", "b_se", "c_se"):
        se = getattr(result, name)
        assert se.shape == (COPIES * len(KNOWN_PARAMS),)
        assert np.all(np.isfinite(se)) and np.all(se > 0)
    # 4,000 students pin b down to about a tenth of a logit, not to nothing
    assert 0.02 < np.median(result.b_se) < 0.3


def _with_constant_item(value: float) -> np.ndarray:
    responses = SMALL_RESPONSE_MATRIX.astype(float).copy()
    responses[:, 2] = value
    return responses


@pytest.mark.parametrize("priors", ["default", None])
def test_handles_all_correct_response_vectors_gracefully(priors):
    kwargs = {} if priors == "default" else {"priors": None}
    result = calibrate_3pl(_with_constant_item(1.0), **kwargs)
    assert result.item_status[2] == STATUS_ALL_CORRECT
    _assert_finite_in_bounds(result)
    assert result.b[2] < result.b[[0, 1, 3, 4]].min()  # the easiest item of the five


@pytest.mark.parametrize("priors", ["default", None])
def test_handles_all_incorrect_response_vectors_gracefully(priors):
    kwargs = {} if priors == "default" else {"priors": None}
    result = calibrate_3pl(_with_constant_item(0.0), **kwargs)
    assert result.item_status[2] == STATUS_ALL_INCORRECT
    _assert_finite_in_bounds(result)
    assert result.b[2] > result.b[[0, 1, 3, 4]].max()  # the hardest item of the five


def test_constrains_c_parameter_to_range():
    # guessing far above the bound (c = 0.6), and no prior to hold it back
    a, b, c = np.full(10, 1.5), np.linspace(-1, 1, 10), np.full(10, 0.6)
    result = calibrate_3pl(dense(a, b, c, 2000, seed=3).responses, priors=None)
    assert np.all((result.c >= 0.0) & (result.c <= 0.35))
    assert np.isclose(result.c.max(), 0.35)
    # and no guessing at all: c cannot go below 0
    result = calibrate_3pl(dense(a, b, np.zeros(10), 2000, seed=4).responses, priors=None)
    assert np.all(result.c >= 0.0)


def test_constrains_a_parameter_to_range():
    b, c = np.linspace(-1, 1, 10), np.full(10, 0.1)
    steep = calibrate_3pl(dense(np.full(10, 6.0), b, c, 2000, seed=5).responses, priors=None)
    assert np.all(steep.a <= 3.0) and np.isclose(steep.a.max(), 3.0)
    flat = calibrate_3pl(dense(np.full(10, 0.01), b, c, 2000, seed=6).responses, priors=None)
    assert np.all(flat.a >= 0.2) and np.isclose(flat.a.min(), 0.2)


def _assert_finite_in_bounds(result) -> None:
    for name in ("a", "b", "c"):
        assert np.all(np.isfinite(getattr(result, name))), name
    assert np.all((result.a >= 0.2) & (result.a <= 3.0))
    assert np.all((result.c >= 0.0) & (result.c <= 0.35))
    assert np.all((result.b >= -6.0) & (result.b <= 6.0))
    # SEs: finite and > 0, or NaN (NULL) only at a bound or for an item that is not "ok"
    ses = np.column_stack([result.a_se, result.b_se, result.c_se])
    assert np.all(ses[np.isfinite(ses)] > 0)
    may_be_nan = result.at_bound | (result.item_status != "ok")[:, None]
    assert not np.any(np.isnan(ses) & ~may_be_nan)
