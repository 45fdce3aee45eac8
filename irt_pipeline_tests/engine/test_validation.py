"""Invalid input raises ValueError naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from irt_pipeline.engine import Priors, calibrate_3pl, item_fit

GOOD = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize(
    "responses, message",
    [
        (np.array([[1.0, 2.0], [0.0, 1.0]]), "only 1, 0 and NaN; found 2.0 at student 0, item 1"),
        (np.array([[1.0, -1.0]]), "found -1.0"),
        (np.array([[1.0, np.inf]]), "found inf"),
        (np.array([1.0, 0.0]), "must be 2-D"),
        (np.zeros((2, 2, 2)), "must be 2-D"),
        (np.zeros((0, 4)), "zero students"),
        (np.zeros((4, 0)), "zero items"),
        ([["x", "y"]], "must be numeric"),
        (sp.csr_matrix(np.array([[2.0, 0.0]])), "signed encoding"),
        (sp.csr_matrix((0, 3)), "zero students"),
    ],
)
def test_invalid_responses(responses, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        calibrate_3pl(responses)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_iterations": 0}, "max_iterations must be in 1..500"),
        ({"max_iterations": 501}, "max_iterations must be in 1..500"),
        ({"max_iterations": 2.5}, "max_iterations must be an integer"),
        ({"max_iterations": True}, "max_iterations must be an integer"),
        ({"convergence_threshold": 0}, "convergence_threshold must be in"),
        ({"convergence_threshold": 1}, "convergence_threshold must be in"),
        ({"convergence_threshold": -0.1}, "convergence_threshold must be in"),
        ({"convergence_threshold": float("nan")}, "convergence_threshold must be in"),
        ({"priors": "bilog"}, "priors must be a Priors instance"),
        ({"n_quadrature": 3}, "n_quadrature must be"),
        ({"start": np.full((2, 3), np.nan)}, "start values must be finite"),
    ],
)
def test_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        calibrate_3pl(GOOD, **options)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"log_a_normal": (0.0, 0.0)}, "log_a_normal"),
        ({"b_normal": (0.0, -1.0)}, "b_normal"),
        ({"c_beta": (0.5, 10.0)}, "c_beta"),
    ],
)
def test_invalid_priors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Priors(**kwargs)


def test_item_fit_rejects_a_result_of_another_shape():
    result = calibrate_3pl(GOOD)
    with pytest.raises(ValueError, match="3 items but the result has 2"):
        item_fit(np.hstack([GOOD, GOOD[:, :1]]), result)


def test_the_input_is_not_modified():
    responses = GOOD.copy()
    calibrate_3pl(responses)
    assert np.array_equal(responses, GOOD)
