"""M-step: every item at once, by projected Fisher scoring with step halving.

For item j the EM objective (Bock & Aitkin 1981, eq. 9; Baker & Kim 2004, ch. 6) is

    f_j(a, b, c) = sum_q r_jq log P_jq + (n_jq - r_jq) log(1 - P_jq) + log prior(a, b, c)

with gradient   g = sum_q (r_jq - n_jq P_jq) / (P_jq (1 - P_jq)) dP_jq + grad log prior
and expected information (Fisher scoring)
                H = sum_q n_jq / (P_jq (1 - P_jq)) dP_jq dP_jq^T + prior information.

Sums over nodes of terms in (t_q - b_j) are taken as matrix-vector products with the node
vector, e.g. sum_q x_jq (t_q - b_j) = (x @ t)_j - b_j sum_q x_jq. Each step solves the items'
3 x 3 systems H d = g in one batched call. Parameters at a bound whose gradient points outwards
are held fixed (their row and column of H become the identity, their gradient 0: a projected
Newton step, Bertsekas 1982); the step is capped, projected onto the box, and halved for each
item whose objective did not increase, so the objective never decreases (a generalised EM
step, Dempster, Laird & Rubin 1977). Nodes that carry no expected responses at all are dropped
before the steps: they add nothing to f, g or H.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt_pipeline.engine.model import EPS, logistic_part, probability
from irt_pipeline.engine.priors import Priors


@dataclass(frozen=True)
class Bounds:
    """Box constraints on (a, b, c); the brief fixes a in [0.2, 3.0] and c in [0, 0.35]."""

    a: tuple[float, float] = (0.2, 3.0)
    b: tuple[float, float] = (-6.0, 6.0)
    c: tuple[float, float] = (0.0, 0.35)

    def lower(self) -> np.ndarray:
        return np.array([self.a[0], self.b[0], self.c[0]])

    def upper(self) -> np.ndarray:
        return np.array([self.a[1], self.b[1], self.c[1]])


BRIEF_BOUNDS = Bounds()
# Largest change of (a, b, c) in one scoring step: keeps early steps from overshooting.
MAX_STEP = np.array([0.5, 1.0, 0.1])
HALVINGS = 10
# Distance from a bound within which a parameter pushed outwards is held there.
ACTIVE_MARGIN = 1e-4
# Relative change of an objective that is indistinguishable from rounding.
ROUNDING = 1e-13
# Nodes whose expected responses (over all items) are below this share of the total are dropped.
NODE_MASS_FLOOR = 1e-12
# Items x nodes cells per M-step block (about 16 MB per work array).
BLOCK_CELLS = 1 << 21


def objective(params: np.ndarray, r, n, nodes, priors: Priors | None) -> np.ndarray:
    """f_j for every item; params is items x 3 (a, b, c)."""
    p = probability(params[:, :1], params[:, 1:2], params[:, 2:3], nodes)
    value = np.einsum("ij,ij->i", r, np.log(p)) + np.einsum("ij,ij->i", n - r, np.log1p(-p))
    if priors is not None:
        value += priors.log_density(params[:, 0], params[:, 1], params[:, 2])
    return value


def score_and_information(params: np.ndarray, r, n, nodes, priors: Priors | None):
    """Gradient (items x 3) and expected information (items x 3 x 3) of f_j."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    psi = logistic_part(a[:, None], b[:, None], nodes)
    miss = 1.0 - psi
    p = np.clip(c[:, None] + (1.0 - c[:, None]) * psi, EPS, 1.0 - EPS)
    pq = p * (1.0 - p)
    slope = (1.0 - c)[:, None] * psi * miss          # s = dP / d(a (t - b))
    resid = (r - n * p) / pq
    weight = n / pq
    rs = resid * slope
    ws = weight * slope
    ws2 = ws * slope
    wsm = ws * miss
    t, t2 = nodes, nodes * nodes
    sum_rs, sum_ws2, sum_wsm = rs.sum(1), ws2.sum(1), wsm.sum(1)
    ws2_t = ws2 @ t
    grad = np.column_stack([
        rs @ t - b * sum_rs,
        -a * sum_rs,
        np.einsum("ij,ij->i", resid, miss),
    ])
    info = np.empty((params.shape[0], 3, 3))
    info[:, 0, 0] = ws2 @ t2 - 2.0 * b * ws2_t + b * b * sum_ws2
    info[:, 0, 1] = info[:, 1, 0] = -a * (ws2_t - b * sum_ws2)
    info[:, 1, 1] = a * a * sum_ws2
    info[:, 0, 2] = info[:, 2, 0] = wsm @ t - b * sum_wsm
    info[:, 1, 2] = info[:, 2, 1] = -a * sum_wsm
    info[:, 2, 2] = np.einsum("ij,ij->i", weight, miss * miss)
    if priors is not None:
        grad += np.column_stack(priors.gradient(a, b, c))
        ia, ib, ic = priors.information(a, b, c)
        info[:, 0, 0] += ia
        info[:, 1, 1] += ib
        info[:, 2, 2] += ic
    return grad, info


