"""Linking a calibration to the bank scale: Stocking-Lord with a robust anchor-drift screen.

Scale indeterminacy of the 3PL: for theta_bank = A theta_run + B the item response function is
unchanged with

    a_bank = a_run / A,   b_bank = A b_run + B,   c_bank = c_run                      (1)

(Kolen & Brennan, *Test Equating, Scaling, and Linking*, 3rd ed. 2014, ch. 6). A run estimated
with theta ~ N(0, 1) on its own students is put on the bank scale by A, B found from the
anchors: items of the run that already have a current bank value.

Stocking-Lord criterion (Stocking & Lord 1983), with the run's own population as the weight
(Kolen & Brennan 2014, sec. 6.5: the "new group" weighting). On the run's quadrature grid
(t_q, w_q), theta ~ N(0, 1) on the run scale,

    F(A, B) = sum_q w_q [ sum_{j in anchors} P_j(A t_q + B; bank) - sum_{j in anchors} P_j(t_q; run) ]^2

because by (1) the transformed run curve at the bank point A t + B is the run curve at t. F is
a smooth two-parameter least-squares problem, solved by scipy's trust-region least squares
with the analytic Jacobian (dP/dtheta = (1 - c) a psi (1 - psi)) from the mean/sigma start
A0 = sd(b_bank) / sd(b_run), B0 = mean(b_bank) - A0 mean(b_run). Noise-free parameters are
linked back to their A, B to within 1e-8.

Anchor drift: Huynh & Meyer's (2010) robust z, applied to each anchor's displacement in logits
as this run's students see it. For every anchor candidate j the displacement delta_j is the
shift of the item's bank difficulty that gives the run's population (the nodes A t_q + B on the
bank scale, weights w_q) the same expected proportion correct as the item's new, linked
parameters:

    sum_q w_q P_j(A t_q + B; a_bank, b_bank + delta_j, c_bank)
        = sum_q w_q P_j(A t_q + B; a_run / A, A b_run + B, c_run)                       (2)

(one root per item: the left side decreases in delta_j; `irf_displacement`). For an item whose
only change is its b, delta_j is exactly that change (linked b - bank b); when a and c move too,
delta_j is the location change of the whole item response function where the students are, in
the spirit of Haebara's (1980) item-level comparison of characteristic curves over the
population and of the standardisation approach to differential item performance (Dorans &
Kulick 1986; model-based: Wainer 1993). Then z_j = (delta_j - median delta) / (0.74 IQR(delta)),
and an anchor with |z_j| > 2.7 and |delta_j| > 0.25 logits has drifted: it is dropped from the
anchor set, the link is recomputed and the screen repeated until the drifted set no longer
changes (a fixed point; if the screen cycles between sets, every anchor flagged on the cycle is
dropped and the link recomputed once more). Drifted items keep their new, linked estimates.

Why delta and not the raw b difference (d_j = linked b - bank b, still reported as `b_drift`),
and why a floor of 0.25 rather than the issue's 0.3: measured on the two-cohort study of issue 9
(irt_pipeline_tests/engine/two_cohorts.py, benchmarks/bench_linking.py: 200 items, cohort 1 at
N(0, 1) on items 1-150, cohort 2 at N(0.7, 1) on items 51-200, 6 random shared items 1 logit
easier for cohort 2, run 2 calibrated on all attempts). A recalibration on the accumulated
attempts sees a drifted item as a blend of the two cohorts, and the blend moves a and c as well
as b: d shows about half of the 1 logit for a mid-range item, less for an easy one (cohort 2
answers it correctly either way). And b is the worst-determined part of a low-a or far-off item:
d of a steady item with a = 0.6 or b = 2.8 is often 0.3-0.5 logits of noise while its curve over
the students barely moves. With z > 2.7 and the floor at 0.3, over 30 seeds with 1,500 students
per cohort, d flagged 64% of the drifted anchors and 2.2% of the steady ones (6.4% in one seed);
delta flagged 77% and 0.25% (the issue asks for >= 80% and <= 3%). With the floor at 0.25, delta
flags 86% and 0.5%; with 2,000 per cohort (20 seeds) 90% and 0.2% (0.3: 84%, 0.16%); with a
small first cohort (1,000) and a large second (2,500; 8 seeds) 98% and 2.1% (0.3: 94%, 1.2%).
A flag costs one anchor out of the link and a line in the report; a missed drift biases B by
(its drift) / (number of anchors).

Standard errors move with (1): a_se / A, A b_se, c_se. The uncertainty of A, B themselves is
not added (it is common to every item of the run and small next to the item SEs once there
are tens of anchors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from irt_pipeline.engine.model import logistic_part, probability
from irt_pipeline.engine.quadrature import normal_grid
from irt_pipeline.engine.result import CalibrationResult

MIN_ANCHORS = 5            # fewer anchors than this (before or after the screen): no link
MAX_DROPPED_SHARE = 0.5    # the screen may drop at most this share of the candidates
DRIFT_Z = 2.7              # Huynh & Meyer (2010) robust z cut-off
DRIFT_FLOOR = 0.25         # ... and a practical floor in logits (module docstring)
MAX_SCREEN_ROUNDS = 20
IQR_TO_SD = 0.74           # 1 / 1.349: IQR of a normal distribution in standard deviations
A_RANGE = (0.05, 20.0)     # search box for A


class LinkingError(ValueError):
    """The run cannot be linked (too few anchors); the message names the count."""


@dataclass(frozen=True)
class ItemSet:
    """a, b, c of a set of items (arrays of equal length)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    @classmethod
    def of(cls, a, b, c) -> "ItemSet":
        return cls(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))

    def subset(self, mask: np.ndarray) -> "ItemSet":
        return ItemSet(self.a[mask], self.b[mask], self.c[mask])

    def __len__(self) -> int:
        return int(self.a.shape[0])


