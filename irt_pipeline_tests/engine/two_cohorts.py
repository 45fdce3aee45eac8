"""The two-cohort linking study of issue 9, at the engine level (tests and benchmarks/bench_linking.py).

Design (a bank as the product sees it):
* a bank of 200 items, a ~ U(0.5, 2.5), b ~ N(0, 1), c ~ U(0.05, 0.3) (the brief's generator);
* cohort 1, theta ~ N(0, 1), answers items 1-150; cohort 2, theta ~ N(0.7, 1), answers items
  51-200; every student a random form of 40 to 140 items of their range (signed CSR);
* `n_drifted` of the 100 shared items (51-150), drawn at random, are `drift` logits easier for
  cohort 2 (b - drift), unchanged for cohort 1;
* run 1 = calibrate_3pl on cohort 1's attempts (items 1-150): it defines the bank scale;
* run 2 = calibrate_3pl on all attempts (cohorts 1 and 2, items 1-200: attempts accumulate, so
  the recalibration sees both cohorts), linked to run 1 over the anchor candidates (run 2's items
  with a run-1 value: 51-150), moved to the bank scale (transform_result) and scored (EAP).

"Truth on run 1's scale": run 1 fixes theta ~ N(0, 1) on cohort 1's students, i.e. on the
*sample* drawn, so the generating values are put on the sample's scale,
b* = (b - m1) / s1 and theta* = (theta - m1) / s1 with m1, s1 the mean and SD of cohort 1's
drawn thetas (a shift of about 1 / sqrt(n1) = 0.025 that belongs to no method).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from irt_pipeline.engine import calibrate_3pl
from irt_pipeline.engine.abilities import eap_abilities
from irt_pipeline.engine.linking import ItemSet, Link, link_to_bank, transform_result
from irt_pipeline.engine.result import CalibrationResult

N_ITEMS = 200
RUN1_ITEMS = np.arange(0, 150)      # items 1-150
RUN2_ITEMS = np.arange(50, 200)     # items 51-200 (cohort 2's range)
SHARED = np.arange(50, 150)         # items 51-150: the anchor candidates
NEW = np.arange(150, 200)           # items 151-200: new in run 2
A_BOUNDS = (0.2, 3.0)


@dataclass(frozen=True)
class TwoCohorts:
    a: np.ndarray
    b: np.ndarray                  # generating b (cohort 1's; cohort 2 sees b - drift on `drifted`)
    c: np.ndarray
    drifted: np.ndarray            # item indices (within SHARED) that drift for cohort 2
    theta1: np.ndarray
    theta2: np.ndarray
    cohort1: sp.csr_matrix         # n1 x 150: cohort 1's attempts on items 1-150
    everyone: sp.csr_matrix        # (n1 + n2) x 200: all attempts, cohort 1's rows first

    @property
    def n1(self) -> int:
        return int(self.theta1.size)

    @property
    def scale(self) -> tuple[float, float]:
        """(m1, s1): run 1's scale is cohort 1's sample standardised."""
        return float(self.theta1.mean()), float(self.theta1.std())

    def on_run1_scale(self, values: np.ndarray) -> np.ndarray:
        m1, s1 = self.scale
        return (np.asarray(values, float) - m1) / s1

    @property
    def steady(self) -> np.ndarray:
        return np.setdiff1d(SHARED, self.drifted)


def _forms(rng, n_students: int, items: np.ndarray, shortest: int, longest: int):
    """(rows, cols): each student a random form of shortest..longest distinct items of `items`."""
    lengths = rng.integers(shortest, longest + 1, n_students)
    order = np.argsort(rng.random((n_students, items.size)), axis=1)
    keep = np.arange(items.size)[None, :] < lengths[:, None]
    rows = np.broadcast_to(np.arange(n_students)[:, None], order.shape)[keep]
    return rows, items[order[keep]]


def simulate(seed: int, n1: int = 2000, n2: int = 2000, n_drifted: int = 6, drift: float = 1.0,
             shift: float = 0.7, shortest: int = 40, longest: int = 140) -> TwoCohorts:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.5, N_ITEMS)
    b = rng.normal(0.0, 1.0, N_ITEMS)
    c = rng.uniform(0.05, 0.3, N_ITEMS)
    drifted = np.sort(rng.choice(SHARED, n_drifted, replace=False))
    theta1 = rng.normal(0.0, 1.0, n1)
    theta2 = rng.normal(shift, 1.0, n2)
    b2 = b.copy()
    b2[drifted] -= drift

    def attempts(theta, rows, cols, difficulty):
        p = c[cols] + (1 - c[cols]) / (1 + np.exp(-a[cols] * (theta[rows] - difficulty[cols])))
        return np.where(rng.random(rows.size) < p, 1.0, -1.0)

    rows1, cols1 = _forms(rng, n1, RUN1_ITEMS, shortest, longest)
    rows2, cols2 = _forms(rng, n2, RUN2_ITEMS, shortest, longest)
    signed1 = attempts(theta1, rows1, cols1, b)
    signed2 = attempts(theta2, rows2, cols2, b2)
    cohort1 = sp.csr_matrix((signed1, (rows1, cols1)), shape=(n1, RUN1_ITEMS.size))
    everyone = sp.csr_matrix((np.r_[signed1, signed2], (np.r_[rows1, rows2 + n1], np.r_[cols1, cols2])),
                             shape=(n1 + n2, N_ITEMS))
    return TwoCohorts(a, b, c, drifted, theta1, theta2, cohort1, everyone)


@dataclass(frozen=True)
class Outcome:
    """The issue's acceptance quantities for one way of putting run 2 on the bank scale."""

    steady_shift: float        # mean (run-2 b - run-1 b) over the steady shared items
    new_bias: float            # mean (b - truth) over the new items, on run 1's scale
    new_rmse: float
    drift_power: float         # share of the drifted anchors flagged
    false_alarms: float        # share of the steady anchors flagged
    theta_mean_error: float    # B - true mean of run 2's students (run 1's scale)
    theta_sd_error: float      # A - true SD of run 2's students (run 1's scale)
    cohort1_error: float       # mean EAP of cohort 1 - its true mean (run 1's scale)
    cohort2_error: float
    link_seconds: float        # link_to_bank + transform_result
    link: Link | None


