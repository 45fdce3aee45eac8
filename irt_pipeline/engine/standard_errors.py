"""Standard errors from the observed information of the marginal likelihood (Louis 1982).

For item j, with s_ij(t) the complete-data score of student i's response to item j at theta = t
and m_ij = E_post[s_ij] its posterior mean, the item's block of the observed information is

    I_j = E_post[-d2 log f | x] - E_post[s s^T | x] + sum_i m_ij m_ij^T
        = sum_i m_ij m_ij^T - sum_q (r_jq / P_jq - (n_jq - r_jq) / (1 - P_jq)) d2P_jq

(the two P-dependent terms of the first line cancel to the second; r, n are the expected counts
of the E-step). With x = 1 the score is dP/P, with x = 0 it is -dP/(1 - P), so
m_ij = post_i . (dP_j / P_j) or post_i . (-dP_j / (1 - P_j)) (`cells.cell_means`). With
priors the prior's curvature is added (the Bayes-modal posterior information, as BILOG-MG
reports). SE = sqrt(diag(I_j^-1)), per item
block (cross-item terms are left out, the usual practical choice; Baker & Kim 2004, ch. 7).

At an active bound (say c = 0) the SE is that of the unconstrained curvature there. When a block
is not positive definite (an item without variance, or without responses) the expected (Fisher)
information plus a ridge of RIDGE is inverted instead, so every SE is finite and positive; such
items carry a status other than "ok".
"""

from __future__ import annotations

import numpy as np

from irt_pipeline.engine.cells import cell_means
from irt_pipeline.engine.estep import expected_counts
from irt_pipeline.engine.model import gradients, second_derivatives
from irt_pipeline.engine.mstep import score_and_information
from irt_pipeline.engine.priors import Priors
from irt_pipeline.engine.responses import ResponseData

# Added to the diagonal of a block that is not positive definite (SE of at most 1/sqrt(RIDGE)).
RIDGE = 1e-2
_PAIRS = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


def _score_tables(params: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Complete-data scores at every node: (outcome: hit, miss) x (a, b, c) x items x nodes."""
    a, b, c = (params[:, k:k + 1] for k in range(3))
    p, _, da, db, dc = gradients(a, b, c, nodes)
    derivs = np.stack([da, db, dc])
    return np.stack([derivs / p, -derivs / (1.0 - p)])


def _score_outer_products(data: ResponseData, params, nodes, weights) -> np.ndarray:
    """sum_i m_ij m_ij^T, items x 3 x 3, with m_ij the posterior mean of the score."""
    outer = np.zeros((data.n_items, 3, 3))
    for items, means, per_item_sum in cell_means(data, params, nodes, weights, _score_tables, 3):
        for k, m in _PAIRS:
            outer[items, k, m] += per_item_sum(means[k] * means[m])
    for k, m in _PAIRS:
        outer[:, m, k] = outer[:, k, m]
    return outer


def observed_information(data: ResponseData, params, nodes, weights, priors: Priors | None):
    """Per-item 3 x 3 observed information (Louis 1982) and the marginal log-likelihood."""
    counts = expected_counts(data, *params.T, nodes, weights)
    r, n, log_likelihood = counts.r, counts.n, counts.log_likelihood
    outer = _score_outer_products(data, params, nodes, weights)
    a, b, c = (params[:, k:k + 1] for k in range(3))
    p = gradients(a, b, c, nodes)[0]
    resid = r / p - (n - r) / (1.0 - p)
    second = second_derivatives(a, b, c, nodes)
    info = outer.copy()
    for (k, m), d2 in zip(_PAIRS, second):
        term = (resid * d2).sum(axis=1)
        info[:, k, m] -= term
        if k != m:
            info[:, m, k] -= term
    if priors is not None:
        curv = priors.curvature(params[:, 0], params[:, 1], params[:, 2])
        for k in range(3):
            info[:, k, k] += curv[k]
    return info, r, n, log_likelihood


def standard_errors(data: ResponseData, params, nodes, weights, priors: Priors | None):
    """(items x 3 standard errors of a, b, c, marginal log-likelihood) at `params`."""
    info, r, n, log_likelihood = observed_information(data, params, nodes, weights, priors)
    eigen = np.linalg.eigvalsh(info)
    singular = ~(eigen[:, 0] > 1e-8 * np.maximum(eigen[:, -1], 1e-300))
    if singular.any():
        _, fisher = score_and_information(params[singular], r[singular], n[singular], nodes, priors)
        info[singular] = fisher + RIDGE * np.eye(3)
    covariance = np.linalg.inv(info)
    ses = np.sqrt(np.diagonal(covariance, axis1=1, axis2=2))
    return ses, log_likelihood