@dataclass(frozen=True)
class Link:
    """theta_bank = A theta_run + B, and how the anchors behaved.

    Arrays are per anchor candidate (the run's items with a bank value), in the caller's order.
    """

    A: float
    B: float
    used: np.ndarray       # bool: anchor kept in the final link
    drifted: np.ndarray    # bool: dropped by the screen (the complement of `used`)
    b_drift: np.ndarray    # linked b minus the bank b
    robust_z: np.ndarray   # Huynh-Meyer z of `displacement` (the screened statistic)
    rounds: int            # links computed (1 + screen rounds that changed the set)
    criterion: float       # Stocking-Lord F at (A, B) over the used anchors
    displacement: np.ndarray = dataclasses.field(default=None)  # delta of (2), logits

    @property
    def n_used(self) -> int:
        return int(self.used.sum())

    @property
    def n_drifted(self) -> int:
        return int(self.drifted.sum())


def mean_sigma(run_b: np.ndarray, bank_b: np.ndarray) -> tuple[float, float]:
    """Mean/sigma constants (Marco 1977): A = sd(b_bank) / sd(b_run), B = mean(b_bank) - A mean(b_run)."""
    sd_run, sd_bank = float(np.std(run_b)), float(np.std(bank_b))
    A = sd_bank / sd_run if sd_run > 1e-8 and sd_bank > 1e-8 else 1.0
    A = float(np.clip(A, *A_RANGE))
    return A, float(np.mean(bank_b) - A * np.mean(run_b))


def _default_grid(nodes, weights):
    if nodes is None:
        return normal_grid(41)
    return np.asarray(nodes, float), np.asarray(weights, float)