@dataclass(frozen=True)
class Study:
    sim: TwoCohorts
    run1: CalibrationResult
    run2: CalibrationResult
    linked: Outcome
    unlinked: Outcome


def outcome(sim: TwoCohorts, run1: CalibrationResult, run2: CalibrationResult, on_bank: CalibrationResult,
            A: float, B: float, link: Link | None, seconds: float) -> Outcome:
    """The acceptance quantities of run 2 taken to the bank scale as `on_bank` (= run 2 for
    'unlinked': A = 1, B = 0)."""
    steady = sim.steady
    new_error = on_bank.b[NEW] - sim.on_run1_scale(sim.b[NEW])
    theta = sim.on_run1_scale(np.r_[sim.theta1, sim.theta2])
    abilities = eap_abilities(sim.everyone, on_bank)
    n1 = sim.n1
    if link is not None:
        flagged = np.zeros(N_ITEMS, bool)
        flagged[SHARED] = link.drifted
        power, alarms = float(flagged[sim.drifted].mean()), float(flagged[steady].mean())
    else:
        power = alarms = float("nan")
    return Outcome(
        steady_shift=float(np.mean(on_bank.b[steady] - run1.b[steady])),
        new_bias=float(new_error.mean()),
        new_rmse=float(np.sqrt(np.mean(new_error**2))),
        drift_power=power,
        false_alarms=alarms,
        theta_mean_error=B - float(theta.mean()),
        theta_sd_error=A - float(theta.std()),
        cohort1_error=float(abilities.theta[:n1].mean() - theta[:n1].mean()),
        cohort2_error=float(abilities.theta[n1:].mean() - theta[n1:].mean()),
        link_seconds=seconds,
        link=link,
    )


def run_study(sim: TwoCohorts) -> Study:
    """Run 1, run 2, and run 2 linked and unlinked (module docstring)."""
    run1 = calibrate_3pl(sim.cohort1)
    run2 = calibrate_3pl(sim.everyone)
    bank = ItemSet.of(run1.a[SHARED], run1.b[SHARED], run1.c[SHARED])
    candidates = ItemSet.of(run2.a[SHARED], run2.b[SHARED], run2.c[SHARED])
    started = time.perf_counter()
    link = link_to_bank(candidates, bank, run2.nodes, run2.weights)
    linked_result = transform_result(run2, link.A, link.B, a_bounds=A_BOUNDS)
    seconds = time.perf_counter() - started
    return Study(
        sim=sim, run1=run1, run2=run2,
        linked=outcome(sim, run1, run2, linked_result, link.A, link.B, link, seconds),
        unlinked=outcome(sim, run1, run2, run2, 1.0, 0.0, None, 0.0),
    )
