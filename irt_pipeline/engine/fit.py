"""Item fit: predictive infit and outfit mean squares and the grouped table behind Q1.

Residuals need an expected score for each observed response x_ij. Three constructions:

* posterior-expected (E_post[z^2] over student i's full posterior; the engine's first version):
  at the maximum of the marginal likelihood its deviation from 1 is a combination of the
  E-step residuals r - nP, which the score equations make vanish; it sits at 1.00 for any data
  while the item's parameters are free (issue 10), so it cannot flag anything.
* plug-in (P_j(EAP_i), R mirt's `itemfit(fit_stats = "infit")`, Rasch software): moves with
  misfit, but x_ij is used twice (to place the student, then to judge the item), which shrinks
  the residuals on short or sparse forms: a model-true 5-item test gives 0.5-0.9.
  `plugin_item_fit` computes it, for comparison with R mirt.
* predictive (the default): the expected score of x_ij given student i's OTHER responses.
  Student i's posterior without item j (the "cavity" posterior) is post_iq / f_j(x_ij, t_q),
  renormalised, with f_j(1, t) = P_j(t), f_j(0, t) = 1 - P_j(t). With D_ij = E_post[1 / f],

      P~_ij     = E_post[P_j / f] / D_ij        (= 1 / E_post[1 / P_j] when x_ij = 1)
      theta~_ij = E_post[t / f] / D_ij          (the cavity EAP, used for grouping)

  Under the model x_ij | x_i,-j ~ Bernoulli(P~_ij) exactly, so z~^2 = (x - P~)^2 / (P~ Q~)
  has expectation 1 whatever the test length or the missingness (Gelman, Meng & Stern 1996
  on posterior predictive checks; the same cross-validation idea as Stone's 2000 posterior
  pseudo-counts without using x_ij itself). It is the plug-in statistic's bias correction done
  analytically rather than by a parametric bootstrap:

      outfit_j = mean_i z~_ij^2,    infit_j = sum_i (x_ij - P~_ij)^2 / sum_i P~_ij Q~_ij

  (Wright & Masters 1982, ch. 5, with P~ for P). The README's "Item quality" section gives the
  simulation that justifies the choice (false alarms on model-true banks of every shape,
  detection of planted misfits).

The same pass accumulates, per item and per fine bin of theta~ (FINE_BINS bins over the grid),
the counts N, observed correct O = sum x, expected E = sum P~, variance V = sum P~ Q~ and
sum theta~; `quality.grouped_fit` merges the bins into ability groups for Yen's (1981) Q1 and
the empirical item characteristic curves. Everything is one pass over the observed cells,
block by block (`cells.cell_blocks`), vectorised over items and nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt_pipeline.engine.cells import cell_blocks
from irt_pipeline.engine.estep import posterior_moments
from irt_pipeline.engine.model import probability
from irt_pipeline.engine.responses import ResponseData, prepare_responses
from irt_pipeline.engine.result import CalibrationResult

FLAG_LOWER = 0.7
FLAG_UPPER = 1.3
# Fine bins of the cavity ability per item; ability groups are unions of consecutive bins.
FINE_BINS = 120
# Cumulated per item and bin: responses, correct, expected correct, variance, sum of theta~.
BIN_FIELDS = ("n", "observed", "expected", "variance", "theta")


@dataclass(frozen=True)
class ItemFit:
    """Mean-square fit per item (NaN for an item without responses) and the binned table."""

    infit_mnsq: np.ndarray
    outfit_mnsq: np.ndarray
    response_counts: np.ndarray
    bins: np.ndarray | None = None    # items x BIN_FIELDS x FINE_BINS (None for plug-in fit)

    def flagged(self, lower: float = FLAG_LOWER, upper: float = FLAG_UPPER) -> np.ndarray:
        """True where infit or outfit lies outside [lower, upper]."""
        return flag_misfit(self.infit_mnsq, self.outfit_mnsq, lower=lower, upper=upper)


def flag_misfit(infit_mnsq, outfit_mnsq, lower: float = FLAG_LOWER, upper: float = FLAG_UPPER) -> np.ndarray:
    """True where infit or outfit lies outside [lower, upper] (NaN is never flagged)."""
    infit, outfit = np.asarray(infit_mnsq, float), np.asarray(outfit_mnsq, float)
    with np.errstate(invalid="ignore"):
        return (infit < lower) | (infit > upper) | (outfit < lower) | (outfit > upper)


def _cavity_tables(params: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(x = 1, x = 0) x (1 / f, P / f, t / f) x items x nodes, f = P or 1 - P."""
    p = probability(params[:, :1], params[:, 1:2], params[:, 2:3], nodes)
    q = 1.0 - p
    t = np.broadcast_to(nodes, p.shape)
    return np.stack([np.stack([1.0 / p, np.ones_like(p), t / p]),
                     np.stack([1.0 / q, p / q, t / q])])


