"""Student abilities (engine/abilities.py): EAP and posterior SD (Bock & Mislevy 1982).

Checked against a direct numerical posterior (scipy.integrate.quad of L_i(theta) times the
prior density), on the run scale and on a bank scale (prior N(B, A^2)); and on simulated banks,
the EAPs recover the true abilities with a posterior SD that matches their actual error.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from irt_pipeline.engine import calibrate_3pl
from irt_pipeline.engine.abilities import Abilities, eap_abilities
from irt_pipeline.engine.linking import transform_result
from irt_pipeline_tests.engine.simulate import dense, sparse


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(31)
    a, b, c = rng.uniform(0.5, 2.5, 30), rng.normal(0, 1, 30), rng.uniform(0.05, 0.3, 30)
    sim = dense(a, b, c, 1000, seed=32)
    responses = sim.responses.copy()
    responses[rng.random(responses.shape) < 0.4] = np.nan
    responses[7] = np.nan          # a student without responses
    responses[8, 1:] = np.nan      # ... and one with a single response
    return responses, calibrate_3pl(responses)


def direct_posterior(x: np.ndarray, a, b, c, prior_mean=0.0, prior_sd=1.0) -> tuple[float, float]:
    """EAP and PSD by adaptive quadrature of the continuous posterior."""
    seen = ~np.isnan(x)

    def likelihood(t):
        p = c[seen] + (1 - c[seen]) / (1 + np.exp(-a[seen] * (t - b[seen])))
        return np.prod(np.where(x[seen] == 1, p, 1 - p)) * stats.norm.pdf(t, prior_mean, prior_sd)

    lo, hi = prior_mean - 10 * prior_sd, prior_mean + 10 * prior_sd
    moments = [integrate.quad(lambda t, k=k: t**k * likelihood(t), lo, hi, epsabs=1e-14, epsrel=1e-9,
                              limit=200)[0] for k in range(3)]
    mean = moments[1] / moments[0]
    return mean, np.sqrt(moments[2] / moments[0] - mean**2)


STUDENTS = [0, 1, 2, 7, 8, 500, 999]


def test_eap_and_psd_match_a_direct_numerical_posterior(calibrated):
    responses, result = calibrated
    abilities = eap_abilities(responses, result)
    assert isinstance(abilities, Abilities) and abilities.n_students == 1000
    for i in STUDENTS:
        eap, psd = direct_posterior(responses[i], result.a, result.b, result.c)
        assert abilities.theta[i] == pytest.approx(eap, abs=1e-6), i
        assert abilities.theta_se[i] == pytest.approx(psd, abs=1e-6), i
    # the student without responses gets the prior; counts are per student
    assert abilities.theta[7] == pytest.approx(0.0, abs=1e-9)
    assert abilities.theta_se[7] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(abilities.response_counts, (~np.isnan(responses)).sum(axis=1))


def test_on_the_bank_scale_the_prior_is_the_runs_population(calibrated):
    responses, result = calibrated
    A, B = 1.3, 0.45
    linked = transform_result(result, A, B)
    abilities = eap_abilities(responses, linked)
    for i in STUDENTS:
        eap, psd = direct_posterior(responses[i], linked.a, linked.b, linked.c, prior_mean=B, prior_sd=A)
        assert abilities.theta[i] == pytest.approx(eap, abs=1e-6), i
        assert abilities.theta_se[i] == pytest.approx(psd, abs=1e-6), i
    assert abilities.theta[7] == pytest.approx(B, abs=1e-9)


def test_sparse_and_dense_input_give_the_same_abilities(calibrated):
    import scipy.sparse as sp

    responses, result = calibrated
    signed = np.where(np.isnan(responses), 0.0, np.where(responses == 1, 1.0, -1.0))
    from_sparse = eap_abilities(sp.csr_matrix(signed), result)
    from_dense = eap_abilities(responses, result)
    np.testing.assert_allclose(from_sparse.theta, from_dense.theta, atol=1e-12)
    np.testing.assert_allclose(from_sparse.theta_se, from_dense.theta_se, atol=1e-12)


def test_a_response_matrix_of_another_width_is_rejected(calibrated):
    responses, result = calibrated
    with pytest.raises(ValueError, match="29 items but the result has 30"):
        eap_abilities(responses[:, :29], result)


@pytest.mark.parametrize("design", ["dense", "sparse"])
def test_abilities_recover_the_true_theta_with_an_honest_posterior_sd(design):
    """EAP against the generating theta: high correlation, no bias, and the posterior SD matches
    the actual error (root mean PSD^2 vs the RMSE of EAP - theta, which for EAP under the right
    prior are the same quantity in expectation)."""
    rng = np.random.default_rng(41)
    n_items = 120
    a, b, c = rng.uniform(0.5, 2.5, n_items), rng.normal(0, 1, n_items), rng.uniform(0.05, 0.3, n_items)
    if design == "dense":
        sim = dense(a[:40], b[:40], c[:40], 3000, seed=42)
    else:
        sim = sparse(a, b, c, 4000, per_student=30, seed=43)
    result = calibrate_3pl(sim.responses)
    abilities = eap_abilities(sim.responses, result)
    error = abilities.theta - sim.theta
    rmse = float(np.sqrt(np.mean(error**2)))
    root_mean_psd = float(np.sqrt(np.mean(abilities.theta_se**2)))
    assert np.corrcoef(abilities.theta, sim.theta)[0, 1] > 0.9
    assert abs(error.mean()) < 0.05
    assert root_mean_psd == pytest.approx(rmse, rel=0.08)
