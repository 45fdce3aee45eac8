"""Item quality beyond mean squares: item-rest correlation, grouped model fit (Q1), flag reasons.

Mean squares cannot see what the 3PL absorbs: a miskeyed or random item gets a flat curve at
its proportion correct, and a flat curve predicts its own responses as well as any (fit.py).
Two complements catch them, and `assess_items` turns all statistics into reasons:

Item-rest correlation (classical, for sparse forms). With S_i and n_i student i's number correct
and number answered, the rest score of response x_ij is r_ij = (S_i - x_ij) / (n_i - 1), the
proportion correct on the other items i answered; the statistic is Pearson's correlation of
x_ij and r_ij over the students who answered j and something else. With u_i = 1 / (n_i - 1),
v_i = S_i u_i, C the correct indicators and M the observed ones, r_ij = v_i - x_ij u_i and every
sum it needs is a matrix-vector product: sum r = M'v - C'u, sum x r = C'(v - u),
sum r^2 = M'v^2 - 2 C'(u v) + C'u^2. Negative: the abler students fail the item (a miskey);
near 0: the item does not discriminate.

Grouped fit (Yen 1981 Q1, with Stone's 2000 concern for estimated abilities answered by
cross-validation). Students who answered j are split into G groups of equal size by their
cavity EAP theta~_ij (their ability estimated without item j, fit.py). Within a group,
O = sum x_ij and E = sum P~_ij, with P~ the probability of a correct answer given the student's
other responses; under the model the x_ij are independent Bernoulli(P~_ij) given the other
responses, so Z_g = (O_g - E_g) / sqrt(V_g), V_g = sum P~ (1 - P~), is close to N(0, 1) and

    Q1_j = sum_g Z_g^2  ~  chi2(G - Q1_DF_REDUCTION)

G counts the groups that received students (students with the same other responses share
a cavity ability and are never split). With known item parameters the reduction would be 0;
estimating a, b, c from the same responses makes the groups agree better than chance. The
reduction was fitted by simulation: the mean of Q1 under the model with 10 groups was 7.4-8.0
on sparse banks of the product's shape (40-140 items per student) and on complete 30-item
tests, so 2.5; its p-values are then close to uniform (test_quality.py, README "Item
quality"). Benjamini & Hochberg (1995) adjust the p-values across the bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from irt_pipeline.engine.fit import ItemFit
from irt_pipeline.engine.responses import ResponseData, prepare_responses
from irt_pipeline.engine.result import STATUS_SINGULAR

GROUPS = 10
MIN_GROUP_SIZE = 20          # fewer groups for items with few responses; none below 4 groups
Q1_DF_REDUCTION = 2.5      # fitted by simulation (module docstring)

REASON_INFIT = "infit"
REASON_OUTFIT = "outfit"
REASON_MISKEY = "possible_miskey"
REASON_LOW_DISCRIMINATION = "low_discrimination"
REASON_MODEL_MISFIT = "model_misfit"
REASON_AT_BOUND = "at_bound"
REASON_SE_UNAVAILABLE = "se_unavailable"
REASONS = (REASON_INFIT, REASON_OUTFIT, REASON_MISKEY, REASON_LOW_DISCRIMINATION,
           REASON_MODEL_MISFIT, REASON_AT_BOUND, REASON_SE_UNAVAILABLE)


@dataclass(frozen=True)
class QualityThresholds:
    """When an item is flagged, and for which reason (README, "Item quality")."""

    mnsq_lower: float = 0.7             # infit / outfit below: too predictable (Guttman-like)
    mnsq_upper: float = 1.3             # infit / outfit above: noisy
    miskey_item_rest: float = -0.05     # item-rest correlation below, significantly below 0
    low_discrimination_item_rest: float = 0.10  # item-rest correlation below (and not a miskey)
    misfit_fdr: float = 0.01            # Benjamini-Hochberg level of the Q1 test across the bank
    miskey_z: float = 2.326             # one-sided 1% for "significantly below 0" (Fisher z)


@dataclass(frozen=True)
class GroupedFit:
    """Q1 per item and the ability groups behind it (also drawn as empirical ICCs)."""

    statistic: np.ndarray        # Q1 (NaN: too few responses for 4 groups)
    df: np.ndarray               # degrees of freedom
    p_value: np.ndarray
    p_adjusted: np.ndarray       # Benjamini-Hochberg over the items with a p-value
    group_n: np.ndarray          # items x GROUPS (0 for unused groups)
    group_observed: np.ndarray   # items x GROUPS, correct answers
    group_expected: np.ndarray   # items x GROUPS, expected correct answers
    group_theta: np.ndarray      # items x GROUPS, mean cavity ability (NaN if empty)


@dataclass(frozen=True)
class ItemQuality:
    """Every statistic that decides a flag, and the reasons per item."""

    infit_mnsq: np.ndarray
    outfit_mnsq: np.ndarray
    item_rest: np.ndarray
    grouped: GroupedFit
    reasons: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    @property
    def is_flagged(self) -> np.ndarray:
        return np.array([bool(r) for r in self.reasons], dtype=bool)


def _transpose_product(matrix, vector: np.ndarray) -> np.ndarray:
    return np.asarray(matrix.T @ vector).ravel()


def item_rest_correlation(data: ResponseData) -> np.ndarray:
    """Pearson correlation of each item with the rest score (module docstring); NaN when the
    item or the rest score has no variance among its students."""
    sums = np.zeros((6, data.n_items))  # n, sum x, sum r, sum x r, sum r^2, (sum x^2 = sum x)
    for chunk in data.chunks:
        correct = chunk.correct
        observed = chunk.correct + chunk.wrong if chunk.wrong is not None else None
        n_i = (np.asarray(observed.sum(axis=1)).ravel() if observed is not None
               else np.full(chunk.n_students, float(data.n_items)))
        score = np.asarray(correct.sum(axis=1)).ravel()
        several = n_i > 1
        u = np.where(several, 1.0 / np.maximum(n_i - 1.0, 1.0), 0.0)
        v = score * u
        k = several.astype(float)

        def answered(vector):
            if observed is None:
                return np.full(data.n_items, vector.sum())
            return _transpose_product(observed, vector)

        c_u = _transpose_product(correct, u)
        sums[0] += answered(k)
        sums[1] += _transpose_product(correct, k)
        sums[2] += answered(v) - c_u
        sums[3] += _transpose_product(correct, v - u)
        sums[4] += answered(v * v) - 2.0 * _transpose_product(correct, u * v) + _transpose_product(correct, u * u)
    n, sx, sr, sxr, srr = sums[:5]
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxr - sx * sr
        var_x = n * sx - sx * sx
        var_r = n * srr - sr * sr
        corr = cov / np.sqrt(var_x * var_r)
    return np.where((var_x > 1e-12) & (var_r > 1e-12), corr, np.nan)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (step-up, monotone); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return adjusted
    order = valid[np.argsort(p[valid])]
    m = order.size
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


def grouped_fit(fit: ItemFit, groups: int = GROUPS) -> GroupedFit:
    """Yen's Q1 on groups of equal size by cavity ability, from the fine bins of `item_fit`."""
    if fit.bins is None:
        raise ValueError("grouped_fit needs the binned table of fit.item_fit")
    bins = fit.bins
    n_items = bins.shape[0]
    counts = bins[:, 0, :]
    total = counts.sum(axis=1)
    n_groups = np.minimum(groups, total // MIN_GROUP_SIZE).astype(int)
    cumulative = np.cumsum(counts, axis=1) - counts / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total[:, None] > 0, cumulative / total[:, None], 0.0)
    group_of_bin = np.minimum((share * np.maximum(n_groups, 1)[:, None]).astype(int), groups - 1)
    key = (np.arange(n_items)[:, None] * groups + group_of_bin).ravel()
    sums = np.stack([np.bincount(key, bins[:, k, :].ravel(), minlength=n_items * groups)
                     .reshape(n_items, groups) for k in range(5)])
    n, observed, expected, variance, theta = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        z2 = np.where(variance > 0, (observed - expected) ** 2 / variance, 0.0)
        group_theta = np.where(n > 0, theta / n, np.nan)
    used = (n > 0).sum(axis=1)   # groups that received students (ties can leave some empty)
    testable = used >= 4
    df = np.where(testable, used - Q1_DF_REDUCTION, np.nan)
    statistic = np.where(testable, z2.sum(axis=1), np.nan)
    p_value = np.where(testable, stats.chi2.sf(statistic, np.where(testable, df, 1.0)), np.nan)
    return GroupedFit(statistic=statistic, df=df, p_value=p_value, p_adjusted=benjamini_hochberg(p_value),
                      group_n=n, group_observed=observed, group_expected=expected, group_theta=group_theta)