def _checked(responses, result: CalibrationResult) -> ResponseData:
    data = responses if isinstance(responses, ResponseData) else prepare_responses(responses)
    if data.n_items != result.n_items:
        raise ValueError(f"responses has {data.n_items} items but the result has {result.n_items}")
    return data


def _mean_squares(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(infit, outfit) from per-item sums of z^2, (x - P)^2 and P (1 - P)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        outfit = np.where(counts > 0, sums[0] / np.maximum(counts, 1), np.nan)
        infit = np.where(counts > 0, sums[1] / sums[2], np.nan)
    return infit, outfit


def item_fit(responses, result: CalibrationResult) -> ItemFit:
    """Predictive infit and outfit MNSQ of every item, and the binned table (module docstring)."""
    data = _checked(responses, result)
    params = np.column_stack([result.a, result.b, result.c])
    edges = np.linspace(result.nodes[0], result.nodes[-1], FINE_BINS + 1)[1:-1]
    sums = np.zeros((3, data.n_items))
    bins = np.zeros((data.n_items, len(BIN_FIELDS), FINE_BINS))
    for block in cell_blocks(data, params, result.nodes, result.weights, _cavity_tables, 3):
        norm, expected_part, theta_part = block.means
        if block.observed is not None:   # dense block: unobserved cells hold zeros
            norm = np.where(block.observed > 0, norm, 1.0)
        expected = np.clip(expected_part / norm, 1e-10, 1 - 1e-10)
        theta = theta_part / norm
        variance = expected * (1.0 - expected)
        squared = (block.hit - expected) ** 2
        if block.observed is not None:   # dense block: zero the unobserved cells
            variance, squared = variance * block.observed, squared * block.observed
        items = block.items
        z2 = np.where(variance > 0, squared / np.where(variance > 0, variance, 1.0), 0.0)
        sums[0, items] += block.per_item_sum(z2)
        sums[1, items] += block.per_item_sum(squared)
        sums[2, items] += block.per_item_sum(variance)
        columns = block.cell_columns() + items.start
        key = columns * FINE_BINS + np.searchsorted(edges, block.cell_values(theta))
        for k, values in enumerate((None, block.hit, expected, variance, theta)):
            weights = None if values is None else block.cell_values(values)
            add = np.bincount(key, weights, minlength=data.n_items * FINE_BINS)
            bins[:, k, :] += add.reshape(data.n_items, FINE_BINS)
    counts = data.response_counts
    infit, outfit = _mean_squares(sums, counts)
    return ItemFit(infit_mnsq=infit, outfit_mnsq=outfit, response_counts=counts.copy(), bins=bins)


def plugin_item_fit(responses, result: CalibrationResult, theta: np.ndarray | None = None) -> ItemFit:
    """Infit and outfit with each student's ability plugged in (R mirt's `itemfit` infit/outfit):
    P_ij = P_j(theta_i), theta the EAP on the result's grid unless given. Biased low on short
    forms (module docstring); kept for comparison, not used for flags."""
    data = _checked(responses, result)
    if theta is None:
        theta, _ = posterior_moments(data, result.a, result.b, result.c, result.nodes, result.weights)
    sums = np.zeros((3, data.n_items))
    start = 0
    for chunk in data.chunks:
        rows = slice(start, start + chunk.n_students)
        start = rows.stop
        r, c, hit = chunk.observed_cells()
        p = probability(result.a[c], result.b[c], result.c[c], theta[rows][r])
        variance = p * (1.0 - p)
        squared = (hit - p) ** 2
        for k, values in enumerate((squared / variance, squared, variance)):
            sums[k] += np.bincount(c, values, minlength=data.n_items)
    infit, outfit = _mean_squares(sums, data.response_counts)
    return ItemFit(infit_mnsq=infit, outfit_mnsq=outfit, response_counts=data.response_counts.copy())
