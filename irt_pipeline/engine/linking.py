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

Anchor drift (Huynh & Meyer 2010, robust z): with d_j = A b_run_j + B - b_bank_j over every
anchor candidate, z_j = (d_j - median d) / (0.74 IQR(d)); an anchor with |z_j| > 2.7 and
|d_j| > 0.3 logits has drifted: it is dropped from the anchor set, the link is recomputed and
the screen repeated until the drifted set no longer changes (a fixed point; at most
`MAX_SCREEN_ROUNDS` rounds). Drifted items keep their new, linked estimates.

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
DRIFT_FLOOR = 0.3          # ... and a practical floor in logits
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
    robust_z: np.ndarray   # Huynh-Meyer z of b_drift
    rounds: int            # links computed (1 + screen rounds that changed the set)
    criterion: float       # Stocking-Lord F at (A, B) over the used anchors

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


def stocking_lord(run: ItemSet, bank: ItemSet, nodes=None, weights=None) -> tuple[float, float, float]:
    """(A, B, F) minimising the Stocking-Lord criterion F over the given anchors (module docstring).

    nodes, weights: the run-scale grid (default: 41 nodes of N(0, 1) on [-6, 6])."""
    if len(run) != len(bank) or len(run) == 0:
        raise ValueError("stocking_lord needs the same, non-empty set of anchors on both scales")
    if nodes is None:
        nodes, weights = normal_grid(41)
    nodes, sqrt_w = np.asarray(nodes, float), np.sqrt(np.asarray(weights, float))
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
    fit = least_squares(residuals, start, jac=jacobian, method="trf",
                        bounds=([A_RANGE[0], -np.inf], [A_RANGE[1], np.inf]),
                        xtol=1e-12, ftol=1e-14, gtol=1e-14, max_nfev=500)
    return float(fit.x[0]), float(fit.x[1]), float(2.0 * fit.cost)


def robust_z(d: np.ndarray) -> np.ndarray:
    """Huynh & Meyer (2010): (d - median d) / (0.74 IQR(d)); +-inf (or 0) where the IQR is 0."""
    q1, median, q3 = np.percentile(d, [25, 50, 75])
    scale = IQR_TO_SD * (q3 - q1)
    centred = d - median
    if scale > 0:
        return centred / scale
    return np.where(np.abs(centred) > 0, np.sign(centred) * np.inf, 0.0)


def drift_screen(b_drift: np.ndarray, z_cut: float = DRIFT_Z, floor: float = DRIFT_FLOOR) -> np.ndarray:
    """True for drifted anchors: |robust z| > z_cut and |b drift| > floor."""
    return (np.abs(robust_z(b_drift)) > z_cut) & (np.abs(b_drift) > floor)


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
    screen iterated to a fixed point. `run` and `bank` hold the same items, in the same order.

    Raises LinkingError when there are fewer than `min_anchors` candidates, or the screen keeps
    fewer than `min_anchors` or drops more than half of them."""
    n = len(run)
    if len(bank) != n:
        raise ValueError(f"run has {n} anchor candidates but the bank values {len(bank)}")
    if n < min_anchors:
        raise LinkingError(
            f"only {n} item(s) of this run have a value on the bank scale; linking needs at least "
            f"{min_anchors} anchors"
        )
    drifted = np.zeros(n, dtype=bool)
    rounds = 0
    while True:
        used = ~drifted
        A, B, criterion = stocking_lord(run.subset(used), bank.subset(used), nodes, weights)
        rounds += 1
        d = A * run.b + B - bank.b
        screened = drift_screen(d, z_cut, floor)
        if np.array_equal(screened, drifted) or rounds > MAX_SCREEN_ROUNDS:
            break
        drifted = screened
        kept = int((~drifted).sum())
        if kept < min_anchors or n - kept > MAX_DROPPED_SHARE * n:
            raise LinkingError(
                f"the drift screen dropped {n - kept} of {n} anchors (robust z > {z_cut} and more than "
                f"{floor} logits), leaving {kept}; linking needs at least {min_anchors} anchors and keeps "
                f"at least half of them"
            )
    return Link(A=A, B=B, used=~drifted, drifted=drifted, b_drift=d, robust_z=robust_z(d),
                rounds=rounds, criterion=criterion)


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