def stocking_lord(run: ItemSet, bank: ItemSet, nodes=None, weights=None) -> tuple[float, float, float]:
    """(A, B, F) minimising the Stocking-Lord criterion F over the given anchors (module docstring).

    nodes, weights: the run-scale grid (default: 41 nodes of N(0, 1) on [-6, 6])."""
    if len(run) != len(bank) or len(run) == 0:
        raise ValueError("stocking_lord needs the same, non-empty set of anchors on both scales")
    nodes, weights = _default_grid(nodes, weights)
    sqrt_w = np.sqrt(weights)
    target = probability(run.a[:, None], run.b[:, None], run.c[:, None], nodes).sum(axis=0)
    ba, bb, bc = bank.a[:, None], bank.b[:, None], bank.c[:, None]

    def residuals(x):
        points = x[0] * nodes + x[1]
        return sqrt_w * (probability(ba, bb, bc, points).sum(axis=0) - target)

    def jacobian(x):
        points = x[0] * nodes + x[1]
        psi = logistic_part(ba, bb, points)
        slope = ((1.0 - bc) * ba * psi * (1.0 - psi)).sum(axis=0)   # d TCC / d theta
        return np.column_stack([sqrt_w * slope * nodes, sqrt_w * slope])

    start = np.array(mean_sigma(run.b, bank.b))
    with np.errstate(over="ignore"):   # far-off trial points: exp overflows to inf, psi to 0
        fit = least_squares(residuals, start, jac=jacobian, method="trf",
                            bounds=([A_RANGE[0], -np.inf], [A_RANGE[1], np.inf]),
                            xtol=1e-12, ftol=1e-14, gtol=1e-14, max_nfev=500)
    return float(fit.x[0]), float(fit.x[1]), float(2.0 * fit.cost)


DISPLACEMENT_LIMIT = 12.0  # |delta| is searched within this many logits (a bound means "beyond")


