"""Standard errors: Louis's observed information against a numerical Hessian, and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from irt_pipeline.engine import calibrate_3pl
from irt_pipeline.engine.estep import expected_counts
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline.engine.standard_errors import observed_information
from irt_pipeline_tests.engine.simulate import dense


def _marginal_log_likelihood(data, params, nodes, weights) -> float:
    return expected_counts(data, *params.T, nodes, weights).log_likelihood


def test_louis_information_matches_a_numerical_hessian_of_the_marginal_likelihood():
    rng = np.random.default_rng(31)
    a, b, c = rng.uniform(0.8, 2, 8), rng.normal(0, 0.8, 8), rng.uniform(0.1, 0.25, 8)
    responses = dense(a, b, c, 2000, seed=32).responses
    result = calibrate_3pl(responses, priors=None, max_iterations=500, convergence_threshold=1e-7)
    data = prepare_responses(responses)
    params = np.column_stack([result.a, result.b, result.c])
    louis, *_ = observed_information(data, params, result.nodes, result.weights, priors=None)
    interior = np.flatnonzero((result.c > 0.02) & (result.c < 0.33) & (result.a < 2.9))
    assert interior.size >= 4
    h = 1e-4
    for item in interior[:4]:
        numeric = np.empty((3, 3))
        for k in range(3):
            for m in range(3):
                def shifted(dk, dm):
                    p = params.copy()
                    p[item, k] += dk
                    p[item, m] += dm
                    return _marginal_log_likelihood(data, p, result.nodes, result.weights)
                numeric[k, m] = -(shifted(h, h) - shifted(h, -h) - shifted(-h, h) + shifted(-h, -h)) / (4 * h * h)
        np.testing.assert_allclose(louis[item], numeric, rtol=0.02, atol=0.5)
        se_numeric = np.sqrt(np.diag(np.linalg.inv(numeric)))
        se_engine = np.array([result.a_se[item], result.b_se[item], result.c_se[item]])
        np.testing.assert_allclose(se_engine, se_numeric, rtol=0.03)


@pytest.mark.slow
def test_b_intervals_cover_the_truth_about_95_percent_of_the_time():
    """100 replications of 1,000 students x 20 items: 2,000 intervals per parameter."""
    rng = np.random.default_rng(123)
    a, b, c = rng.uniform(0.8, 2.0, 20), rng.uniform(-1.5, 1.5, 20), rng.uniform(0.1, 0.25, 20)
    covered = []
    for replication in range(100):
        responses = dense(a, b, c, 1000, seed=1000 + replication).responses
        result = calibrate_3pl(responses, max_iterations=500, convergence_threshold=1e-4)
        covered.append(np.abs(result.b - b) <= 1.96 * result.b_se)
    coverage = float(np.mean(covered))
    print(f"coverage of the 95% intervals of b: {coverage:.3f}")
    assert 0.92 <= coverage <= 0.98
