"""Item fit: infit and outfit mean squares (Wright & Masters 1982, ch. 5).

Residuals are taken at each student's EAP estimate of theta (the posterior mean over the
quadrature grid of the calibration): E_ij = P_j(EAP_i), W_ij = E_ij (1 - E_ij), over the
observed responses only,

    outfit_j = mean_i (x_ij - E_ij)^2 / W_ij           (unweighted: sensitive to outliers)
    infit_j  = sum_i (x_ij - E_ij)^2 / sum_i W_ij      (information-weighted)

Both are near 1 when the model holds; the brief flags an item when either lies outside
[0.7, 1.3]. An item without responses has no fit: both are NaN and it is not flagged.
"""

from __future__ import annotations

import numpy as np

from irt_pipeline.engine.estep import posterior_moments
from irt_pipeline.engine.model import probability
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline.engine.result import CalibrationResult, ItemFit

FLAG_LOWER = 0.7
FLAG_UPPER = 1.3


def flag_misfit(infit_mnsq, outfit_mnsq, lower: float = FLAG_LOWER, upper: float = FLAG_UPPER) -> np.ndarray:
    """True where infit or outfit lies outside [lower, upper] (NaN is never flagged)."""
    infit, outfit = np.asarray(infit_mnsq, float), np.asarray(outfit_mnsq, float)
    with np.errstate(invalid="ignore"):
        return (infit < lower) | (infit > upper) | (outfit < lower) | (outfit > upper)


def item_fit(responses, result: CalibrationResult) -> ItemFit:
    """Infit and outfit MNSQ of every item of `responses` under the fitted `result`."""
    data = prepare_responses(responses)
    if data.n_items != result.n_items:
        raise ValueError(f"responses has {data.n_items} items but the result has {result.n_items}")
    eap, _ = posterior_moments(data, result.a, result.b, result.c, result.nodes, result.weights)
    sq_resid = np.zeros(data.n_items)
    variance = np.zeros(data.n_items)
    std_sq = np.zeros(data.n_items)
    offset = 0
    for chunk in data.chunks:
        rows, cols, hit = chunk.observed_cells()
        expected = probability(result.a[cols], result.b[cols], result.c[cols], eap[offset + rows])
        var = expected * (1.0 - expected)
        sq = (hit - expected) ** 2
        sq_resid += np.bincount(cols, sq, minlength=data.n_items)
        variance += np.bincount(cols, var, minlength=data.n_items)
        std_sq += np.bincount(cols, sq / var, minlength=data.n_items)
        offset += chunk.n_students
    counts = data.response_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        infit = np.where(counts > 0, sq_resid / variance, np.nan)
        outfit = np.where(counts > 0, std_sq / np.maximum(counts, 1), np.nan)
    return ItemFit(infit_mnsq=infit, outfit_mnsq=outfit, response_counts=counts.copy())
