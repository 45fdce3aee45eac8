"""Standard errors from the observed information of the marginal likelihood (Louis 1982).

Notation: student i, item j, node t_q with posterior weight post_iq (the E-step's, at the
estimates); s_ij(t) is the complete-data score of student i's response to item j in (a, b, c)
at theta = t: dP_j/P_j for a correct answer, -dP_j/(1 - P_j) for a wrong one, 0 if missing;
S_i(t) = (s_i1(t), ..., s_iJ(t)) is student i's score for all 3J parameters, and
m_ij = E_post[s_ij] its posterior mean (`cells.cell_means`).

Louis's identity (Louis 1982; Baker & Kim 2004, ch. 7; Oakes 1999 for the same by
differentiating the EM map) gives the observed information
of the marginal log-likelihood l = sum_i log integral f(x_i | t) phi(t) dt as

    I_obs = sum_i E_post[-d2 log f(x_i | theta)] - sum_i Cov_post[S_i(theta)].

The first term is block diagonal (each item's parameters enter only its own responses); the
second is not: two items answered by the same student have correlated scores through theta.

Block method (default). Item j's 3 x 3 diagonal block alone,

    I_j = sum_i m_ij m_ij^T - sum_q (r_jq / P_jq - (n_jq - r_jq) / (1 - P_jq)) d2P_jq

(the P-dependent parts of E[-d2 log f] - E[s s^T] cancel; r, n are the E-step's expected
counts), inverted per item. It ignores the cross-item covariances, so it treats the other
items' parameters as known: its SEs are somewhat low for 3PL items on short tests (3-14 % on
SAT12), close on long ones.

Full method. The whole 3J x 3J matrix: the diagonal blocks I_j as above, the off-diagonal
blocks -sum_i Cov_post[s_ij, s_ik] = -sum_i sum_q post_iq (s_ij(t_q) - m_ij)(s_ik(t_q) - m_ik)^T.
It is assembled as F F^T, F having one column sqrt(post_iq) (S_i(t_q) - m_i) per student and
node, with nodes where post_iq < POSTERIOR_FLOOR left out (together they carry less than 1e-8
of a student's posterior; the matrix still matches a finite-difference Hessian to 1e-4): on
dense data by rank-k updates (BLAS syrk) over chunks of columns, on sparse data per student over
the items they answered (a (3 L_i)^2 block each), added into the matrix. Cost: dense, about
(3J)^2 x (students x nodes in each posterior) multiply-adds; sparse, about (3 L)^2 x (students
x nodes) for L responses per student; then a Cholesky factorisation of the free part, (3J)^3 / 3.
Memory: a few copies of the 3J x 3J float64 matrix, 72 J^2 bytes each (72 MB at 1,000 items,
288 MB at FULL_INFORMATION_MAX_ITEMS = 2,000 items); above that the engine refuses (ValueError
before fitting) and the block method is the way.

Priors (Bayes modal): the prior's curvature (`Priors.curvature`) is added to the diagonal, so
the SEs are those of the log-posterior's curvature, as BILOG-MG reports.

Bounds. A parameter within ACTIVE_MARGIN of its box bound (the margin within which the M-step
holds a parameter at the bound; em.py clips to the box exactly) is at an active bound: the
likelihood's curvature there does not describe its sampling variability (the estimate has a
point mass at the bound), so its SE is NaN (the storage layer writes NULL) and `at_bound` says
so. The other parameters are treated as conditional on it: only the free rows and columns of
the information are inverted (the SE of the Hessian with the bound parameter held fixed), as R
mirt reports. Those SEs are conditional on the bound value: in plain ML an item whose c ran to
0 has its b shifted along the a-b-c ridge, and the conditional b_se does not cover that (b's
95 % intervals covered 8 % of such items in simulation, against 95 % for items with every
parameter interior; `test_standard_errors`). The at_bound flag is the warning; the default
priors keep c off its bound.

Singular information. When the free block of an item is not positive definite (smallest
eigenvalue at most SINGULAR_RCOND times the largest, or not positive) the data do not identify
the item's free parameters; no ridge is added: all its SEs are NaN and its status becomes
"singular_information" (unless a more specific status, e.g. all_correct, applies).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from irt_pipeline.engine.cells import cell_means
from irt_pipeline.engine.estep import chunk_log_posterior, expected_counts, log_tables
from irt_pipeline.engine.model import gradients, second_derivatives
from irt_pipeline.engine.mstep import ACTIVE_MARGIN, BRIEF_BOUNDS, Bounds
from irt_pipeline.engine.priors import Priors
from irt_pipeline.engine.responses import ResponseData

# A free block whose smallest eigenvalue is at most this share of its largest is singular.
SINGULAR_RCOND = 1e-8
# The full-information method refuses more items than this (memory: see the module docstring).
FULL_INFORMATION_MAX_ITEMS = 2000
# Posterior weights below this are left out of the full method's cross-item covariances.
POSTERIOR_FLOOR = 1e-10
# Work-array size (float64 values) per step of the full method: 16 MB.
FULL_BLOCK_VALUES = 1 << 21
SE_METHODS = ("block", "full")
_PAIRS = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


@dataclass(frozen=True)
class StandardErrors:
    """SEs and what the engine could say about each parameter."""

    se: np.ndarray            # items x 3 (a, b, c); NaN at a bound, for a singular item, unanswered
    at_bound: np.ndarray      # items x 3 bool: the parameter sits at its box bound
    singular: np.ndarray      # items bool: the item's free block is not positive definite
    log_likelihood: float     # marginal log-likelihood at the estimates (plain, no priors)
    method: str               # "block" or "full": the method actually used


def active_bounds(params: np.ndarray, bounds: Bounds = BRIEF_BOUNDS) -> np.ndarray:
    """items x 3 bool: within ACTIVE_MARGIN of the lower or upper bound of the box."""
    return (params <= bounds.lower() + ACTIVE_MARGIN) | (params >= bounds.upper() - ACTIVE_MARGIN)


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
    """Per-item 3 x 3 observed information (Louis 1982), with the prior's curvature if any;
    returns (info, r, n, marginal log-likelihood)."""
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


def block_standard_errors(info: np.ndarray, free: np.ndarray):
    """Invert each item's free block of `info` (items x 3 x 3); (items x 3 SEs, singular).

    Items are grouped by their pattern of free parameters (at most 8 patterns), so every
    inversion is one batched call. A parameter that is not free gets NaN; an item whose free
    block is not positive definite gets NaN throughout and singular = True."""
    n_items = info.shape[0]
    ses = np.full((n_items, 3), np.nan)
    singular = np.zeros(n_items, dtype=bool)
    codes = free @ np.array([1, 2, 4])
    for code in np.unique(codes):
        idx = np.flatnonzero(codes == code)
        keep = np.flatnonzero(free[idx[0]])
        if keep.size == 0:
            continue
        sub = info[np.ix_(idx, keep, keep)]
        if not np.isfinite(sub).all():
            bad = ~np.isfinite(sub).all(axis=(1, 2))
            sub[bad] = 0.0
        eigen = np.linalg.eigvalsh(sub)
        good = (eigen[:, -1] > 0) & (eigen[:, 0] > SINGULAR_RCOND * eigen[:, -1])
        if good.any():
            covariance = np.linalg.inv(sub[good])
            ses[np.ix_(idx[good], keep)] = np.sqrt(np.diagonal(covariance, axis1=1, axis2=2))
        singular[idx[~good]] = True
    return ses, singular


def _dense_cross_products(data: ResponseData, post_chunks, tables, n_items) -> np.ndarray:
    """The upper triangle of sum_i Cov_post[S_i] (3J x 3J, parameter-major: row k J + j) for
    dense data, by syrk over columns (student, node) with post_iq >= POSTERIOR_FLOOR."""
    width = 3 * n_items
    acc = np.zeros((width, width), order="F")
    per_step = max(1, FULL_BLOCK_VALUES // width)
    hit_t, miss_t = tables[0], tables[1]          # 3 x items x nodes each
    for chunk, post in post_chunks:
        correct = chunk.correct
        wrong = 1.0 - correct if chunk.wrong is None else chunk.wrong
        # posterior means m_ij^k at the observed cells (zeros elsewhere): students x items
        means = [correct * (post @ hit_t[k].T) + wrong * (post @ miss_t[k].T) for k in range(3)]
        rows, nodes_idx = np.nonzero(post >= POSTERIOR_FLOOR)
        for s0 in range(0, rows.size, per_step):
            ii, qq = rows[s0:s0 + per_step], nodes_idx[s0:s0 + per_step]
            root = np.sqrt(post[ii, qq])[:, None]
            c_rows, w_rows = correct[ii], wrong[ii]
            f = np.empty((ii.size, width))
            for k in range(3):
                block = c_rows * hit_t[k][:, qq].T
                block += w_rows * miss_t[k][:, qq].T
                block -= means[k][ii]
                block *= root
                f[:, k * n_items:(k + 1) * n_items] = block
            # acc += f^T f (upper triangle), f^T being Fortran-ordered: no copy
            acc = scipy.linalg.blas.dsyrk(1.0, f.T, beta=1.0, c=acc, trans=0, lower=0,
                                          overwrite_c=1)
    return acc     # the upper triangle (the lower one holds zeros)


def _sparse_cross_products(data: ResponseData, post_chunks, tables, n_items) -> np.ndarray:
    """sum_i Cov_post[S_i] for sparse data: per student, the (3 L_i)^2 block of the L_i items
    they answered over their nodes with post_iq >= POSTERIOR_FLOOR, added into the 3J x 3J
    matrix. `tables` is (a, b, c) x (hit, miss) x items x nodes."""
    width = 3 * n_items
    flat = np.zeros(width * width)
    n_nodes = tables.shape[-1]
    budget = 4 * FULL_BLOCK_VALUES
    index_type = np.int32 if width * width < 2**31 else np.int64
    for chunk, post in post_chunks:
        signed = (sp.csr_matrix(chunk.correct) - sp.csr_matrix(chunk.wrong)).tocsr()
        signed.sort_indices()
        lengths = np.diff(signed.indptr)
        order = np.argsort(lengths, kind="stable")    # similar lengths together: little padding
        significant = post >= POSTERIOR_FLOOR
        first = np.argmax(significant, axis=1)
        last = n_nodes - 1 - np.argmax(significant[:, ::-1], axis=1)
        spans = last - first + 1
        def per_student(length) -> int:      # work-array values for one student
            width_l = 3 * max(int(length), 1)
            return width_l * width_l + width_l * n_nodes

        start = 0
        while start < order.size:
            count = max(1, min(order.size - start, budget // per_student(lengths[order[start]])))
            count = max(1, min(count, budget // per_student(lengths[order[start + count - 1]])))
            students = order[start:start + count]
            start += count
            longest = max(int(lengths[students].max()), 1)
            span = int(spans[students].max())
            # items answered (padded with item 0 and weight 0) and correctness: s x L
            pos = signed.indptr[students][:, None] + np.arange(longest)
            valid = np.arange(longest) < lengths[students][:, None]
            pos = np.where(valid, pos, 0)
            items = np.where(valid, signed.indices[pos], 0)
            outcome = np.where(signed.data[pos] > 0, 0, 1)
            # nodes of each student's significant window: s x K
            q = first[students][:, None] + np.arange(span)
            in_window = q <= last[students][:, None]
            q = np.minimum(q, n_nodes - 1)
            w = np.where(in_window, post[students[:, None], q], 0.0)
            w /= w.sum(axis=1, keepdims=True)
            # scores: 3 x s x L x K, centred at their posterior means and weighted
            scores = tables[:, outcome[:, :, None], items[:, :, None], q[:, None, :]]
            scores *= valid[None, :, :, None]
            scores -= np.einsum("ksln,sn->ksl", scores, w)[..., None]
            scores *= np.sqrt(w)[None, :, None, :]
            f = scores.transpose(1, 0, 2, 3).reshape(count, 3 * longest, span)
            blocks = np.einsum("sik,sjk->sij", f, f).reshape(count, -1)      # s x (3L)^2
            index = (np.arange(3)[None, :, None] * n_items + items[:, None, :]).reshape(count, -1)
            index = index.astype(index_type)
            # items ascend within a student, so the block's upper triangle lands in the upper
            # triangle of the matrix: add that half only, mirror once at the end
            rows, cols = np.triu_indices(3 * longest)
            cells = index[:, rows] * index_type(width) + index[:, cols]
            flat += np.bincount(cells.ravel(), blocks[:, rows * 3 * longest + cols].ravel(),
                                minlength=width * width)
    matrix = flat.reshape(width, width)
    matrix += np.triu(matrix, 1).T
    return matrix


def _posterior_chunks(data: ResponseData, params, nodes, weights):
    log_p, log_q = log_tables(*params.T, nodes)
    log_w = np.log(weights)
    for chunk in data.chunks:
        log_post, _ = chunk_log_posterior(chunk, log_p, log_q, log_w)
        yield chunk, np.exp(log_post, out=log_post)


def full_information(data: ResponseData, params, nodes, weights, block_info, free,
                     symmetric: bool = True) -> np.ndarray:
    """The 3J x 3J observed information (parameter-major: row k J + j for parameter k of item
    j), from Louis's identity over all items: the per-item blocks `block_info` (with any prior
    curvature) on the diagonal, -sum_i Cov_post[s_ij, s_ik] off it. Off-diagonal rows and
    columns of parameters that are not `free` are zero (their scores are not computed).
    symmetric=False may leave the lower triangle unset (enough for an upper Cholesky)."""
    n_items = data.n_items
    tables = _score_tables(params, nodes)                       # 2 x 3 x items x nodes
    tables *= free.T[None, :, :, None]
    posts = _posterior_chunks(data, params, nodes, weights)
    if data.is_dense:
        covariance = _dense_cross_products(data, posts, tables, n_items)
    else:
        covariance = _sparse_cross_products(data, posts, tables.transpose(1, 0, 2, 3), n_items)
    if symmetric and data.is_dense:
        covariance += np.triu(covariance, 1).T
    info = np.negative(covariance, out=covariance)
    j = np.arange(n_items)
    for k in range(3):
        for m in range(3):
            info[k * n_items + j, m * n_items + j] = block_info[:, k, m]
    return info


def _full_standard_errors(info: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """SEs (items x 3, NaN where not free) from the inverse of the free part of the full
    information, or None when that part is not positive definite."""
    n_items = free.shape[0]
    chosen = np.flatnonzero(free.T.ravel())                 # parameter-major, as `info`
    ses = np.full(3 * n_items, np.nan)
    if chosen.size == 0:
        return ses.reshape(3, n_items).T
    sub = info[np.ix_(chosen, chosen)]
    factor, failed = scipy.linalg.lapack.dpotrf(sub, lower=0, clean=1, overwrite_a=1)
    if failed != 0:
        return None
    inverse, failed = scipy.linalg.lapack.dpotri(factor, lower=0, overwrite_c=1)
    variances = np.diagonal(inverse).copy()
    if failed != 0 or not (variances > 0).all():
        return None
    ses[chosen] = np.sqrt(variances)
    return ses.reshape(3, n_items).T


def standard_errors(data: ResponseData, params, nodes, weights, priors: Priors | None,
                    bounds: Bounds = BRIEF_BOUNDS, method: str = "block",
                    estimable: np.ndarray | None = None) -> StandardErrors:
    """Standard errors of (a, b, c) at `params` by the block or the full method.

    estimable: items bool, False for items without responses (their SEs are NaN).
    With method="full", if the free part of the full information is not positive definite
    (with the singular items already removed) the block SEs are returned, with a warning, and
    `method` says "block"."""
    if method not in SE_METHODS:
        raise ValueError(f"se_method must be one of {SE_METHODS}, got {method!r}")
    estimable = np.ones(data.n_items, bool) if estimable is None else np.asarray(estimable, bool)
    at_bound = active_bounds(params, bounds) & estimable[:, None]
    info, _, _, log_likelihood = observed_information(data, params, nodes, weights, priors)
    free = ~at_bound & estimable[:, None]
    ses, singular = block_standard_errors(info, free)
    singular &= estimable
    used = "block"
    if method == "full":
        if data.n_items > FULL_INFORMATION_MAX_ITEMS:
            raise ValueError(f"se_method='full' supports at most {FULL_INFORMATION_MAX_ITEMS} "
                             f"items (the 3J x 3J information); got {data.n_items}")
        free_full = free & ~singular[:, None]
        full = _full_standard_errors(
            full_information(data, params, nodes, weights, info, free_full, symmetric=False),
            free_full)
        if full is None:
            warnings.warn("the full information matrix is not positive definite on the free "
                          "parameters; reporting the block standard errors", RuntimeWarning,
                          stacklevel=2)
        else:
            ses, used = full, "full"
    ses[~estimable] = np.nan
    return StandardErrors(se=ses, at_bound=at_bound, singular=singular,
                          log_likelihood=log_likelihood, method=used)
