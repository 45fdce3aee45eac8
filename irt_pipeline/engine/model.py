"""The 3PL item response function and its derivatives.

    P_j(t) = c_j + (1 - c_j) * psi_j(t),   psi_j(t) = 1 / (1 + exp(-a_j (t - b_j)))

No 1.7 scaling constant (Baker & Kim 2004, eq. 2.10 without D). Every function broadcasts:
parameters have shape (items, 1) against nodes of shape (nodes,), giving (items, nodes).

First derivatives (Baker & Kim 2004, ch. 7), with s = (1 - c) psi (1 - psi):
    dP/da = s (t - b),   dP/db = -s a,   dP/dc = 1 - psi
"""

from __future__ import annotations

import numpy as np

# Probabilities are kept inside (EPS, 1 - EPS) so that logs and ratios stay finite.
EPS = 1e-10


def logistic_part(a: np.ndarray, b: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """psi = 1 / (1 + exp(-a (theta - b))); |a (theta - b)| <= 36 within the bounds, so exp
    cannot overflow (and np.exp is several times faster than scipy's expit)."""
    return 1.0 / (1.0 + np.exp(-a * (theta - b)))


def probability(a: np.ndarray, b: np.ndarray, c: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """P(correct | theta) of the 3PL, clipped to (EPS, 1 - EPS)."""
    p = c + (1.0 - c) * logistic_part(a, b, theta)
    return np.clip(p, EPS, 1.0 - EPS, out=p)


def gradients(a, b, c, theta):
    """Return (P, psi, dP/da, dP/db, dP/dc), each broadcast to (items, nodes)."""
    psi = logistic_part(a, b, theta)
    p = np.clip(c + (1.0 - c) * psi, EPS, 1.0 - EPS)
    slope = (1.0 - c) * psi * (1.0 - psi)
    return p, psi, slope * (theta - b), -slope * a, 1.0 - psi


def second_derivatives(a, b, c, theta):
    """Second derivatives of P: (aa, ab, ac, bb, bc, cc), each (items, nodes).

    With u = a (t - b), psi' = psi (1 - psi), psi'' = psi (1 - psi)(1 - 2 psi):
        d2P/da2  = (1 - c) psi'' (t - b)^2
        d2P/dadb = (1 - c) [-psi'' a (t - b) - psi']
        d2P/db2  = (1 - c) psi'' a^2
        d2P/dadc = -psi' (t - b),  d2P/dbdc = psi' a,  d2P/dc2 = 0
    """
    psi = logistic_part(a, b, theta)
    d1 = psi * (1.0 - psi)
    d2 = d1 * (1.0 - 2.0 * psi)
    dev = theta - b
    one_c = 1.0 - c
    aa = one_c * d2 * dev * dev
    ab = one_c * (-d2 * a * dev - d1)
    bb = one_c * d2 * a * a
    ac = -d1 * dev
    bc = d1 * a
    cc = np.zeros_like(psi)
    return aa, ab, ac, bb, bc, cc
