"""`calibrate_3pl`: marginal maximum likelihood (or Bayes modal) estimation of the 3PL by EM.

Bock & Aitkin (1981): theta ~ N(0, 1) on a quadrature grid; each EM iteration is one E-step
(`estep.expected_counts`) and one M-step (`mstep.maximise`, all items at once). The sequence of
EM steps is accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3): from three points of
the EM path p0 -> p1 -> p2 it extrapolates

    r = p1 - p0,  v = p2 - 2 p1 + p0,  alpha = -|r| / |v| (at most -1),
    p' = p0 - 2 alpha r + alpha^2 v     (projected onto the bounds)

and continues from EM(p'), falling back towards plain EM whenever the penalised log-likelihood
would decrease. Every EM(.) evaluation counts as one iteration. Convergence (the brief): the
largest absolute change of any a, b or c in one EM iteration is below `convergence_threshold`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from irt_pipeline.engine.estep import expected_counts, posterior_moments
from irt_pipeline.engine.mstep import ACTIVE_MARGIN, BRIEF_BOUNDS, Bounds, maximise
from irt_pipeline.engine.priors import DEFAULT_PRIORS, Priors
from irt_pipeline.engine.quadrature import auto_node_count, node_count_for_sd, normal_grid
from irt_pipeline.engine.responses import ResponseData, prepare_responses
from irt_pipeline.engine.result import (
    STATUS_ALL_CORRECT,
    STATUS_ALL_INCORRECT,
    STATUS_HEYWOOD,
    STATUS_NO_RESPONSES,
    STATUS_OK,
    STATUS_SINGULAR,
    CalibrationResult,
)
from irt_pipeline.engine.standard_errors import (
    FULL_INFORMATION_MAX_ITEMS,
    SE_METHODS,
    StandardErrors,
    standard_errors,
)

Progress = Callable[[int, float, float], None]
# Refine the grid when the narrowest posterior asks for this many more nodes than we have.
REFINE_FACTOR = 1.15


def _validate_options(max_iterations, convergence_threshold, priors, n_quadrature, se_method) -> None:
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, (int, np.integer)):
        raise ValueError(f"max_iterations must be an integer in 1..500, got {max_iterations!r}")
    if not 1 <= max_iterations <= 500:
        raise ValueError(f"max_iterations must be in 1..500, got {max_iterations}")
    if not (isinstance(convergence_threshold, (int, float)) and 0 < convergence_threshold < 1):
        raise ValueError(f"convergence_threshold must be in (0, 1), got {convergence_threshold!r}")
    if priors is not None and not isinstance(priors, Priors):
        raise ValueError(f"priors must be a Priors instance or None, got {type(priors).__name__}")
    if n_quadrature is not None and not (isinstance(n_quadrature, int) and 11 <= n_quadrature <= 1001):
        raise ValueError(f"n_quadrature must be an integer in 11..1001 or None, got {n_quadrature!r}")
    if se_method not in SE_METHODS:
        raise ValueError(f"se_method must be one of {SE_METHODS}, got {se_method!r}")


def item_statuses(data: ResponseData) -> np.ndarray:
    """Per-item status: no responses, no variance (all correct / all incorrect), or ok."""
    status = np.full(data.n_items, STATUS_OK, dtype=object)
    status[data.correct_counts == data.response_counts] = STATUS_ALL_CORRECT
    status[data.correct_counts == 0] = STATUS_ALL_INCORRECT
    status[data.response_counts == 0] = STATUS_NO_RESPONSES
    return status


def final_statuses(status: np.ndarray, ses: StandardErrors, bounds: Bounds,
                   a: np.ndarray) -> np.ndarray:
    """The data statuses of `item_statuses`, then, for items that are otherwise "ok", a slope at
    its upper bound ("heywood") or a singular free information block ("singular_information")."""
    status = status.copy()
    ok = status == STATUS_OK
    status[ok & ses.singular] = STATUS_SINGULAR
    status[ok & ses.at_bound[:, 0] & (a >= bounds.a[1] - ACTIVE_MARGIN)] = STATUS_HEYWOOD
    return status


def start_values(data: ResponseData, priors: Priors | None, bounds: Bounds) -> np.ndarray:
    """Items x 3 start values: a = 1, c = the prior mode (else 0.15), b from the proportion
    correct corrected for guessing, using E[logistic(a (theta - b))] ~ logistic(-a b / k) with
    k = sqrt(1 + pi a^2 / 8) for theta ~ N(0, 1)."""
    if priors is not None and priors.c_beta is not None:
        alpha, beta = priors.c_beta
        c0 = (alpha - 1.0) / (alpha + beta - 2.0) if alpha + beta > 2 else 0.15
    else:
        c0 = 0.15
    c0 = float(np.clip(c0, bounds.c[0], bounds.c[1]))
    p = (data.correct_counts + 0.5) / (data.response_counts + 1.0)   # 0.5 for an unanswered item
    p_star = np.clip((p - c0) / (1.0 - c0), 0.02, 0.98)
    a0 = 1.0
    b0 = -np.log(p_star / (1.0 - p_star)) * np.sqrt(1.0 + np.pi * a0**2 / 8.0) / a0
    params = np.column_stack([np.full(data.n_items, a0), np.clip(b0, -4.0, 4.0), np.full(data.n_items, c0)])
    return np.clip(params, bounds.lower(), bounds.upper())


def _prior_total(params: np.ndarray, priors: Priors | None) -> float:
    if priors is None:
        return 0.0
    return float(priors.log_density(params[:, 0], params[:, 1], params[:, 2]).sum())


class _EMPath:
    """The EM map on the items that have responses, with its bookkeeping."""

    def __init__(self, data, nodes, weights, priors, bounds, estimable, progress):
        self.data, self.nodes, self.weights = data, nodes, weights
        self.priors, self.bounds, self.estimable = priors, bounds, estimable
        self.progress = progress
        self.iterations = 0
        self.ll_trace: list[float] = []
        self.change_trace: list[float] = []

    def step(self, params: np.ndarray):
        """(EM(params), penalised objective at params, max |EM(params) - params|)."""
        a, b, c = params.T
        counts = expected_counts(self.data, a, b, c, self.nodes, self.weights)
        updated = params.copy()
        idx = self.estimable
        updated[idx] = maximise(params[idx], counts.r[idx], counts.n[idx], self.nodes,
                                self.priors, self.bounds)
        change = float(np.max(np.abs(updated - params))) if params.size else 0.0
        self.iterations += 1
        self.ll_trace.append(counts.log_likelihood)
        self.change_trace.append(change)
        if self.progress is not None:
            self.progress(self.iterations, change, counts.log_likelihood)
        return updated, counts.log_likelihood + _prior_total(params[idx], self.priors), change


def _run_em(path: _EMPath, params: np.ndarray, max_iterations: int, tol: float, accelerate: bool):
    """Iterate until an EM step changes no parameter by `tol`; returns (params, converged)."""
    lower, upper = path.bounds.lower(), path.bounds.upper()
    while path.iterations < max_iterations:
        p1, _, change = path.step(params)
        if change < tol:
            return p1, True
        if not accelerate or path.iterations >= max_iterations:
            params = p1
            continue
        p2, obj1, change = path.step(p1)
        if change < tol:
            return p2, True
        r = p1 - params
        v = p2 - p1 - r
        norm_v = np.linalg.norm(v)
        alpha = min(-np.linalg.norm(r) / norm_v, -1.0) if norm_v > 0 else -1.0
        origin, params = params, p2
        while alpha < -1.0 and path.iterations < max_iterations:
            trial = np.clip(origin - 2.0 * alpha * r + alpha**2 * v, lower, upper)
            stabilised, obj_trial, _ = path.step(trial)
            if obj_trial >= obj1:
                params = stabilised
                break
            alpha = (alpha - 1.0) / 2.0 if alpha < -1.5 else -1.0
    return params, False


def calibrate_3pl(
    responses,
    max_iterations: int = 100,
    convergence_threshold: float = 0.001,
    priors: Priors | None = DEFAULT_PRIORS,
    *,
    n_quadrature: int | None = None,
    bounds: Bounds = BRIEF_BOUNDS,
    start: np.ndarray | None = None,
    accelerate: bool = True,
    progress: Progress | None = None,
    se_method: str = "block",
) -> CalibrationResult:
    """Fit the 3PL to `responses` by MML-EM (Bayes modal with `priors`, plain ML with None).

    responses: students x items; dense floats (1 correct, 0 incorrect, NaN not answered) or a
        scipy.sparse matrix in the signed encoding (+1 correct, -1 incorrect, absent missing).
    max_iterations: 1..500 EM iterations (E-step + M-step) in all.
    convergence_threshold: stop when no a, b or c changes by this much in one iteration.
    priors: `Priors(...)` for Bayes-modal estimation; the returned log_likelihood is the plain
        marginal log-likelihood whatever the priors.
    n_quadrature: number of equally spaced nodes on [-6, 6]; None chooses it from the data and
        refines it after convergence if any posterior is narrower than assumed (`quadrature`).
    bounds: box for (a, b, c); defaults to the brief's a in [0.2, 3], c in [0, 0.35], b in [-6, 6].
    start: items x 3 start values (a, b, c); default from proportions correct (`start_values`).
    accelerate: SQUAREM acceleration of the EM path (on by default).
    progress: called after every iteration with (iteration, max change, log-likelihood).
    se_method: "block" (default: each item's 3 x 3 observed information, cross-item terms left
        out) or "full" (the 3J x 3J observed information over all items by Louis's identity;
        at most FULL_INFORMATION_MAX_ITEMS items, else ValueError before fitting). See
        `standard_errors` for what is NaN and why.
    Raises ValueError naming the problem for invalid responses or options.

    `converged` reports the EM stopping rule only; items whose slope ran to the upper bound
    (Heywood cases) also stop moving and carry the status "heywood" (see CalibrationResult).
    """
    _validate_options(max_iterations, convergence_threshold, priors, n_quadrature, se_method)
    started = time.perf_counter()
    data = prepare_responses(responses)
    if se_method == "full" and data.n_items > FULL_INFORMATION_MAX_ITEMS:
        raise ValueError(
            f"se_method='full' needs the {3 * data.n_items} x {3 * data.n_items} information "
            f"matrix; it is offered up to {FULL_INFORMATION_MAX_ITEMS} items, this bank has "
            f"{data.n_items}: use se_method='block'")
    status = item_statuses(data)
    estimable = np.flatnonzero(status != STATUS_NO_RESPONSES)
    if start is None:
        params = start_values(data, priors, bounds)
    else:
        params = np.asarray(start, dtype=float).reshape(data.n_items, 3)
        if not np.isfinite(params).all():
            raise ValueError("start values must be finite")
        params = np.clip(params, bounds.lower(), bounds.upper())

    n_nodes = n_quadrature or auto_node_count(data.max_responses_per_student)
    nodes, weights = normal_grid(n_nodes)
    path = _EMPath(data, nodes, weights, priors, bounds, estimable, progress)
    while True:
        params, converged = _run_em(path, params, max_iterations, convergence_threshold, accelerate)
        if n_quadrature is not None:
            break
        _, sds = posterior_moments(data, *params.T, nodes, weights)
        needed = node_count_for_sd(float(sds[data.student_counts > 0].min(initial=1.0)))
        if needed <= REFINE_FACTOR * n_nodes or path.iterations >= max_iterations:
            break
        n_nodes = needed
        nodes, weights = normal_grid(n_nodes)
        path.nodes, path.weights = nodes, weights

    a, b, c = params.T.copy()
    fitted = time.perf_counter()
    errors = standard_errors(data, params, nodes, weights, priors, bounds, se_method,
                             estimable=status != STATUS_NO_RESPONSES)
    ses = errors.se
    return CalibrationResult(
        a=a, b=b, c=c,
        a_se=ses[:, 0].copy(), b_se=ses[:, 1].copy(), c_se=ses[:, 2].copy(),
        iterations=path.iterations,
        converged=bool(converged),
        log_likelihood=errors.log_likelihood,
        item_status=final_statuses(status, errors, bounds, a).astype(str),
        response_counts=data.response_counts.copy(),
        log_likelihood_trace=np.array(path.ll_trace),
        max_change_trace=np.array(path.change_trace),
        nodes=nodes,
        weights=weights,
        fit_seconds=fitted - started,
        se_seconds=time.perf_counter() - fitted,
        at_bound=errors.at_bound,
        se_method=errors.method,
    )
