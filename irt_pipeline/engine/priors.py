"""Bayes-modal item priors in the style of BILOG-MG (Mislevy 1986; Baker & Kim 2004, ch. 7).

    log a ~ N(mu_a, sigma_a^2)      (slope prior, a density on the log a scale)
    b     ~ N(mu_b, sigma_b^2)      (weak difficulty prior, keeps extreme items finite)
    c     ~ Beta(alpha, beta)       (guessing; BILOG-MG's default for k options is
                                     Beta(20/k + 1, 20 (1 - 1/k) + 1), Beta(5, 17) for k = 5)

The M-step maximises the expected complete-data log-likelihood plus the log prior density; the
prior's negative second derivative is added to the information. `priors=None` in
`calibrate_3pl` gives plain marginal maximum likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Priors:
    """Which priors to use; a field set to None switches that prior off."""

    log_a_normal: tuple[float, float] | None = (0.0, 0.5)   # (mean, sd) of log a
    b_normal: tuple[float, float] | None = (0.0, 2.0)       # (mean, sd) of b
    c_beta: tuple[float, float] | None = (5.0, 17.0)        # (alpha, beta) of c

    def __post_init__(self) -> None:
        for name in ("log_a_normal", "b_normal"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and value[1] > 0 and np.isfinite(value).all()):
                raise ValueError(f"priors.{name} must be (mean, sd) with sd > 0, got {value!r}")
        if self.c_beta is not None and not (len(self.c_beta) == 2 and min(self.c_beta) >= 1):
            raise ValueError(f"priors.c_beta must be (alpha, beta) with both >= 1, got {self.c_beta!r}")

    def log_density(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Sum of the active log prior densities per item (constants dropped)."""
        total = np.zeros_like(a)
        if self.log_a_normal is not None:
            mu, sd = self.log_a_normal
            total -= 0.5 * ((np.log(a) - mu) / sd) ** 2
        if self.b_normal is not None:
            mu, sd = self.b_normal
            total -= 0.5 * ((b - mu) / sd) ** 2
        if self.c_beta is not None:
            alpha, beta = self.c_beta
            cc = np.clip(c, 1e-12, 1 - 1e-12)
            total += (alpha - 1.0) * np.log(cc) + (beta - 1.0) * np.log1p(-cc)
        return total

    def gradient(self, a: np.ndarray, b: np.ndarray, c: np.ndarray):
        """(d/da, d/db, d/dc) of the log prior density, per item."""
        zeros = np.zeros_like(a)
        ga, gb, gc = zeros, zeros, zeros
        if self.log_a_normal is not None:
            mu, sd = self.log_a_normal
            ga = -(np.log(a) - mu) / (sd**2 * a)
        if self.b_normal is not None:
            mu, sd = self.b_normal
            gb = -(b - mu) / sd**2
        if self.c_beta is not None:
            alpha, beta = self.c_beta
            cc = np.clip(c, 1e-6, 1 - 1e-6)
            gc = (alpha - 1.0) / cc - (beta - 1.0) / (1.0 - cc)
        return ga, gb, gc

    def curvature(self, a: np.ndarray, b: np.ndarray, c: np.ndarray):
        """Negative second derivatives (d2/da2, d2/db2, d2/dc2) of the log prior, per item.

        For the log a prior, -d2/da2 = (1 - (log a - mu)) / (sd a)^2, which turns negative for
        a > e^(mu + 1); the M-step floors it (`information`), the standard errors use it
        as it is.
        """
        zeros = np.zeros_like(a)
        ia, ib, ic = zeros, zeros, zeros
        if self.log_a_normal is not None:
            mu, sd = self.log_a_normal
            ia = (1.0 - (np.log(a) - mu)) / (sd * a) ** 2
        if self.b_normal is not None:
            ib = np.full_like(b, 1.0 / self.b_normal[1] ** 2)
        if self.c_beta is not None:
            alpha, beta = self.c_beta
            cc = np.clip(c, 1e-6, 1 - 1e-6)
            ic = (alpha - 1.0) / cc**2 + (beta - 1.0) / (1.0 - cc) ** 2
        return ia, ib, ic

    def information(self, a: np.ndarray, b: np.ndarray, c: np.ndarray):
        """`curvature` floored at a positive value, for the M-step's scoring matrix."""
        ia, ib, ic = self.curvature(a, b, c)
        if self.log_a_normal is not None:
            ia = np.maximum(ia, 0.5 / (self.log_a_normal[1] * a) ** 2)
        return ia, ib, ic


DEFAULT_PRIORS = Priors()
