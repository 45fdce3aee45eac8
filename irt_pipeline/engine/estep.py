"""E-step of Bock & Aitkin (1981): posteriors over the quadrature nodes and expected counts.

With C and W the correct / wrong indicator matrices (students x items; both 0 where a response
is missing, so a missing cell contributes nothing) and P the items x nodes probabilities:

    LL_iq   = sum_j C_ij log P_jq + W_ij log(1 - P_jq)  = (C @ log P + W @ log(1 - P))_iq
    post_iq = exp(LL_iq + log w_q) / sum_q' exp(LL_iq' + log w_q')        (log-sum-exp)
    r_jq    = sum_i C_ij post_iq   = (C.T @ post)_jq     expected correct answers at node q
    n_jq    = r_jq + (W.T @ post)_jq                     expected answers at node q
    log L   = sum_i log sum_q exp(LL_iq + log w_q)       the marginal log-likelihood

Only students x nodes and items x nodes arrays exist, one chunk of students at a time
(Baker & Kim 2004, ch. 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt_pipeline.engine.model import probability
from irt_pipeline.engine.responses import Chunk, ResponseData


@dataclass(frozen=True)
class ExpectedCounts:
    """Sufficient statistics of the M-step and the marginal log-likelihood."""

    r: np.ndarray        # items x nodes, expected correct
    n: np.ndarray        # items x nodes, expected responses
    log_likelihood: float


def chunk_log_posterior(chunk: Chunk, log_p: np.ndarray, log_q: np.ndarray, log_w: np.ndarray):
    """(log posterior (students x nodes), per-student log marginal) for one chunk."""
    joint = chunk.log_joint(log_p, log_q)
    joint += log_w
    peak = joint.max(axis=1, keepdims=True)
    joint -= peak
    marginal = np.log(np.exp(joint).sum(axis=1))
    joint -= marginal[:, None]
    return joint, marginal + peak[:, 0]


def log_tables(a, b, c, nodes):
    """log P and log(1 - P), items x nodes."""
    p = probability(a[:, None], b[:, None], c[:, None], nodes)
    return np.log(p), np.log1p(-p)


def expected_counts(data: ResponseData, a, b, c, nodes, weights) -> ExpectedCounts:
    """One E-step at item parameters (a, b, c)."""
    log_p, log_q = log_tables(a, b, c, nodes)
    log_w = np.log(weights)
    r = np.zeros((data.n_items, nodes.size))
    n = np.zeros_like(r)
    total = 0.0
    for chunk in data.chunks:
        log_post, marginal = chunk_log_posterior(chunk, log_p, log_q, log_w)
        chunk_r, chunk_n = chunk.counts(np.exp(log_post, out=log_post))
        r += chunk_r
        n += chunk_n
        total += float(marginal.sum())
    return ExpectedCounts(r=r, n=n, log_likelihood=total)


def posterior_moments(data: ResponseData, a, b, c, nodes, weights):
    """EAP and posterior standard deviation of theta per student."""
    log_p, log_q = log_tables(a, b, c, nodes)
    log_w = np.log(weights)
    means, sds = [], []
    for chunk in data.chunks:
        log_post, _ = chunk_log_posterior(chunk, log_p, log_q, log_w)
        post = np.exp(log_post, out=log_post)
        mean = post @ nodes
        var = post @ (nodes**2) - mean**2
        means.append(mean)
        sds.append(np.sqrt(np.maximum(var, 0.0)))
    return np.concatenate(means), np.concatenate(sds)