def _below(values: np.ndarray, limit: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(values, float) < limit


def flag_reasons(
    fit: ItemFit,
    item_rest: np.ndarray,
    grouped: GroupedFit,
    response_counts: np.ndarray,
    thresholds: QualityThresholds = QualityThresholds(),
    at_bound: np.ndarray | None = None,
    se_unavailable: np.ndarray | None = None,
) -> tuple[tuple[str, ...], ...]:
    """The reasons (in REASONS order) for which each item should not be used."""
    t = thresholds
    with np.errstate(invalid="ignore", divide="ignore"):
        fisher_z = np.arctanh(np.clip(item_rest, -0.999999, 0.999999)) * np.sqrt(np.maximum(response_counts - 3, 1))
    miskey = _below(item_rest, t.miskey_item_rest) & _below(fisher_z, -t.miskey_z)
    n_items = fit.infit_mnsq.shape[0]
    none = np.zeros(n_items, bool)
    columns = {
        REASON_INFIT: _below(fit.infit_mnsq, t.mnsq_lower) | _below(-fit.infit_mnsq, -t.mnsq_upper),
        REASON_OUTFIT: _below(fit.outfit_mnsq, t.mnsq_lower) | _below(-fit.outfit_mnsq, -t.mnsq_upper),
        REASON_MISKEY: miskey,
        REASON_LOW_DISCRIMINATION: _below(item_rest, t.low_discrimination_item_rest) & ~miskey,
        REASON_MODEL_MISFIT: _below(grouped.p_adjusted, t.misfit_fdr),
        REASON_AT_BOUND: none if at_bound is None else np.asarray(at_bound, bool).reshape(n_items, -1).any(axis=1),
        REASON_SE_UNAVAILABLE: none if se_unavailable is None else np.asarray(se_unavailable, bool),
    }
    table = np.column_stack([columns[r] for r in REASONS])
    return tuple(tuple(r for r, on in zip(REASONS, row) if on) for row in table)


def se_unavailable(result) -> np.ndarray:
    """True for items whose information is singular: no standard error at all."""
    return np.asarray(result.item_status) == STATUS_SINGULAR


def reason_counts(reasons: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    """Flagged items per reason (an item with two reasons counts under both), in REASONS order."""
    return {r: n for r in REASONS if (n := sum(r in item for item in reasons))}


def assess_items(responses, fit: ItemFit, thresholds: QualityThresholds = QualityThresholds(),
                 at_bound: np.ndarray | None = None, se_unavailable: np.ndarray | None = None) -> ItemQuality:
    """Item-rest correlations, Q1 and the flag reasons of every item of `responses` under the
    predictive mean squares `fit` (from fit.item_fit on the same responses)."""
    data = responses if isinstance(responses, ResponseData) else prepare_responses(responses)
    if data.n_items != fit.infit_mnsq.shape[0]:
        raise ValueError(f"responses has {data.n_items} items but the fit has {fit.infit_mnsq.shape[0]}")
    item_rest = item_rest_correlation(data)
    grouped = grouped_fit(fit)
    reasons = flag_reasons(fit, item_rest, grouped, data.response_counts, thresholds, at_bound, se_unavailable)
    return ItemQuality(infit_mnsq=fit.infit_mnsq, outfit_mnsq=fit.outfit_mnsq, item_rest=item_rest,
                       grouped=grouped, reasons=reasons)
