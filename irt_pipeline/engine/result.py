"""Frozen result types returned by the engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-item status codes reported in CalibrationResult.item_status.
STATUS_OK = "ok"                    # estimated from data with variance
STATUS_NO_RESPONSES = "no_responses"    # nobody answered: parameters are the prior/start values
STATUS_ALL_CORRECT = "all_correct"      # no variance: estimates pinned towards the easy end
STATUS_ALL_INCORRECT = "all_incorrect"  # no variance: estimates pinned towards the hard end


@dataclass(frozen=True)
class CalibrationResult:
    """3PL item estimates, one entry per item (column of the response matrix).

    P(correct | theta) = c + (1 - c) / (1 + exp(-a (theta - b))), theta ~ N(0, 1).
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    a_se: np.ndarray
    b_se: np.ndarray
    c_se: np.ndarray
    iterations: int
    converged: bool
    log_likelihood: float           # plain marginal log-likelihood at (a, b, c), priors excluded
    item_status: np.ndarray         # str per item, one of the STATUS_* codes
    response_counts: np.ndarray     # observed responses per item
    log_likelihood_trace: np.ndarray  # marginal log-likelihood after each EM iteration
    max_change_trace: np.ndarray      # largest |change| of any a, b, c at each iteration
    nodes: np.ndarray               # quadrature nodes used (theta values)
    weights: np.ndarray             # quadrature weights (sum to 1)
    fit_seconds: float = 0.0        # wall time of the EM iterations
    se_seconds: float = 0.0         # wall time of the standard errors (and the final E-step)

    @property
    def n_items(self) -> int:
        return int(self.a.shape[0])


@dataclass(frozen=True)
class ItemFit:
    """Rasch-style mean-square fit statistics per item (Wright & Masters 1982)."""

    infit_mnsq: np.ndarray
    outfit_mnsq: np.ndarray
    response_counts: np.ndarray

    def flagged(self, lower: float = 0.7, upper: float = 1.3) -> np.ndarray:
        """True where infit or outfit lies outside [lower, upper]."""
        from irt_pipeline.engine.fit import flag_misfit

        return flag_misfit(self.infit_mnsq, self.outfit_mnsq, lower=lower, upper=upper)
