"""Frozen result types returned by the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Per-item status codes reported in CalibrationResult.item_status. One code per item; where
# several apply, the first in this list wins.
STATUS_NO_RESPONSES = "no_responses"    # nobody answered: parameters are the prior/start values,
                                        # all SEs NaN
STATUS_ALL_CORRECT = "all_correct"      # no variance: estimates pinned towards the easy end
STATUS_ALL_INCORRECT = "all_incorrect"  # no variance: estimates pinned towards the hard end
STATUS_HEYWOOD = "heywood"              # the slope ran to its upper bound (a Heywood case): a is
                                        # a boundary value, a_se NaN, b and c given a
STATUS_SINGULAR = "singular_information"  # the free block of the observed information is not
                                          # positive definite: all SEs NaN, the data do not
                                          # identify the item's parameters
STATUS_OK = "ok"                    # estimated from data with variance, finite free SEs


@dataclass(frozen=True)
class CalibrationResult:
    """3PL item estimates, one entry per item (column of the response matrix).

    P(correct | theta) = c + (1 - c) / (1 + exp(-a (theta - b))), theta ~ N(0, 1).

    Standard errors (`standard_errors`): from the observed information (Louis 1982), per item
    block (se_method "block") or over all items ("full"). A SE is NaN (not a number: NULL in
    the database) where the parameter is at a bound of the box (`at_bound`), for every
    parameter of an item whose free information block is singular (status
    "singular_information"), and for items nobody answered. Finite SEs are > 0.

    `converged` means the EM iterations stopped because no a, b or c changed by more than the
    threshold in one iteration. It does not mean every item has an interior maximum: a slope
    that ran to its upper bound (a Heywood case) stops changing there too; such items carry
    the status "heywood" (and at_bound[:, 0]), so read `item_status` as well.
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
    # items x 3 bool (a, b, c): the estimate sits at its bound (within mstep.ACTIVE_MARGIN); its
    # SE is NaN. None in the constructor means no parameter at a bound.
    at_bound: np.ndarray | None = field(default=None)
    se_method: str = "block"        # how the SEs were computed: "block" or "full"

    def __post_init__(self) -> None:
        if self.at_bound is None:
            object.__setattr__(self, "at_bound", np.zeros((np.shape(self.a)[0], 3), dtype=bool))

    @property
    def n_items(self) -> int:
        return int(self.a.shape[0])