def projected_step(params, grad, info, bounds: Bounds) -> np.ndarray:
    """Newton direction with variables at an active bound held fixed, capped per parameter.

    A variable within ACTIVE_MARGIN of a bound whose gradient points out of the box counts as
    active (Bertsekas's epsilon-active set), so a parameter creeping towards a bound is not
    stepped across it and clipped, which would spoil the ascent of the whole step."""
    lower, upper = bounds.lower(), bounds.upper()
    held = (((params <= lower + ACTIVE_MARGIN) & (grad < 0))
            | ((params >= upper - ACTIVE_MARGIN) & (grad > 0)))
    grad = np.where(held, 0.0, grad)
    free = ~held
    system = info * (free[:, :, None] & free[:, None, :])
    diag = np.arange(3)
    system[:, diag, diag] += held + 1e-9 * (1.0 + np.abs(info[:, diag, diag]))
    step = np.linalg.solve(system, grad[:, :, None])[:, :, 0]
    scale = np.min(MAX_STEP / np.maximum(np.abs(step), 1e-300), axis=1, initial=1.0)
    return step * np.minimum(scale, 1.0)[:, None]


def maximise(params, r, n, nodes, priors: Priors | None, bounds: Bounds, steps: int = 2,
             tolerance: float = 1e-8) -> np.ndarray:
    """Up to `steps` projected Fisher-scoring steps on every item; returns new items x 3.

    Items are processed in blocks of at most BLOCK_CELLS / nodes items, which bounds the
    work arrays (items x nodes) however many items there are."""
    keep = n.sum(axis=0) > NODE_MASS_FLOOR * max(float(n.sum()), 1e-300)
    r, n, nodes = r[:, keep], n[:, keep], nodes[keep]
    block = max(1, BLOCK_CELLS // max(nodes.size, 1))
    out = np.empty_like(params)
    for start in range(0, params.shape[0], block):
        items = slice(start, start + block)
        out[items] = _maximise_block(params[items], r[items], n[items], nodes, priors, bounds,
                                     steps, tolerance)
    return out


def _maximise_block(params, r, n, nodes, priors, bounds, steps, tolerance):
    lower, upper = bounds.lower(), bounds.upper()
    current = params.copy()
    value = objective(current, r, n, nodes, priors)
    for _ in range(steps):
        grad, info = score_and_information(current, r, n, nodes, priors)
        step = projected_step(current, grad, info, bounds)
        todo = np.flatnonzero(np.max(np.abs(step), axis=1) >= tolerance)
        if todo.size == 0:
            break
        for _ in range(HALVINGS):
            trial = np.clip(current[todo] + step[todo], lower, upper)
            trial_value = objective(trial, r[todo], n[todo], nodes, priors)
            # Accept ties within rounding, or converged items would halve for nothing.
            better = trial_value >= value[todo] - ROUNDING * np.abs(value[todo])
            current[todo[better]] = trial[better]
            value[todo[better]] = trial_value[better]
            todo = todo[~better]
            if todo.size == 0:
                break
            step[todo] *= 0.5
    return current