def irf_displacement(linked: ItemSet, bank: ItemSet, points, weights) -> np.ndarray:
    """delta_j of (2): the shift of each bank item's b that gives the population (`points` on the
    bank scale, `weights`) the expected proportion correct of the item's `linked` parameters.

    Safeguarded Newton on the monotone equation, all items at once; a target outside the shifted
    bank curve's range (c_bank, 1) gives +-DISPLACEMENT_LIMIT."""
    points, weights = np.asarray(points, float), np.asarray(weights, float)
    target = probability(linked.a[:, None], linked.b[:, None], linked.c[:, None], points) @ weights
    a, b, c = bank.a[:, None], bank.b[:, None], bank.c[:, None]
    lo = np.full(len(bank), -DISPLACEMENT_LIMIT)
    hi = np.full(len(bank), DISPLACEMENT_LIMIT)
    delta = linked.b - bank.b                      # exact when only b moved
    delta = np.clip(np.where(np.isfinite(delta), delta, 0.0), lo, hi)
    for _ in range(80):
        psi = logistic_part(a, b + delta[:, None], points)
        excess = (c + (1.0 - c) * psi) @ weights - target          # decreasing in delta
        slope = ((1.0 - c) * a * psi * (1.0 - psi)) @ weights      # -d excess / d delta
        lo = np.where(excess > 0, delta, lo)
        hi = np.where(excess <= 0, delta, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = delta + excess / slope
        inside = np.isfinite(step) & (step >= lo) & (step <= hi)
        new = np.where(inside, step, 0.5 * (lo + hi))
        done = (np.abs(new - delta) < 1e-10) | (hi - lo < 1e-10)
        delta = new
        if done.all():
            break
    return delta


def robust_z(d: np.ndarray) -> np.ndarray:
    """Huynh & Meyer (2010): (d - median d) / (0.74 IQR(d)); +-inf (or 0) where the IQR is 0."""
    q1, median, q3 = np.percentile(d, [25, 50, 75])
    scale = IQR_TO_SD * (q3 - q1)
    centred = d - median
    if scale > 0:
        return centred / scale
    return np.where(centred > 0, np.inf, np.where(centred < 0, -np.inf, 0.0))


def drift_screen(b_drift: np.ndarray, z_cut: float = DRIFT_Z, floor: float = DRIFT_FLOOR) -> np.ndarray:
    """True for drifted anchors: |robust z| > z_cut and |drift| > floor (`b_drift`: the screened
    statistic in logits, per anchor candidate; link_to_bank passes the displacement of (2))."""
    return (np.abs(robust_z(b_drift)) > z_cut) & (np.abs(b_drift) > floor)


WAY_OUT = "set `linking: none` to start a new bank scale from this run"


def link_to_bank(
    run: ItemSet,
    bank: ItemSet,
    nodes=None,
    weights=None,
    *,
    min_anchors: int = MIN_ANCHORS,
    z_cut: float = DRIFT_Z,
    floor: float = DRIFT_FLOOR,
) -> Link:
    """Stocking-Lord link of the run to the bank over the anchor candidates, with the drift
    screen iterated to a fixed point. `run` and `bank` hold the same items, in the same order;
    nodes, weights: the run's quadrature grid (result.nodes, result.weights; default 41 nodes
    of N(0, 1)), on which the criterion and the displacement are computed.

    Raises LinkingError when there are fewer than `min_anchors` candidates, or the screen keeps
    fewer than `min_anchors` or drops more than half of them; the message names the counts and
    the way out (`linking: none`)."""
    n = len(run)
    if len(bank) != n:
        raise ValueError(f"run has {n} anchor candidates but the bank values {len(bank)}")
    if n < min_anchors:
        raise LinkingError(
            f"only {n} item(s) of this run have a value on the bank scale; linking needs at least "
            f"{min_anchors} anchor items: calibrate more items the bank already has, or {WAY_OUT}"
        )
    nodes, weights = _default_grid(nodes, weights)
    drifted = np.zeros(n, dtype=bool)
    seen: list[np.ndarray] = [drifted]
    rounds, last = 0, False
    while True:
        used = ~drifted
        A, B, criterion = stocking_lord(run.subset(used), bank.subset(used), nodes, weights)
        rounds += 1
        linked = ItemSet(*transform_parameters(run.a, run.b, run.c, A, B))
        delta = irf_displacement(linked, bank, A * nodes + B, weights)
        screened = drift_screen(delta, z_cut, floor)
        if last or np.array_equal(screened, drifted):
            break
        repeat = next((i for i, earlier in enumerate(seen) if np.array_equal(screened, earlier)), None)
        if repeat is not None or rounds >= MAX_SCREEN_ROUNDS:
            # A cycle (or no end in sight): drop every anchor flagged on it, link once more, stop.
            screened = np.logical_or.reduce([*seen[repeat or 0:], screened])
            last = True
        drifted = screened
        seen.append(drifted)
        kept = int((~drifted).sum())
        if kept < min_anchors or n - kept > MAX_DROPPED_SHARE * n:
            raise LinkingError(
                f"the drift screen flagged {n - kept} of the {n} anchor items as drifted (robust z "
                f"over {z_cut} and more than {floor} logits), leaving {kept}; linking needs at "
                f"least {min_anchors} anchors and keeps at least half of them. When most anchors "
                f"drift the bank scale no longer describes these students: {WAY_OUT}"
            )
    return Link(A=A, B=B, used=~drifted, drifted=drifted, b_drift=linked.b - bank.b,
                robust_z=robust_z(delta), rounds=rounds, criterion=criterion, displacement=delta)


def transform_parameters(a, b, c, A: float, B: float):
    """(1): run-scale (a, b, c) on the bank scale."""
    return np.asarray(a, float) / A, A * np.asarray(b, float) + B, np.asarray(c, float).copy()


def transform_result(result: CalibrationResult, A: float, B: float, a_bounds=None) -> CalibrationResult:
    """The whole calibration on the bank scale: parameters and SEs by (1), and the quadrature
    grid t -> A t + B (same weights), so that anything computed from the result afterwards
    (item fit, EAP abilities) is on the bank scale and numerically the same as before.

    a_bounds: (low, high) to clip the linked slopes to (the brief's [0.2, 3] holds on the bank
    scale too; a run slope at its bound divided by A < 1 would leave it). None: no clipping."""
    a, b, c = transform_parameters(result.a, result.b, result.c, A, B)
    if a_bounds is not None:
        a = np.clip(a, *a_bounds)
    return dataclasses.replace(
        result, a=a, b=b, c=c,
        a_se=np.asarray(result.a_se, float) / A,
        b_se=A * np.asarray(result.b_se, float),
        c_se=np.asarray(result.c_se, float).copy(),
        nodes=A * np.asarray(result.nodes, float) + B,
    )
