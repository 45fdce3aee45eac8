"""The M-step's derivatives and ascent, and the quadrature grid's choice."""

from __future__ import annotations

import numpy as np

from irt_pipeline.engine import BRIEF_BOUNDS, Priors
from irt_pipeline.engine.mstep import maximise, objective, score_and_information
from irt_pipeline.engine.quadrature import auto_node_count, normal_grid


def _counts(rng, n_items=6):
    nodes, weights = normal_grid(61)
    n = rng.uniform(5, 50, (n_items, 1)) * weights * 61
    p_true = 0.2 + 0.8 / (1 + np.exp(-1.3 * (nodes - rng.normal(0, 1, (n_items, 1)))))
    return nodes, n * p_true, n


def test_gradient_matches_finite_differences_of_the_objective():
    rng = np.random.default_rng(1)
    nodes, r, n = _counts(rng)
    params = np.column_stack([rng.uniform(0.7, 2, 6), rng.normal(0, 1, 6), rng.uniform(0.05, 0.3, 6)])
    for priors in (None, Priors()):
        grad, info = score_and_information(params, r, n, nodes, priors)
        for k in range(3):
            step = np.zeros_like(params)
            step[:, k] = 1e-6
            numeric = (objective(params + step, r, n, nodes, priors)
                       - objective(params - step, r, n, nodes, priors)) / 2e-6
            np.testing.assert_allclose(grad[:, k], numeric, rtol=1e-5, atol=1e-6)
        assert np.all(np.linalg.eigvalsh(info) > 0)   # Fisher information is positive definite


def test_maximise_never_lowers_the_objective_and_respects_bounds():
    rng = np.random.default_rng(2)
    nodes, r, n = _counts(rng, n_items=50)
    params = np.column_stack([rng.uniform(0.2, 3, 50), rng.uniform(-6, 6, 50), rng.uniform(0, 0.35, 50)])
    for priors in (None, Priors()):
        before = objective(params, r, n, nodes, priors)
        after_params = maximise(params, r, n, nodes, priors, BRIEF_BOUNDS, steps=5)
        assert np.all(objective(after_params, r, n, nodes, priors) >= before - 1e-9 * np.abs(before))
        assert np.all(after_params >= BRIEF_BOUNDS.lower()) and np.all(after_params <= BRIEF_BOUNDS.upper())


def test_grid_weights_and_auto_node_count():
    nodes, weights = normal_grid(41)
    assert np.isclose(weights.sum(), 1.0)
    assert np.isclose(nodes @ weights, 0.0, atol=1e-12)
    assert np.isclose((nodes**2) @ weights, 1.0, atol=1e-6)
    counts = [auto_node_count(n) for n in (1, 60, 1000, 100_000)]
    assert counts[0] == 41 and counts == sorted(counts) and counts[-1] == 241
    assert all(c % 2 == 1 for c in counts)
