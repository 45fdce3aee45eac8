"""Standard errors from the observed information of the marginal likelihood (Louis 1982).

For item j, with s_ij(t) the complete-data score of student i's response to item j at theta = t
and m_ij = E_post[s_ij] its posterior mean, the item's block of the observed information is

    I_j = E_post[-d2 log f | x] - E_post[s s^T | x] + sum_i m_ij m_ij^T
        = sum_i m_ij m_ij^T - sum_q (r_jq / P_jq - (n_jq - r_jq) / (1 - P_jq)) d2P_jq

(the two P-dependent terms of the first line cancel to the second; r, n are the expected counts
of the E-step). With x = 1 the score is dP/P, with x = 0 it is -dP/(1 - P), so
m_ij = post_i . (dP_j / P_j) or post_i . (-dP_j / (1 - P_j)): a students x nodes by nodes x items
product, done one block of students at a time. With priors the prior's curvature is added (the
Bayes-modal posterior information, as BILOG-MG reports). SE = sqrt(diag(I_j^-1)), per item
block (cross-item terms are left out, the usual practical choice; Baker & Kim 2004, ch. 7).

At an active bound (say c = 0) the SE is that of the unconstrained curvature there. When a block
is not positive definite (an item without variance, or without responses) the expected (Fisher)
information plus a ridge of RIDGE is inverted instead, so every SE is finite and positive; such
items carry a status other than "ok".
"""

from __future__ import annotations

import numpy as np

from irt_pipeline.engine.estep import chunk_log_posterior, log_tables
from irt_pipeline.engine.model import gradients, second_derivatives
from irt_pipeline.engine.mstep import score_and_information
from irt_pipeline.engine.priors import Priors
from irt_pipeline.engine.responses import ResponseData

# Work-array size per block of the m_ij computation (cells, or cells x nodes when sparse): ~16 MB.
BLOCK_CELLS = 1 << 21
# Added to the diagonal of a block that is not positive definite (SE of at most 1/sqrt(RIDGE)).
RIDGE = 1e-2
_PAIRS = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


def _score_tables(params: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Complete-data scores at every node: (outcome: hit, miss) x (a, b, c) x items x nodes."""
    a, b, c = (params[:, k:k + 1] for k in range(3))
    p, _, da, db, dc = gradients(a, b, c, nodes)
    derivs = np.stack([da, db, dc])
    return np.stack([derivs / p, -derivs / (1.0 - p)])


def _accumulate(outer: np.ndarray, weights_of, means) -> None:
    """outer[:, k, m] += sum over students of m_k m_m (upper triangle)."""
    for k, m in _PAIRS:
        outer[:, k, m] += weights_of(means[k] * means[m])


def _outer_dense(outer, post, correct, wrong, tables) -> None:
    """Dense block: m_ij = C_ij (post_i . hit_j) + W_ij (post_i . miss_j), by BLAS."""
    wrong = 1.0 - correct if wrong is None else wrong
    means = [correct * (post @ tables[0, k].T) + wrong * (post @ tables[1, k].T) for k in range(3)]
    _accumulate(outer, lambda x: x.sum(axis=0), means)


def _outer_sparse(outer, post, rows, cols, hit, tables) -> None:
    """Sparse block: gather each observed cell's posterior row and its item's score row.

    The hit and miss tables are stacked (rows j and n_items + j), so each cell needs one
    gather per parameter; float32 halves the memory traffic of the gathers (the sums over
    nodes keep ~7 significant digits, ample for a standard error)."""
    n_items = tables.shape[2]
    table_row = np.where(hit, cols, cols + n_items)
    gathered = post[rows].astype(np.float32)
    means = []
    for k in range(3):
        stacked = np.concatenate([tables[0, k], tables[1, k]]).astype(np.float32)
        means.append(np.einsum("ij,ij->i", gathered, stacked[table_row]).astype(np.float64))
    _accumulate(outer, lambda x: np.bincount(cols, x, minlength=outer.shape[0]), means)


def _score_outer_products(data: ResponseData, params, nodes, weights):
    """sum_i m_ij m_ij^T (items x 3 x 3), expected counts r, n and the log-likelihood.

    Work is split into blocks of items (score tables of BLOCK_CELLS cells) and of students
    (posterior-by-table products of about BLOCK_CELLS cells), so memory stays bounded."""
    log_p, log_q = log_tables(*params.T, nodes)
    log_w = np.log(weights)
    outer = np.zeros((data.n_items, 3, 3))
    r = np.zeros((data.n_items, nodes.size))
    n = np.zeros_like(r)
    total = 0.0
    items_per_block = max(1, BLOCK_CELLS // (6 * nodes.size))
    for chunk in data.chunks:
        log_post, marginal = chunk_log_posterior(chunk, log_p, log_q, log_w)
        post = np.exp(log_post, out=log_post)
        total += float(marginal.sum())
        chunk_r, chunk_n = chunk.counts(post)
        r += chunk_r
        n += chunk_n
        if not data.is_dense:
            rows, cols, hit = chunk.observed_cells()
            if items_per_block < data.n_items:  # group the cells by item block
                order = np.argsort(cols, kind="stable")
                rows, cols, hit = rows[order], cols[order], hit[order]
        for first in range(0, data.n_items, items_per_block):
            items = slice(first, min(first + items_per_block, data.n_items))
            tables = _score_tables(params[items], nodes)
            block_outer = outer[items]
            if data.is_dense:
                step = max(1, BLOCK_CELLS // (items.stop - items.start))
                for s0 in range(0, chunk.n_students, step):
                    students = slice(s0, s0 + step)
                    wrong = None if chunk.wrong is None else chunk.wrong[students, items]
                    _outer_dense(block_outer, post[students], chunk.correct[students, items], wrong, tables)
            else:
                lo, hi = ((0, cols.size) if items_per_block >= data.n_items
                          else np.searchsorted(cols, [items.start, items.stop]))
                step = max(1, BLOCK_CELLS // nodes.size)
                for c0 in range(lo, hi, step):
                    cells = slice(c0, min(c0 + step, hi))
                    _outer_sparse(block_outer, post, rows[cells], cols[cells] - items.start,
                                  hit[cells], tables)
    for k, m in _PAIRS:
        outer[:, m, k] = outer[:, k, m]
    return outer, r, n, total


def observed_information(data: ResponseData, params, nodes, weights, priors: Priors | None):
    """Per-item 3 x 3 observed information (Louis 1982) and the marginal log-likelihood."""
    outer, r, n, log_likelihood = _score_outer_products(data, params, nodes, weights)
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
