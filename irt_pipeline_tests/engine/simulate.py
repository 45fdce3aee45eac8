"""Response simulation from known 3PL parameters, for recovery tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Simulated:
    responses: np.ndarray | sp.csr_matrix
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    theta: np.ndarray


def probabilities(theta, a, b, c):
    return c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))


def brief_large_matrix(n_students: int = 500, n_items: int = 1000, seed: int = 42) -> Simulated:
    """The brief's `generate_large_response_matrix` (section 9), returning its parameters too.

    Draws in the brief's order (theta, a, b, c, then the responses), so `responses` is exactly
    the brief's matrix for the same arguments.
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_students)
    a = rng.uniform(0.5, 2.5, n_items)
    b = rng.normal(0, 1, n_items)
    c = rng.uniform(0.05, 0.3, n_items)
    prob = probabilities(theta, a, b, c)
    responses = (rng.random((n_students, n_items)) < prob).astype(int)
    return Simulated(responses, a, b, c, theta)


def dense(a, b, c, n_students: int, seed: int) -> Simulated:
    """Every student answers every item."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_students)
    responses = (rng.random((n_students, a.size)) < probabilities(theta, a, b, c)).astype(float)
    return Simulated(responses, a, b, c, theta)


def sparse(a, b, c, n_students: int, per_student: int, seed: int) -> Simulated:
    """Each student answers `per_student` random items; signed CSR (+1 correct, -1 incorrect)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_students)
    cols = np.argsort(rng.random((n_students, a.size)), axis=1)[:, :per_student].ravel()
    rows = np.repeat(np.arange(n_students), per_student)
    p = c[cols] + (1 - c[cols]) / (1 + np.exp(-a[cols] * (theta[rows] - b[cols])))
    signed = np.where(rng.random(rows.size) < p, 1.0, -1.0)
    matrix = sp.csr_matrix((signed, (rows, cols)), shape=(n_students, a.size))
    return Simulated(matrix, a, b, c, theta)


def rmse(estimate, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(estimate) - np.asarray(truth)) ** 2)))
